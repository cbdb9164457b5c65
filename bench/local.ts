/**
 * `npm run bench:local`: how fast the embedded model runs on this machine. For each model
 * (the tiny test model always, written to a temporary folder; the model at `LOCAL_MODEL`
 * too when it is a `.gguf` path, or `default` / `hf:` already downloaded into
 * `LOCAL_MODEL_DIR`):
 *
 * - a chapter's wall time through the real engine (`createEngine` with `config.local`,
 *   SQLite in a temp dir): `start` (chapter 1) and one `choose` (chapter 2), with the
 *   model requests each made;
 * - prompt processing: N tokens evaluated in a cleared sequence, nothing generated;
 * - generation: M tokens sampled after that prompt, timed from the first to the last;
 * - time to first token for the story agent's prose prompt (chapter 2's, from the run
 *   above; a documented synthetic size with --skip-chapter).
 *
 * Needs the runtime (node-llama-cpp in LOCAL_RUNTIME_DIR): without it, exits 1 saying how
 * to install it. Prints ONE JSON document to stdout (progress goes to stderr) and exits 0
 * unless the benchmark itself cannot run (no runtime, a bad option, a bad LOCAL_MODEL).
 *
 * Options (flag or env): --threads N / BENCH_LOCAL_THREADS (default LOCAL_MODEL_THREADS or 1),
 * --prompt-tokens N / BENCH_LOCAL_PROMPT_TOKENS (512), --gen-tokens N / BENCH_LOCAL_GEN_TOKENS
 * (128), --repeats N / BENCH_LOCAL_REPEATS (3), --timeout S / BENCH_LOCAL_TIMEOUT_S (1800, per
 * chapter), --skip-chapter / BENCH_LOCAL_SKIP_CHAPTER=1. See bench/README.md.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type Config, ConfigError, DEFAULT_LOCAL_RUNTIME_DIR, loadConfig } from "../src/app/config.ts";
import { createEngine } from "../src/app/wiring.ts";
import { LocalModelClient } from "../src/llm/local-client.ts";
import { DEFAULT_LOCAL_MODEL_DIR, hubModelPath, parseLocalModelSpec } from "../src/llm/local-models.ts";
import {
  type LlamaContextLike,
  type LlamaContextSequenceLike,
  type LlamaLike,
  LocalRuntimeMissing,
  loadNodeLlamaCpp,
  nodeLlamaCppEntry,
  type Token,
} from "../src/llm/local-runtime.ts";
import type { ChatRequest, ChatResult, ChatStreamEvent, ModelClient, ModelRoute, Task } from "../src/llm/types.ts";
import type { ChoiceOffer, MessageRef, Surface } from "../src/render/surface.ts";
import type { WriteTicket } from "../src/story/chapter-job.ts";
import type { Conversation } from "../src/story/identity.ts";
import { TINY_VOCAB, writeTinyLlamaGguf } from "../tests/helpers/gguf-writer.ts";
import { engineLogger } from "./harness.ts";
import { type Distribution, distribution, option, round } from "./stats.ts";

const progress = (message: string) => process.stderr.write(`[bench:local] ${message}\n`);

/** Thrown for what the person running the bench must fix; printed without a stack. */
class BenchUsageError extends Error {}

/** Sampling of every timed generation: the client's default temperature, a fixed seed. */
const SAMPLING = { temperature: 0.8, seed: 1 } as const;
/**
 * The prompt of the time-to-first-token measure when no chapter ran (--skip-chapter):
 * the story agent's prose request at chapter 20 of `npm run bench` (characters / 4 of the
 * request the fake model received), a typical chapter's prompt for a BPE tokenizer.
 */
const SYNTHETIC_CHAPTER_PROMPT_TOKENS = 1344;
/** The sampling seed of the chapter runs (LOCAL_MODEL_SEED), so a run can be repeated. */
const CHAPTER_SEED = 7;
/** The tiny model's knobs, as in tests/local-model/terminal-chapter.local.test.ts, so a chapter completes. */
const TINY = { contextLength: 16_384, seed: CHAPTER_SEED } as const;
const SCENARIO = "a lighthouse keeper finds a letter from the future";
/** Text the measured prompts are cut from (repeated as needed). */
const PASSAGE =
  "The lighthouse keeper climbed the spiral stairs at dusk, as he had every evening for thirty years. " +
  "On the lamp room's sill lay an envelope, dry although the storm had raged all afternoon, addressed " +
  "in his own hand and dated a year from now. He turned it over twice before he dared to open it. ";

interface Settings {
  runtimeDir: string;
  threads: number;
  promptTokens: number;
  genTokens: number;
  repeats: number;
  timeoutSec: number;
  skipChapter: boolean;
}

/** An integer option in [min, max], with a message naming the flag and the variable. */
function intOption(flag: string, envName: string, fallback: number, min: number, max: number): number {
  let value: number;
  try {
    value = option(flag, envName, fallback);
  } catch (error) {
    throw new BenchUsageError((error as Error).message);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BenchUsageError(`${flag} / ${envName} must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function readSettings(): Settings {
  const threadDefault = Number(process.env.LOCAL_MODEL_THREADS || 1);
  if (!Number.isInteger(threadDefault) || threadDefault < 1) {
    throw new BenchUsageError(
      `LOCAL_MODEL_THREADS must be a whole number of 1 or more, got ${process.env.LOCAL_MODEL_THREADS}`,
    );
  }
  const skip = process.env.BENCH_LOCAL_SKIP_CHAPTER;
  return {
    runtimeDir: process.env.LOCAL_RUNTIME_DIR || DEFAULT_LOCAL_RUNTIME_DIR,
    threads: intOption("--threads", "BENCH_LOCAL_THREADS", threadDefault, 1, 256),
    promptTokens: intOption("--prompt-tokens", "BENCH_LOCAL_PROMPT_TOKENS", 512, 1, 32_768),
    genTokens: intOption("--gen-tokens", "BENCH_LOCAL_GEN_TOKENS", 128, 2, 8192),
    repeats: intOption("--repeats", "BENCH_LOCAL_REPEATS", 3, 1, 20),
    timeoutSec: intOption("--timeout", "BENCH_LOCAL_TIMEOUT_S", 1800, 1, 86_400),
    skipChapter: process.argv.includes("--skip-chapter") || skip === "1" || skip === "true",
  };
}

/** A model to measure, or why the one LOCAL_MODEL names is not. */
type Target =
  | { name: string; spec: string | null; status: "measure"; path: string; chapterEnv: Record<string, string> }
  | { name: string; spec: string | null; status: "not set" | "not downloaded"; path: string | null };

/** The model LOCAL_MODEL names: a `.gguf` path, or `default` / `hf:` if already downloaded. */
function localModelTarget(): Target {
  const spec = process.env.LOCAL_MODEL?.trim();
  if (spec === undefined || spec === "") return { name: "LOCAL_MODEL", spec: null, status: "not set", path: null };
  const parsed = parseLocalModelSpec(spec);
  if ("error" in parsed) throw new BenchUsageError(parsed.error);
  // Its own settings when set; the client's defaults otherwise, and a fixed seed.
  const chapterEnv: Record<string, string> = { LOCAL_MODEL_SEED: process.env.LOCAL_MODEL_SEED ?? String(CHAPTER_SEED) };
  for (const name of ["LOCAL_MODEL_CONTEXT", "LOCAL_MODEL_SEQUENCES"] as const) {
    const value = process.env[name];
    if (value !== undefined) chapterEnv[name] = value;
  }
  if (parsed.kind === "file") {
    if (!parsed.path.endsWith(".gguf") || !isFile(parsed.path)) {
      throw new BenchUsageError(`LOCAL_MODEL must be the path of a .gguf file; ${parsed.path} is not one`);
    }
    return { name: "LOCAL_MODEL", spec, status: "measure", path: parsed.path, chapterEnv };
  }
  const path = hubModelPath(process.env.LOCAL_MODEL_DIR || DEFAULT_LOCAL_MODEL_DIR, parsed.repo, parsed.file);
  if (!isFile(path)) return { name: "LOCAL_MODEL", spec, status: "not downloaded", path };
  return { name: "LOCAL_MODEL", spec, status: "measure", path, chapterEnv };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** One model call as the engine made it. */
interface CallRecord {
  task: Task;
  /** text (free text: a chapter's prose, CoT's thought), json (response format), tool (forced call), tools (ReAct, auto). */
  shape: "text" | "json" | "tool" | "tools";
  /** The chapter it was made for. */
  chapter: number;
  startedAt: number;
  ms?: number;
  firstTokenMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  /** The request's message text (text calls only: the time-to-first-token prompt). */
  text?: string;
}

function shapeOf(req: ChatRequest): CallRecord["shape"] {
  const tools = req.tools ?? [];
  if (tools.length > 0) {
    const choice = req.toolChoice ?? "auto";
    return typeof choice === "object" || (choice === "required" && tools.length === 1) ? "tool" : "tools";
  }
  return req.responseFormat === undefined ? "text" : "json";
}

/** Wraps the engine's model client: every call with its shape, time and token counts. */
class RecordingModelClient implements ModelClient {
  readonly calls: CallRecord[] = [];
  /** The chapter being written: calls are charged to it. */
  chapter = 0;
  constructor(readonly inner: ModelClient) {}

  route(task: Task): ModelRoute {
    return this.inner.route(task);
  }

  async complete(req: ChatRequest): Promise<ChatResult> {
    const call = this.#begin(req);
    try {
      const result = await this.inner.complete(req);
      this.#end(call, result);
      return result;
    } finally {
      call.ms ??= performance.now() - call.startedAt;
    }
  }

  async *stream(req: ChatRequest): AsyncIterable<ChatStreamEvent> {
    const call = this.#begin(req);
    try {
      for await (const event of this.inner.stream(req)) {
        if (event.type === "done") this.#end(call, event);
        yield event;
      }
    } finally {
      call.ms ??= performance.now() - call.startedAt;
    }
  }

  #begin(req: ChatRequest): CallRecord {
    const shape = shapeOf(req);
    const call: CallRecord = { task: req.task, shape, chapter: this.chapter, startedAt: performance.now() };
    if (shape === "text") call.text = req.messages.map((m) => m.content ?? "").join("\n\n");
    this.calls.push(call);
    return call;
  }

  #end(call: CallRecord, result: ChatResult): void {
    call.ms = performance.now() - call.startedAt;
    call.promptTokens = result.usage.promptTokens;
    call.completionTokens = result.usage.completionTokens;
    if (result.usage.firstTokenMs !== undefined) call.firstTokenMs = result.usage.firstTokenMs;
  }
}

/** One chapter as the reader lived it. */
interface ChapterMark {
  number: number;
  requestAt: number;
  firstProseAt?: number;
  choicesAt?: number;
}

/** A surface like the terminal's, that timestamps the chapter's first prose and its choices. */
class BenchSurface implements Surface {
  readonly limits = { maxMessageLength: 4000, minEditIntervalMs: 0 };
  current: ChapterMark | undefined;
  offers: ChoiceOffer[] = [];
  failures: string[] = [];
  #ids = 0;

  async post(text: string): Promise<MessageRef> {
    this.#seen(text);
    return { id: String(++this.#ids) };
  }
  async edit(_ref: MessageRef, text: string): Promise<void> {
    this.#seen(text);
  }
  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    if (this.current !== undefined) this.current.choicesAt ??= performance.now();
    this.offers.push(offer);
    return { id: String(++this.#ids) };
  }
  async updateChoices(): Promise<void> {}
  async closeChoices(): Promise<void> {}
  async notice(_text: string): Promise<void> {}
  async failed(text: string): Promise<void> {
    this.failures.push(text);
  }
  async sendFile(): Promise<void> {}
  async postImage(): Promise<MessageRef> {
    return { id: String(++this.#ids) };
  }

  /** The first text that is more than the chapter's heading. */
  #seen(text: string): void {
    const mark = this.current;
    if (mark === undefined || mark.firstProseAt !== undefined) return;
    if (text.replace(/^\s*Chapter \d+[^\n]*/, "").trim() === "") return;
    mark.firstProseAt = performance.now();
  }
}

interface ChapterResult {
  number: number;
  action: "start" | "choose";
  ok: boolean;
  /** Action → the job finished (choices offered, the chapter saved). */
  wallMs: number;
  /** Action → the first prose on the surface. */
  firstProseMs: number | null;
  /** Action → the choices offered. */
  choicesMs: number | null;
  modelRequests: number;
  requestsByShape: Record<CallRecord["shape"], number>;
  /** Sums over the chapter's model calls (node-llama-cpp's token meter: cached prefix tokens are not counted again). */
  promptTokens: number;
  completionTokens: number;
  /** The streamed prose call: its prompt and output tokens, time to its first token and its whole time. */
  prose: RequestTiming | null;
  /** Every model request, in the order made (the check and the choices run at once). */
  requests: (RequestTiming & { task: Task; shape: CallRecord["shape"] })[];
}

interface RequestTiming {
  promptTokens: number;
  completionTokens: number;
  firstTokenMs: number | null;
  ms: number;
}

function timing(call: CallRecord): RequestTiming {
  return {
    promptTokens: call.promptTokens ?? 0,
    completionTokens: call.completionTokens ?? 0,
    firstTokenMs: call.firstTokenMs === undefined ? null : round(call.firstTokenMs),
    ms: round(call.ms ?? 0),
  };
}

/** The message text of a chapter's prose request, and which chapter it wrote. */
interface ProsePrompt {
  text: string;
  chapter: number;
}

interface ChapterRun {
  skipped: false;
  ok: boolean;
  /** Loading the model, its context and sequences into the engine's client, before chapter 1. */
  loadMs: number;
  settings: { threads: number; sequences: number; contextSize: number; seed: number | null; preplan: "off" };
  chapters: ChapterResult[];
  failures: string[];
  engineLog: string[];
}

/** The engine's configuration for a chapter run on the model at `path` (no endpoint: the embedded model). */
function chapterConfig(
  path: string,
  settings: Settings,
  extraEnv: Record<string, string>,
  databaseUrl: string,
): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    LOCAL_MODEL: path,
    LOCAL_RUNTIME_DIR: settings.runtimeDir,
    LOCAL_MODEL_THREADS: String(settings.threads),
    // Chapter 2's time includes its own planning; nothing plans in the background meanwhile.
    PREPLAN: "off",
    INKLOOM_LOCALE: "en",
    ...extraEnv,
  });
}

/** Chapter 1 (`start`) and chapter 2 (`choose` 1) through the real engine on the model at `path`. */
async function runChapters(
  path: string,
  settings: Settings,
  extraEnv: Record<string, string>,
): Promise<{ run: ChapterRun; prosePrompt: ProsePrompt | undefined }> {
  const dir = mkdtempSync(join(tmpdir(), "inkloom-bench-local-"));
  const logger = engineLogger(progress);
  const config = chapterConfig(path, settings, extraEnv, `file:${join(dir, "bench.db")}`);
  const local = config.local;
  if (local === undefined) throw new Error("the configuration chose no local model");
  let recorder: RecordingModelClient | undefined;
  const engine = await createEngine(config, logger.log, {
    decorateModel: (inner) => (recorder = new RecordingModelClient(inner)),
  });
  const surface = new BenchSurface();
  const conversation: Conversation = { platform: "bench", workspaceId: "bench", id: "bench" };
  engine.audiences.set(`${conversation.platform}:${conversation.id}`, { surface, locale: "en" });
  const chapters: ChapterResult[] = [];
  const failures: string[] = [];
  let timedOut = false;
  try {
    // Loaded before chapter 1 (the client loads on its first request), so both chapters' times are their own.
    const loadStart = performance.now();
    if (recorder?.inner instanceof LocalModelClient) await recorder.inner.load();
    else throw new Error("the engine's model client is not the embedded model's");
    const loadMs = round(performance.now() - loadStart);
    let storyId = "";
    for (const number of [1, 2]) {
      const mark: ChapterMark = { number, requestAt: performance.now() };
      surface.current = mark;
      const firstCall = recorder?.calls.length ?? 0;
      if (recorder !== undefined) recorder.chapter = number;
      progress(`chapter ${number}: ${number === 1 ? `start "${SCENARIO}"` : "choose 1"}`);
      let ticket: WriteTicket;
      if (number === 1) {
        ticket = await engine.stories.start({
          actor: { platform: "bench", id: "reader", name: "Reader" },
          conversation,
          premise: SCENARIO,
          genre: "none",
        });
        storyId = ticket.storyId;
      } else {
        const offer = surface.offers.at(-1);
        if (offer === undefined) break;
        ticket = await engine.stories.choose(storyId, offer.revision, 1);
      }
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        ticket.job.finished.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), settings.timeoutSec * 1000);
        }),
      ]).finally(() => clearTimeout(timer));
      const wallMs = performance.now() - mark.requestAt;
      const calls = (recorder?.calls ?? []).slice(firstCall);
      const ok = finished && mark.choicesAt !== undefined;
      chapters.push(chapterResult(mark, number === 1 ? "start" : "choose", ok, wallMs, calls));
      progress(
        `chapter ${number}: ${ok ? "done" : "FAILED"} in ${round(wallMs / 1000, 1)} s, ${calls.length} model requests`,
      );
      if (!finished) {
        timedOut = true;
        failures.push(`chapter ${number}: not finished within ${settings.timeoutSec} s`);
        break;
      }
      if (!ok) {
        const state = await engine.queries.state(storyId);
        failures.push(`chapter ${number}: no choices offered (head status ${state.head?.status ?? "none"})`);
        break;
      }
    }
    failures.push(...surface.failures.map((text) => `shown to the reader: ${text}`));
    // The last chapter's prose request: the prompt of the time-to-first-token measure.
    const prose = (recorder?.calls ?? []).filter(isProse).at(-1);
    return {
      run: {
        skipped: false,
        ok: failures.length === 0 && chapters.length === 2 && chapters.every((c) => c.ok),
        loadMs,
        settings: {
          threads: local.threads,
          sequences: local.sequences,
          contextSize: local.contextSize,
          seed: local.seed ?? null,
          preplan: "off",
        },
        chapters,
        failures,
        engineLog: logger.lines,
      },
      prosePrompt: prose?.text === undefined ? undefined : { text: prose.text, chapter: prose.chapter },
    };
  } finally {
    surface.current = undefined;
    await engine.close(timedOut ? { graceMs: 0 } : {});
    if (recorder?.inner instanceof LocalModelClient) await recorder.inner.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The chapter's prose: the writing task's last free-text call (CoT's thought comes before it). */
function isProse(call: CallRecord): boolean {
  return call.shape === "text" && (call.task === "open" || call.task === "continue");
}

function chapterResult(
  mark: ChapterMark,
  action: ChapterResult["action"],
  ok: boolean,
  wallMs: number,
  calls: CallRecord[],
): ChapterResult {
  const since = (at: number | undefined) => (at === undefined ? null : round(at - mark.requestAt));
  const prose = calls.filter(isProse).at(-1);
  const byShape: ChapterResult["requestsByShape"] = { text: 0, json: 0, tool: 0, tools: 0 };
  for (const c of calls) byShape[c.shape]++;
  return {
    number: mark.number,
    action,
    ok,
    wallMs: round(wallMs),
    firstProseMs: since(mark.firstProseAt),
    choicesMs: since(mark.choicesAt),
    modelRequests: calls.length,
    requestsByShape: byShape,
    promptTokens: calls.reduce((s, c) => s + (c.promptTokens ?? 0), 0),
    completionTokens: calls.reduce((s, c) => s + (c.completionTokens ?? 0), 0),
    prose: prose === undefined ? null : timing(prose),
    requests: calls.map((c) => ({ task: c.task, shape: c.shape, ...timing(c) })),
  };
}

/** The slice of a node-llama-cpp sequence and context the raw measures use. */
interface BenchSequence extends LlamaContextSequenceLike {
  evaluateWithoutGeneratingNewTokens(tokens: Token[]): Promise<void>;
  evaluate(tokens: Token[], options: { temperature: number; seed: number }): AsyncGenerator<Token, void, void>;
  clearHistory(): Promise<void>;
}
interface BenchContext extends LlamaContextLike {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly currentThreads: number;
}
interface BenchLlama extends LlamaLike {
  readonly llamaCppRelease: { repo: string; release: string };
  readonly buildType: string;
}

interface Rate {
  tokens: number;
  ms: Distribution;
  /** Tokens timed ÷ the median time. */
  tokensPerSecond: number;
}

interface RawMeasures {
  loadMs: number;
  trainContextSize: number;
  context: { contextSize: number; batchSize: number; threads: number; sequences: 1 };
  promptProcessing: Rate;
  generation: Rate & { afterPromptTokens: number };
  timeToFirstToken: { promptTokens: number; source: string; ms: Distribution };
}

/** The first `n` tokens of the passage, repeated as needed. */
function tokensOf(tokenize: (text: string) => Token[], n: number): Token[] {
  const unit = tokenize(PASSAGE);
  const out: Token[] = [];
  while (out.length < n) out.push(...unit.slice(0, n - out.length));
  return out;
}

/** `tokens` and the times of the runs; the rate counts `timed` tokens (default all). */
const rate = (tokens: number, runs: number[], timed = tokens): Rate => {
  const ms = distribution(runs);
  return { tokens, ms, tokensPerSecond: round(timed / (ms.p50 / 1000), 1) };
};

/** Prompt processing, generation and time to first token on a context of its own (one sequence). */
async function measureRaw(
  llama: LlamaLike,
  path: string,
  settings: Settings,
  prosePrompt: ProsePrompt | undefined,
): Promise<RawMeasures> {
  const loadStart = performance.now();
  const model = await llama.loadModel({ modelPath: path });
  const loadMs = performance.now() - loadStart;
  try {
    const train = model.trainContextSize;
    const promptText = prosePrompt === undefined ? undefined : model.tokenize(prosePrompt.text);
    const chapterTokens = Math.min(promptText?.length ?? SYNTHETIC_CHAPTER_PROMPT_TOKENS, train - 1);
    const needed = Math.max(settings.promptTokens + settings.genTokens + 1, chapterTokens + 1);
    if (needed > train) {
      throw new BenchUsageError(
        `--prompt-tokens + --gen-tokens (${settings.promptTokens + settings.genTokens}) must fit ${path}'s context of ${train} tokens`,
      );
    }
    const context = (await model.createContext({
      contextSize: needed,
      sequences: 1,
      threads: settings.threads,
    })) as BenchContext;
    const sequence = context.getSequence() as BenchSequence;
    try {
      const prompt = tokensOf((t) => model.tokenize(t), settings.promptTokens);
      const chapterPrompt = promptText?.slice(0, chapterTokens) ?? tokensOf((t) => model.tokenize(t), chapterTokens);
      // Warm-up: a first evaluation's one-time costs stay out of the timings.
      await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 8));
      await sequence.clearHistory();

      const pp: number[] = [];
      const tg: number[] = [];
      const ttft: number[] = [];
      for (let run = 1; run <= settings.repeats; run++) {
        await sequence.clearHistory();
        let t = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        pp.push(performance.now() - t);

        // Generation continues the same sequence: one token fed, then genTokens sampled
        // (no stop on end-of-sequence); timed from the first sampled token to the last.
        let count = 0;
        let first = 0;
        for await (const _ of sequence.evaluate([prompt[0] as Token], SAMPLING)) {
          count++;
          if (count === 1) first = performance.now();
          if (count === settings.genTokens) break;
        }
        tg.push(performance.now() - first);

        await sequence.clearHistory();
        t = performance.now();
        for await (const _ of sequence.evaluate(chapterPrompt, SAMPLING)) break;
        ttft.push(performance.now() - t);
        progress(
          `run ${run}/${settings.repeats}: ${settings.promptTokens} prompt tokens ${round(pp.at(-1) ?? 0)} ms, ` +
            `${settings.genTokens} generated ${round(tg.at(-1) ?? 0)} ms, first token after ${chapterTokens} ${round(ttft.at(-1) ?? 0)} ms`,
        );
      }
      return {
        loadMs: round(loadMs),
        trainContextSize: train,
        context: {
          contextSize: context.contextSize,
          batchSize: context.batchSize,
          threads: context.currentThreads,
          sequences: 1,
        },
        promptProcessing: rate(settings.promptTokens, pp),
        // The first token's time is the prompt's; the M - 1 after it are the generation.
        generation: {
          ...rate(settings.genTokens, tg, settings.genTokens - 1),
          afterPromptTokens: settings.promptTokens + 1,
        },
        timeToFirstToken: {
          promptTokens: chapterTokens,
          source:
            prosePrompt === undefined
              ? `synthetic: ${SYNTHETIC_CHAPTER_PROMPT_TOKENS} tokens, the story agent's prose request at chapter 20 of npm run bench`
              : `chapter ${prosePrompt.chapter}'s prose request in the chapter run (its messages' text tokenized, without the chat template)`,
          ms: distribution(ttft),
        },
      };
    } finally {
      sequence.dispose();
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

interface ModelResult {
  name: string;
  spec: string | null;
  path: string | null;
  status: "measured" | "not set" | "not downloaded";
  fileBytes?: number;
  raw?: RawMeasures;
  chapter?: ChapterRun | { skipped: true };
}

async function measureModel(llama: LlamaLike, target: Target, settings: Settings): Promise<ModelResult> {
  if (target.status !== "measure") {
    progress(`${target.name}: ${target.status}${target.path === null ? "" : ` (${target.path})`}`);
    return { name: target.name, spec: target.spec, path: target.path, status: target.status };
  }
  progress(`${target.name}: ${target.path}`);
  let chapter: ChapterRun | { skipped: true } = { skipped: true };
  let prosePrompt: ProsePrompt | undefined;
  if (!settings.skipChapter) {
    const done = await runChapters(target.path, settings, target.chapterEnv);
    chapter = done.run;
    prosePrompt = done.prosePrompt;
  }
  const raw = await measureRaw(llama, target.path, settings, prosePrompt);
  return {
    name: target.name,
    spec: target.spec,
    path: target.path,
    status: "measured",
    fileBytes: statSync(target.path).size,
    raw,
    chapter,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const settings = readSettings();
  if (nodeLlamaCppEntry(settings.runtimeDir) === undefined) {
    throw new BenchUsageError(
      `${new LocalRuntimeMissing(settings.runtimeDir).message}\n(or set LOCAL_RUNTIME_DIR to where it is installed)`,
    );
  }
  const local = localModelTarget();
  // LOCAL_MODEL's own settings (LOCAL_MODEL_CONTEXT, ...) refused now, not after the tiny model's run.
  if (local.status === "measure" && !settings.skipChapter) {
    chapterConfig(local.path, settings, local.chapterEnv, "file:bench.db");
  }
  const loadAverageStart = loadavg().map((v) => round(v));
  const lib = await loadNodeLlamaCpp(settings.runtimeDir);
  const llama = (await lib.getLlama({
    gpu: false,
    build: "never",
    progressLogs: false,
    logLevel: "error",
  })) as BenchLlama;
  const dir = mkdtempSync(join(tmpdir(), "inkloom-bench-tiny-"));
  try {
    const tinyPath = join(dir, "tiny.gguf");
    writeTinyLlamaGguf(tinyPath, {
      contextLength: TINY.contextLength,
      favour: [TINY_VOCAB.firstByte + 0x22],
      favourLogits: { [TINY_VOCAB.eos]: 0.5 },
    });
    const tiny: Target = {
      name: "tiny",
      spec: null,
      status: "measure",
      path: tinyPath,
      chapterEnv: { LOCAL_MODEL_CONTEXT: String(TINY.contextLength), LOCAL_MODEL_SEED: String(TINY.seed) },
    };
    const models: ModelResult[] = [];
    for (const target of [tiny, local]) models.push(await measureModel(llama, target, settings));
    const result = {
      benchmark: "local",
      settings: {
        threads: settings.threads,
        promptTokens: settings.promptTokens,
        genTokens: settings.genTokens,
        repeats: settings.repeats,
        skipChapter: settings.skipChapter,
        sampling: SAMPLING,
      },
      runtime: {
        dir: settings.runtimeDir,
        nodeLlamaCpp: runtimeVersion(settings.runtimeDir),
        llamaCpp: llama.llamaCppRelease.release,
        buildType: llama.buildType,
        gpu: false,
      },
      machine: {
        cpuModel: cpus()[0]?.model ?? "unknown",
        cores: cpus().length,
        availableParallelism: availableParallelism(),
        memoryGb: round(totalmem() / 2 ** 30, 1),
        platform: `${process.platform}-${process.arch}`,
        node: process.version,
        loadAverageStart,
        loadAverageEnd: loadavg().map((v) => round(v)),
      },
      models,
      durationSec: round((performance.now() - started) / 1000, 1),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The version of node-llama-cpp installed under the npm prefix `dir`. */
function runtimeVersion(dir: string): string {
  const manifest = JSON.parse(readFileSync(join(dir, "node_modules", "node-llama-cpp", "package.json"), "utf8"));
  return String(manifest.version);
}

try {
  await main();
} catch (error) {
  // What the person running it must fix: the message alone (a configuration's problems one a line).
  if (!(error instanceof BenchUsageError || error instanceof ConfigError)) throw error;
  process.stderr.write(`bench:local: ${error.message}\n`);
  process.exitCode = 1;
}
