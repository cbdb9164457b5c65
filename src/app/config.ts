/**
 * Configuration: parsed once at boot from the environment, validated with zod.
 * A missing or bad variable fails fast with a message naming the variable.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { METHODS, type Method, type WritingTask } from "../agent/types.ts";
import { LOCALES, type Locale } from "../i18n/locale.ts";
import { adapterPathOf, adapterRoute, LOCAL_ROUTE_PREFIX, loraAdapterProblem } from "../llm/local-adapters.ts";
import {
  DEFAULT_LOCAL_MODEL,
  DEFAULT_LOCAL_MODEL_DIR,
  hubModelPath,
  type LocalModelSpec,
  parseLocalModelSpec,
} from "../llm/local-models.ts";
import { LOCAL_BASE_URL } from "../llm/local-runtime.ts";
import { DOWNLOAD_DEFAULTS } from "../llm/model-download.ts";
import { STRUCTURED_STRATEGIES, type StructuredStrategy } from "../llm/structured-strategy.ts";
import { type ModelRoute, TASKS, type Task } from "../llm/types.ts";
import { type CatalogueTheme, parseCatalogue } from "../story/themes.ts";

export const DEFAULTS = {
  DATABASE_URL: "file:./data/inkloom.db",
  OPENAI_TIMEOUT_MS: 60_000,
  OPENAI_MAX_RETRIES: 2,
  METHOD_OPEN: "cot",
  METHOD_CONTINUE: "react",
  METHOD_REWRITE: "reflexion",
  REACT_MAX_STEPS: 6,
  RECENT_CHAPTERS: 3,
  EXPORT_DIR: "./data/exports",
  VOTE_SECONDS: 60,
  JOB_CONCURRENCY: 64,
  REDIS_PREFIX: "inkloom",
  SHUTDOWN_GRACE_SECONDS: 30,
  PREPLAN: "on",
  PREPLAN_CONCURRENCY: 4,
  STRUCTURED_OUTPUT: "auto",
  IMAGE_SIZE: "1024x1024",
  IMAGE_DIR: "./data/images",
  IMAGE_TIMEOUT_MS: 120_000,
  IMAGES_PER_CHAPTER: 1,
  IMAGES_PER_DAY: 30,
  ILLUSTRATE_COOLDOWN_SECONDS: 60,
  TALK_COOLDOWN_SECONDS: 20,
  TELEGRAM_API_ROOT: "https://api.telegram.org",
  TELEGRAM_WEBHOOK_PORT: 8443,
  DISCORD_API_ROOT: "https://discord.com/api",
  SHARD_COUNT: "auto",
  DISCORD_PROXY_PORT: 8090,
  MODEL_PRICE_INPUT_PER_MTOK: 0,
  MODEL_PRICE_OUTPUT_PER_MTOK: 0,
} as const;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const url = (name: string) =>
  optionalText.refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), {
    message: `${name} must be an http(s) URL, for example http://localhost:11434/v1`,
  });

const int = (name: string, min: number, max: number) =>
  optionalText.refine((v) => v === undefined || (/^\d+$/.test(v) && Number(v) >= min && Number(v) <= max), {
    message: `${name} must be a whole number from ${min} to ${max}`,
  });

const price = (name: string) =>
  optionalText.refine((v) => v === undefined || (Number.isFinite(Number(v)) && Number(v) >= 0), {
    message: `${name} must be a number of US dollars per million tokens, such as 0.15`,
  });

const method = (name: string) =>
  optionalText.refine((v) => v === undefined || (METHODS as readonly string[]).includes(v), {
    message: `${name} must be one of: ${METHODS.join(", ")}`,
  });

const EnvSchema = z.object({
  OPENAI_API_KEY: optionalText,
  OPENAI_BASE_URL: url("OPENAI_BASE_URL"),
  OPENAI_MODEL: optionalText,
  MODEL_OPEN: optionalText,
  MODEL_CONTINUE: optionalText,
  MODEL_REWRITE: optionalText,
  MODEL_CHOICES: optionalText,
  MODEL_SUMMARIZE: optionalText,
  MODEL_CHECK: optionalText,
  MODERATION_MODEL: optionalText,
  MODEL_ILLUSTRATE: optionalText,
  MODEL_TALK: optionalText,
  LOCAL_MODEL: optionalText.refine((v) => v === undefined || v.length <= 1024, {
    message: "LOCAL_MODEL must be at most 1024 characters: default, hf:<owner>/<repo>/<file>.gguf or a .gguf path",
  }),
  LOCAL_MODEL_DIR: optionalText.refine((v) => v === undefined || v.length <= 1024, {
    message: "LOCAL_MODEL_DIR must be a folder path of at most 1024 characters",
  }),
  HF_ENDPOINT: optionalText.refine(
    (v) => v === undefined || (v.length <= 2048 && /^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(v)),
    {
      message:
        "HF_ENDPOINT must be an http(s) URL of a Hugging Face Hub or a mirror, for example https://huggingface.co",
    },
  ),
  HF_TOKEN: optionalText.refine((v) => v === undefined || /^[\x21-\x7e]{1,512}$/.test(v), {
    message: "HF_TOKEN must be a Hugging Face access token (hf_..., no spaces, at most 512 characters)",
  }),
  LOCAL_RUNTIME_DIR: optionalText,
  LOCAL_MODEL_SEQUENCES: int("LOCAL_MODEL_SEQUENCES", 1, 64),
  LOCAL_MODEL_THREADS: int("LOCAL_MODEL_THREADS", 1, 256),
  LOCAL_MODEL_CONTEXT: int("LOCAL_MODEL_CONTEXT", 512, 1_048_576),
  LOCAL_MODEL_SEED: int("LOCAL_MODEL_SEED", 0, 2_147_483_647),
  METHOD_OPEN: method("METHOD_OPEN"),
  METHOD_CONTINUE: method("METHOD_CONTINUE"),
  METHOD_REWRITE: method("METHOD_REWRITE"),
  OPENAI_TIMEOUT_MS: int("OPENAI_TIMEOUT_MS", 1000, 600_000),
  OPENAI_MAX_RETRIES: int("OPENAI_MAX_RETRIES", 0, 10),
  MODEL_PRICE_INPUT_PER_MTOK: price("MODEL_PRICE_INPUT_PER_MTOK"),
  MODEL_PRICE_OUTPUT_PER_MTOK: price("MODEL_PRICE_OUTPUT_PER_MTOK"),
  REACT_MAX_STEPS: int("REACT_MAX_STEPS", 1, 20),
  RECENT_CHAPTERS: int("RECENT_CHAPTERS", 1, 10),
  DATABASE_URL: optionalText.refine((v) => v === undefined || /^(file:|postgres(ql)?:\/\/)/.test(v), {
    message:
      "DATABASE_URL must be a SQLite file URL such as file:./data/inkloom.db " +
      "or a PostgreSQL URL such as postgresql://user:password@localhost:5432/inkloom",
  }),
  EXPORT_DIR: optionalText,
  INKLOOM_LOCALE: optionalText.refine((v) => v === undefined || (LOCALES as readonly string[]).includes(v), {
    message: `INKLOOM_LOCALE must be ${LOCALES.join(" or ")}`,
  }),
  TELEGRAM_BOT_TOKEN: optionalText.refine((v) => v === undefined || /^\d+:[\w-]{20,}$/.test(v), {
    message: "TELEGRAM_BOT_TOKEN must look like 123456:ABC-DEF... (the token @BotFather gave you)",
  }),
  TELEGRAM_API_ROOT: url("TELEGRAM_API_ROOT"),
  TELEGRAM_WEBHOOK_URL: optionalText.refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), {
    message: "TELEGRAM_WEBHOOK_URL must be the public https URL Telegram should post updates to",
  }),
  TELEGRAM_WEBHOOK_PORT: int("TELEGRAM_WEBHOOK_PORT", 1, 65535),
  TELEGRAM_WEBHOOK_SECRET: optionalText.refine((v) => v === undefined || /^[A-Za-z0-9_-]{1,256}$/.test(v), {
    message: "TELEGRAM_WEBHOOK_SECRET may use only A-Z, a-z, 0-9, _ and - (1-256 characters)",
  }),
  DISCORD_TOKEN: optionalText,
  DISCORD_APPLICATION_ID: optionalText.refine((v) => v === undefined || /^\d{5,25}$/.test(v), {
    message: "DISCORD_APPLICATION_ID must be the numeric application id from the Discord developer portal",
  }),
  DISCORD_API_ROOT: url("DISCORD_API_ROOT"),
  DISCORD_DEV_GUILD_ID: optionalText.refine((v) => v === undefined || /^\d{5,25}$/.test(v), {
    message: "DISCORD_DEV_GUILD_ID must be a numeric server id",
  }),
  SHARD_COUNT: optionalText.refine((v) => v === undefined || v === "auto" || /^[1-9]\d{0,4}$/.test(v), {
    message: "SHARD_COUNT must be auto (Discord's recommendation) or a whole number of shards from 1",
  }),
  SHARD_IDS: optionalText.refine((v) => v === undefined || /^\d+(-\d+)?(,\s*\d+(-\d+)?)*$/.test(v), {
    message: "SHARD_IDS must list the shards this process runs, such as 0-3 or 0,2,4",
  }),
  DISCORD_PROXY_PORT: int("DISCORD_PROXY_PORT", 1, 65535),
  VOTE_SECONDS: int("VOTE_SECONDS", 10, 86_400),
  IMAGE_MODEL: optionalText,
  IMAGE_BASE_URL: url("IMAGE_BASE_URL"),
  IMAGE_API_KEY: optionalText,
  IMAGE_SIZE: optionalText.refine((v) => v === undefined || /^(\d{2,5}x\d{2,5}|auto)$/.test(v), {
    message: "IMAGE_SIZE must look like 1024x1024 (width x height in pixels) or auto",
  }),
  IMAGE_DIR: optionalText,
  IMAGE_TIMEOUT_MS: int("IMAGE_TIMEOUT_MS", 1000, 600_000),
  IMAGES_PER_CHAPTER: int("IMAGES_PER_CHAPTER", 0, 4),
  IMAGES_PER_DAY: int("IMAGES_PER_DAY", 0, 10_000),
  ILLUSTRATE_COOLDOWN_SECONDS: int("ILLUSTRATE_COOLDOWN_SECONDS", 0, 86_400),
  TALK_COOLDOWN_SECONDS: int("TALK_COOLDOWN_SECONDS", 0, 86_400),
  JOB_CONCURRENCY: int("JOB_CONCURRENCY", 1, 1000),
  REDIS_URL: optionalText.refine((v) => v === undefined || /^rediss?:\/\/[^\s]+$/.test(v), {
    message: "REDIS_URL must be a redis:// or rediss:// URL, for example redis://localhost:6379",
  }),
  REDIS_PREFIX: optionalText.refine((v) => v === undefined || /^[A-Za-z0-9_.-]{1,64}$/.test(v), {
    message: "REDIS_PREFIX may use only A-Z, a-z, 0-9, _, . and - (1-64 characters)",
  }),
  WORKER_CONCURRENCY: int("WORKER_CONCURRENCY", 1, 1000),
  HEALTH_PORT: int("HEALTH_PORT", 1, 65_535),
  DATABASE_POOL_SIZE: int("DATABASE_POOL_SIZE", 1, 1000),
  SHUTDOWN_GRACE_SECONDS: int("SHUTDOWN_GRACE_SECONDS", 0, 3600),
  PREPLAN: optionalText.refine((v) => v === undefined || v === "on" || v === "off", {
    message: "PREPLAN must be on or off",
  }),
  PREPLAN_CONCURRENCY: int("PREPLAN_CONCURRENCY", 1, 64),
  STRUCTURED_OUTPUT: optionalText.refine(
    (v) => v === undefined || v === "auto" || (STRUCTURED_STRATEGIES as readonly string[]).includes(v),
    { message: `STRUCTURED_OUTPUT must be auto or one of: ${STRUCTURED_STRATEGIES.join(", ")}` },
  ),
  THEMES_FILE: optionalText,
  LANG: optionalText,
});

export type { Locale };

export interface Config {
  models: Record<Task, ModelRoute>;
  /**
   * Set when LOCAL_MODEL is: the embedded model (node-llama-cpp from `runtimeDir`, not a
   * dependency). With no endpoint, every task runs on it; a configured endpoint wins, and
   * then only the tasks routed to a `local:` LoRA adapter (MODEL_<TASK> or a stored route)
   * run on it, loaded at the first such request. `models` says which task goes where.
   */
  local?: {
    /** What LOCAL_MODEL names: a file on disk, or a Hub file downloaded at start (ensureLocalModel). */
    spec: LocalModelSpec;
    /** Where the model is (a Hub file: where it will be once downloaded, under `modelDir`). */
    modelPath: string;
    /** LOCAL_MODEL_DIR, resolved: where downloaded models are kept. */
    modelDir: string;
    /** Where a Hub file is downloaded from: HF_ENDPOINT, and HF_TOKEN for gated or private repositories. */
    hub: { endpoint: string; token?: string };
    runtimeDir: string;
    sequences: number;
    threads: number;
    contextSize: number;
    /** Sampling seed, for reproducible stories (tests, debugging); from the clock when unset. */
    seed?: number;
  };
  apiKey: string;
  timeoutMs: number;
  maxRetries: number;
  prices: { inputPerMTok: number; outputPerMTok: number };
  methods: Record<WritingTask, Method>;
  reactMaxSteps: number;
  recentChapters: number;
  /** Speculative planning of offered choices (PREPLAN); at most `concurrency` plans at once. */
  preplan: { enabled: boolean; concurrency: number };
  /** Every route starts with this structured-output strategy instead of its endpoint's default. */
  structuredOutput?: StructuredStrategy;
  databaseUrl: string;
  exportDir: string;
  locale: Locale;
  /** Check scenarios and readers' own actions with the `moderate` route before they reach a story. */
  moderation: boolean;
  /** Chapters written at once. A chapter job mostly waits (on the model, on a chat's send rate). */
  jobConcurrency: number;
  /**
   * Set when REDIS_URL is: jobs go through BullMQ on Redis (shared by every process)
   * instead of this process's memory.
   */
  redis?: {
    url: string;
    /** Namespace of Inkloom's keys (REDIS_PREFIX), so deployments can share one Redis. */
    prefix: string;
    /** Chapters one worker process writes at once (WORKER_CONCURRENCY; default JOB_CONCURRENCY). */
    workerConcurrency: number;
  };
  /** PostgreSQL connections this process keeps (DATABASE_POOL_SIZE; default 20). */
  databasePoolSize?: number;
  /** Set when HEALTH_PORT is: /healthz and /readyz are answered on this port. */
  healthPort?: number;
  /** On SIGTERM, how long running chapters may go on before they are handed back (SHUTDOWN_GRACE_SECONDS). */
  shutdownGraceMs: number;
  /** Default voting window of a chat (a chat's /settings may change it). */
  voteSeconds: number;
  /** Set when IMAGE_MODEL is: stories are illustrated (a chat's /settings may switch it off). */
  images?: {
    model: string;
    /** Images may come from another OpenAI-compatible endpoint than text. */
    baseUrl: string;
    apiKey: string;
    size: string;
    timeoutMs: number;
  };
  /** Where illustrations are stored (one folder per story). */
  imageDir: string;
  /** Defaults of the per-chat budgets (a chat's /settings may change them). */
  imagesPerChapter: number;
  imagesPerDay: number;
  /** Seconds a reader waits between two /illustrate requests. */
  illustrateCooldownSeconds: number;
  /** Seconds a reader waits between two /talk messages. */
  talkCooldownSeconds: number;
  /** Set when DISCORD_TOKEN and DISCORD_APPLICATION_ID are: the Discord bot runs. */
  discord?: {
    token: string;
    applicationId: string;
    /** REST base URL (a REST proxy, or a test fake). */
    apiRoot: string;
    /** Register commands to this server only (instant, for development). */
    devGuildId?: string;
    /** Gateway shards (SHARD_COUNT, SHARD_IDS): Discord's recommendation, or a count and this process's ids. */
    shards: "auto" | { count: number; ids?: number[] };
  };
  /** The owner's theme catalogue (THEMES_FILE): offered at /start in private conversations. */
  themeCatalogue: CatalogueTheme[];
  /** Set when TELEGRAM_BOT_TOKEN is: the Telegram bot runs. */
  telegram?: {
    token: string;
    /** Bot API server (a self-hosted one, or a test fake). */
    apiRoot: string;
    /** Webhook mode when set; long polling otherwise. */
    webhook?: { url: string; port: number; secret?: string };
  };
}

const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";

/** What to tell a person who has not configured a model endpoint yet. */
export const NO_ENDPOINT_HELP = [
  "Inkloom needs an OpenAI-compatible model endpoint to write stories.",
  "Set these environment variables (or put them in a .env file, see .env.example):",
  "",
  "  OPENAI_BASE_URL   the endpoint, e.g. http://localhost:11434/v1 for Ollama",
  "  OPENAI_MODEL      the model name, e.g. qwen2.5:7b-instruct",
  "  OPENAI_API_KEY    the key (any text for local servers such as Ollama)",
  "",
  "Example with Ollama running locally:",
  "  OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=qwen2.5:7b-instruct OPENAI_API_KEY=ollama npm start",
  "",
  "With OpenAI itself, OPENAI_API_KEY alone is enough (OPENAI_MODEL defaults to gpt-4.1-mini).",
  "",
  "Or, with no endpoint, an embedded model (experimental, CPU; docs/local-model.md):",
  `  LOCAL_MODEL=default npm start             downloads ${DEFAULT_LOCAL_MODEL.name}, about ${(DEFAULT_LOCAL_MODEL.approxBytes / 1e9).toFixed(1)} GB`,
  "  LOCAL_MODEL=/path/to/model.gguf npm start",
  "In a terminal, npm start with nothing set offers to download it.",
].join("\n");

/** Where the on-demand runtime is looked for when LOCAL_RUNTIME_DIR is not set. */
export const DEFAULT_LOCAL_RUNTIME_DIR = join(homedir(), ".cache", "inkloom", "runtime");

/** LOCAL_MODEL and its companions, checked; the problems found go to `problems`. */
function localModelOf(
  e: {
    LOCAL_MODEL?: string | undefined;
    LOCAL_MODEL_DIR?: string | undefined;
    HF_ENDPOINT?: string | undefined;
    HF_TOKEN?: string | undefined;
    LOCAL_RUNTIME_DIR?: string | undefined;
    LOCAL_MODEL_SEQUENCES?: string | undefined;
    LOCAL_MODEL_THREADS?: string | undefined;
    LOCAL_MODEL_CONTEXT?: string | undefined;
    LOCAL_MODEL_SEED?: string | undefined;
  },
  problems: string[],
): Config["local"] {
  if (e.LOCAL_MODEL === undefined) return undefined;
  const spec = parseLocalModelSpec(e.LOCAL_MODEL);
  if ("error" in spec) {
    problems.push(spec.error);
    return undefined;
  }
  const modelDir = resolve(e.LOCAL_MODEL_DIR ?? DEFAULT_LOCAL_MODEL_DIR);
  let modelPath: string;
  if (spec.kind === "file") {
    modelPath = spec.path;
    let isFile = false;
    try {
      isFile = statSync(modelPath).isFile();
    } catch {
      isFile = false;
    }
    if (!modelPath.endsWith(".gguf") || !isFile) {
      problems.push(`LOCAL_MODEL must be the path of a .gguf file; ${modelPath} is not one`);
    }
  } else {
    // Downloaded at start (src/app/local-model-setup.ts), unless it is there already.
    modelPath = hubModelPath(modelDir, spec.repo, spec.file);
  }
  // A missing runtime is not refused here: the start-up step installs it (src/app/local-setup.ts).
  const runtimeDir = resolve(e.LOCAL_RUNTIME_DIR ?? DEFAULT_LOCAL_RUNTIME_DIR);
  return {
    spec,
    modelPath,
    modelDir,
    hub: {
      endpoint: e.HF_ENDPOINT ?? DOWNLOAD_DEFAULTS.endpoint,
      ...(e.HF_TOKEN === undefined ? {} : { token: e.HF_TOKEN }),
    },
    runtimeDir,
    sequences: e.LOCAL_MODEL_SEQUENCES === undefined ? 2 : Number(e.LOCAL_MODEL_SEQUENCES),
    threads: e.LOCAL_MODEL_THREADS === undefined ? 1 : Number(e.LOCAL_MODEL_THREADS),
    // Tokens per story (sequence), at most the model's training context.
    contextSize: e.LOCAL_MODEL_CONTEXT === undefined ? 4096 : Number(e.LOCAL_MODEL_CONTEXT),
    ...(e.LOCAL_MODEL_SEED === undefined ? {} : { seed: Number(e.LOCAL_MODEL_SEED) }),
  };
}

/**
 * `MODEL_<TASK>=local:<adapter.gguf>`: the task runs on LOCAL_MODEL with that LoRA adapter,
 * in this process, whether or not an endpoint serves the other tasks. The path is resolved
 * against the working directory; the file must be a LoRA adapter (its GGUF header says so).
 * Fine-tuned (the zero-shot prompt) unless `<KEY>_FINE_TUNED=false`.
 */
function localRouteOf(
  key: string,
  spec: string,
  given: { ownUrl: string; fineTuned: string; local: Config["local"] },
  problems: string[],
): ModelRoute {
  const path = spec.slice(LOCAL_ROUTE_PREFIX.length).trim();
  const route = adapterRoute(path);
  if (given.fineTuned === "false") route.fineTuned = false;
  if (path === "") {
    problems.push(`${key}=${spec} names no adapter: write ${key}=local:<path/to/adapter.gguf>`);
  } else if (given.ownUrl !== "") {
    problems.push(
      `${key}_BASE_URL cannot go with ${key}=local:...: a local: adapter runs in this process, not at a URL`,
    );
  } else if (given.local === undefined) {
    problems.push(
      `${key}=${spec} runs a LoRA adapter on the embedded model: set LOCAL_MODEL to the .gguf of its base model`,
    );
  } else {
    const problem = loraAdapterProblem(adapterPathOf(route) ?? path, given.local.modelPath);
    if (problem !== undefined) problems.push(`${key}=${spec}: ${problem}`);
  }
  return route;
}

/**
 * SHARD_COUNT (`auto` by default: discord.js asks GET /gateway/bot) and SHARD_IDS, the shards
 * this process runs when several fronts share them (a count is needed then).
 */
function shardsOf(count: string | undefined, ids: string | undefined): "auto" | { count: number; ids?: number[] } {
  const total = count ?? DEFAULTS.SHARD_COUNT;
  if (total === "auto") {
    if (ids !== undefined) throw new ConfigError(["SHARD_IDS needs a SHARD_COUNT: the total number of shards"]);
    return "auto";
  }
  const n = Number(total);
  if (ids === undefined) return { count: n };
  const list = new Set<number>();
  for (const part of ids.split(",")) {
    const [from = 0, to = from] = part.trim().split("-").map(Number);
    for (let id = from; id <= to; id++) list.add(id);
  }
  const bad = [...list].filter((id) => id >= n);
  if (bad.length > 0 || list.size === 0) {
    throw new ConfigError([`SHARD_IDS must be shards from 0 to ${n - 1} (SHARD_COUNT is ${n}); got ${ids}`]);
  }
  return { count: n, ids: [...list].sort((a, b) => a - b) };
}

/** The `npm run discord:proxy` process: where it forwards to, where it listens, whose token it accepts. */
export interface DiscordProxyConfig {
  /** Discord's REST API (DISCORD_API_ROOT: in this process, the real API, or a test fake). */
  upstream: string;
  port: number;
  /** Requests carrying another bot's token are refused (one proxy, one bot's budget). */
  token?: string;
}

/** The REST proxy's settings alone: it needs no model endpoint. Throws `ConfigError`. */
export function loadDiscordProxyConfig(env: Record<string, string | undefined>): DiscordProxyConfig {
  const parsed = EnvSchema.pick({ DISCORD_API_ROOT: true, DISCORD_PROXY_PORT: true, DISCORD_TOKEN: true }).safeParse(
    env,
  );
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => i.message));
  const e = parsed.data;
  return {
    upstream: e.DISCORD_API_ROOT ?? DEFAULTS.DISCORD_API_ROOT,
    port: e.DISCORD_PROXY_PORT === undefined ? DEFAULTS.DISCORD_PROXY_PORT : Number(e.DISCORD_PROXY_PORT),
    ...(e.DISCORD_TOKEN === undefined ? {} : { token: e.DISCORD_TOKEN }),
  };
}

/** THEMES_FILE is at most this big: a catalogue is a few dozen short themes. */
const THEMES_FILE_MAX_BYTES = 256 * 1024;

/** The theme catalogue THEMES_FILE names, checked. Throws `ConfigError` naming the file and each problem. */
export function loadThemeCatalogue(path: string | undefined): CatalogueTheme[] {
  if (path === undefined) return [];
  const fail = (...problems: string[]) =>
    new ConfigError(problems.map((p) => `THEMES_FILE ${path}: ${p} (see examples/themes.json)`));
  let text: string;
  try {
    if (statSync(path).size > THEMES_FILE_MAX_BYTES) throw fail(`the file is over ${THEMES_FILE_MAX_BYTES / 1024} KB`);
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw fail(code === "ENOENT" ? "no such file" : `cannot be read (${code ?? String(error)})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw fail(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const result = parseCatalogue(data);
  if ("problems" in result) throw fail(...result.problems);
  return result.themes;
}

/** Parse and validate the environment. Throws `ConfigError` naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => i.message));
  }
  const e = parsed.data;
  if ((e.DISCORD_TOKEN === undefined) !== (e.DISCORD_APPLICATION_ID === undefined)) {
    throw new ConfigError(["DISCORD_TOKEN and DISCORD_APPLICATION_ID go together: set both to run the Discord bot"]);
  }
  const shards = shardsOf(e.SHARD_COUNT, e.SHARD_IDS);
  const noEndpoint = e.OPENAI_BASE_URL === undefined && e.OPENAI_API_KEY === undefined;
  // A configured endpoint wins over LOCAL_MODEL: it serves every task but those routed to
  // a `local:` adapter, which run on LOCAL_MODEL (loaded only when one is asked for).
  const localProblems: string[] = [];
  const local = localModelOf(e, localProblems);
  if (localProblems.length > 0) throw new ConfigError(localProblems);
  if (noEndpoint && local === undefined) {
    throw new ConfigError([NO_ENDPOINT_HELP]);
  }
  const everyTaskLocal = noEndpoint && local !== undefined;
  if (everyTaskLocal && e.IMAGE_MODEL !== undefined && e.IMAGE_BASE_URL === undefined) {
    // The embedded model writes text only: pictures need an images endpoint of their own.
    throw new ConfigError([
      "IMAGE_MODEL with the embedded model (LOCAL_MODEL, no endpoint) needs IMAGE_BASE_URL: the images endpoint " +
        "that draws the pictures, e.g. IMAGE_BASE_URL=http://localhost:7860/v1. Or leave IMAGE_MODEL unset: no pictures.",
    ]);
  }
  const baseUrl = everyTaskLocal ? LOCAL_BASE_URL : (e.OPENAI_BASE_URL ?? OPENAI_DEFAULT_BASE_URL);
  const usingOpenAi = e.OPENAI_BASE_URL === undefined;
  const defaultModel =
    everyTaskLocal && local !== undefined
      ? `local:${basename(local.modelPath)}`
      : (e.OPENAI_MODEL ?? (usingOpenAi ? "gpt-4.1-mini" : undefined));
  if (defaultModel === undefined) {
    throw new ConfigError([
      `OPENAI_MODEL is not set: name the model that ${baseUrl} should use, e.g. OPENAI_MODEL=qwen2.5:7b-instruct`,
    ]);
  }
  const perTask: Record<Task, string | undefined> = {
    open: e.MODEL_OPEN,
    continue: e.MODEL_CONTINUE,
    rewrite: e.MODEL_REWRITE,
    choices: e.MODEL_CHOICES,
    summarize: e.MODEL_SUMMARIZE,
    check: e.MODEL_CHECK,
    moderate: e.MODERATION_MODEL,
    illustrate: e.MODEL_ILLUSTRATE,
    talk: e.MODEL_TALK,
  };
  const routeProblems: string[] = [];
  const models = Object.fromEntries(
    TASKS.map((t) => {
      // MODEL_<TASK>_BASE_URL and MODEL_<TASK>_FINE_TUNED: a task served elsewhere (a fine-tuned
      // small model behind vLLM, say). Read here rather than in the schema: one pair per task.
      const key = t === "moderate" ? "MODERATION_MODEL" : `MODEL_${t.toUpperCase()}`;
      const ownUrl = (env[`${key}_BASE_URL`] ?? "").trim();
      const fineTuned = (env[`${key}_FINE_TUNED`] ?? "").trim().toLowerCase();
      if (ownUrl !== "" && !/^https?:\/\/[^\s]+$/.test(ownUrl)) {
        routeProblems.push(`${key}_BASE_URL must be an http(s) URL, for example http://localhost:8000/v1`);
      }
      if (fineTuned !== "" && fineTuned !== "true" && fineTuned !== "false") {
        routeProblems.push(`${key}_FINE_TUNED must be true or false`);
      }
      const spec = perTask[t];
      if (spec?.startsWith(LOCAL_ROUTE_PREFIX)) {
        return [t, localRouteOf(key, spec, { ownUrl, fineTuned, local }, routeProblems)];
      }
      if (everyTaskLocal && ownUrl !== "" && spec === undefined) {
        // The default model is the embedded file: an endpoint of the task's own needs a name it serves.
        routeProblems.push(
          `${key}_BASE_URL sends ${t} to ${ownUrl}, which cannot serve the embedded model: name its model with ${key}`,
        );
      }
      return [t, { model: spec ?? defaultModel, baseUrl: ownUrl || baseUrl, fineTuned: fineTuned === "true" }];
    }),
  ) as Record<Task, ModelRoute>;
  if (routeProblems.length > 0) throw new ConfigError(routeProblems);
  const themeCatalogue = loadThemeCatalogue(e.THEMES_FILE);
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const lang = (e.LANG ?? "").toLowerCase();
  return {
    models,
    ...(local === undefined ? {} : { local }),
    // Local servers (Ollama, llama.cpp) ignore the key, but the SDK needs one.
    apiKey: e.OPENAI_API_KEY ?? "not-needed",
    timeoutMs: num(e.OPENAI_TIMEOUT_MS, DEFAULTS.OPENAI_TIMEOUT_MS),
    maxRetries: num(e.OPENAI_MAX_RETRIES, DEFAULTS.OPENAI_MAX_RETRIES),
    prices: {
      inputPerMTok: num(e.MODEL_PRICE_INPUT_PER_MTOK, DEFAULTS.MODEL_PRICE_INPUT_PER_MTOK),
      outputPerMTok: num(e.MODEL_PRICE_OUTPUT_PER_MTOK, DEFAULTS.MODEL_PRICE_OUTPUT_PER_MTOK),
    },
    methods: {
      open: (e.METHOD_OPEN ?? DEFAULTS.METHOD_OPEN) as Method,
      continue: (e.METHOD_CONTINUE ?? DEFAULTS.METHOD_CONTINUE) as Method,
      rewrite: (e.METHOD_REWRITE ?? DEFAULTS.METHOD_REWRITE) as Method,
    },
    reactMaxSteps: num(e.REACT_MAX_STEPS, DEFAULTS.REACT_MAX_STEPS),
    recentChapters: num(e.RECENT_CHAPTERS, DEFAULTS.RECENT_CHAPTERS),
    databaseUrl: e.DATABASE_URL ?? DEFAULTS.DATABASE_URL,
    exportDir: e.EXPORT_DIR ?? DEFAULTS.EXPORT_DIR,
    locale: (e.INKLOOM_LOCALE as Locale | undefined) ?? (lang.startsWith("zh") ? "zh" : "en"),
    voteSeconds: num(e.VOTE_SECONDS, DEFAULTS.VOTE_SECONDS),
    jobConcurrency: num(e.JOB_CONCURRENCY, DEFAULTS.JOB_CONCURRENCY),
    ...(e.REDIS_URL === undefined
      ? {}
      : {
          redis: {
            url: e.REDIS_URL,
            prefix: e.REDIS_PREFIX ?? DEFAULTS.REDIS_PREFIX,
            workerConcurrency: num(e.WORKER_CONCURRENCY, num(e.JOB_CONCURRENCY, DEFAULTS.JOB_CONCURRENCY)),
          },
        }),
    ...(e.HEALTH_PORT === undefined ? {} : { healthPort: Number(e.HEALTH_PORT) }),
    ...(e.DATABASE_POOL_SIZE === undefined ? {} : { databasePoolSize: Number(e.DATABASE_POOL_SIZE) }),
    shutdownGraceMs: num(e.SHUTDOWN_GRACE_SECONDS, DEFAULTS.SHUTDOWN_GRACE_SECONDS) * 1000,
    preplan: {
      enabled: (e.PREPLAN ?? DEFAULTS.PREPLAN) === "on",
      concurrency: num(e.PREPLAN_CONCURRENCY, DEFAULTS.PREPLAN_CONCURRENCY),
    },
    ...(e.STRUCTURED_OUTPUT === undefined || e.STRUCTURED_OUTPUT === "auto"
      ? {}
      : { structuredOutput: e.STRUCTURED_OUTPUT as StructuredStrategy }),
    moderation: e.MODERATION_MODEL !== undefined,
    ...(e.IMAGE_MODEL === undefined
      ? {}
      : {
          images: {
            model: e.IMAGE_MODEL,
            baseUrl: e.IMAGE_BASE_URL ?? baseUrl,
            apiKey: e.IMAGE_API_KEY ?? e.OPENAI_API_KEY ?? "not-needed",
            size: e.IMAGE_SIZE ?? DEFAULTS.IMAGE_SIZE,
            timeoutMs: num(e.IMAGE_TIMEOUT_MS, DEFAULTS.IMAGE_TIMEOUT_MS),
          },
        }),
    imageDir: e.IMAGE_DIR ?? DEFAULTS.IMAGE_DIR,
    imagesPerChapter: num(e.IMAGES_PER_CHAPTER, DEFAULTS.IMAGES_PER_CHAPTER),
    imagesPerDay: num(e.IMAGES_PER_DAY, DEFAULTS.IMAGES_PER_DAY),
    illustrateCooldownSeconds: num(e.ILLUSTRATE_COOLDOWN_SECONDS, DEFAULTS.ILLUSTRATE_COOLDOWN_SECONDS),
    themeCatalogue,
    talkCooldownSeconds: num(e.TALK_COOLDOWN_SECONDS, DEFAULTS.TALK_COOLDOWN_SECONDS),
    ...(e.DISCORD_TOKEN === undefined || e.DISCORD_APPLICATION_ID === undefined
      ? {}
      : {
          discord: {
            token: e.DISCORD_TOKEN,
            applicationId: e.DISCORD_APPLICATION_ID,
            apiRoot: e.DISCORD_API_ROOT ?? DEFAULTS.DISCORD_API_ROOT,
            ...(e.DISCORD_DEV_GUILD_ID === undefined ? {} : { devGuildId: e.DISCORD_DEV_GUILD_ID }),
            shards,
          },
        }),
    ...(e.TELEGRAM_BOT_TOKEN === undefined
      ? {}
      : {
          telegram: {
            token: e.TELEGRAM_BOT_TOKEN,
            apiRoot: e.TELEGRAM_API_ROOT ?? DEFAULTS.TELEGRAM_API_ROOT,
            ...(e.TELEGRAM_WEBHOOK_URL === undefined
              ? {}
              : {
                  webhook: {
                    url: e.TELEGRAM_WEBHOOK_URL,
                    port: num(e.TELEGRAM_WEBHOOK_PORT, DEFAULTS.TELEGRAM_WEBHOOK_PORT),
                    ...(e.TELEGRAM_WEBHOOK_SECRET === undefined ? {} : { secret: e.TELEGRAM_WEBHOOK_SECRET }),
                  },
                }),
          },
        }),
  };
}
