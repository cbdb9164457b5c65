/**
 * `npm run train:finetune -- --train <file.jsonl> --model <base model> [options]`: fine-tunes
 * a model through the OpenAI fine-tuning API (OpenAI, or a provider offering the same
 * endpoints). Checks the JSONL files, uploads them, creates the job, follows its events
 * with a progress bar, and when it succeeds makes the fine-tuned model the route of a
 * task (`--task`, default continue). `--resume <ftjob-id>` follows a job already started.
 *
 * Progress goes to standard output (the bar is redrawn in place on a terminal, one line
 * per update otherwise); problems to standard error. Exit code: 0 when the model was
 * registered, 1 when the job failed or was cancelled or the API could not be used,
 * 2 on a usage error (bad option, missing or invalid file, no API key), 130 after Ctrl-C,
 * which stops following but leaves the job running.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULTS } from "../../app/config.ts";
import { TASKS, type Task } from "../../llm/types.ts";
import { DatabaseOpenError, type Db, openDatabase } from "../../store/db.ts";
import {
  describeRoute,
  eventMetrics,
  FineTuneError,
  FineTuner,
  type FineTuningJob,
  type FineTuningJobEvent,
  type JobContext,
  recordJob,
  register,
} from "../finetune.ts";
import { validateJsonl } from "../jsonl-format.ts";
import { isTask } from "../routes.ts";
import { loadEnvFile } from "./common.ts";

const DEFAULT_BASE_URL = "https://api.openai.com/v1";
/** Problems shown for an invalid file (the rest: `npm run train:validate`). */
const SHOWN_ERRORS = 5;

const USAGE = `usage: npm run train:finetune -- --train <file.jsonl> --model <base model> [options]
       npm run train:finetune -- --resume <ftjob-id> [options]

  --train <file>          training examples, chat JSONL (required unless --resume)
  --validation <file>     validation examples, chat JSONL
  --model <name>          the base model to fine-tune (required unless --resume)
  --task <task>           whose route the model becomes (default continue): ${TASKS.join(", ")}
  --suffix <text>         part of the fine-tuned model's name (default inkloom)
  --base-url <url>        the fine-tuning API (default OPENAI_BASE_URL or ${DEFAULT_BASE_URL})
  --serve-base-url <url>  where the route calls the model (default the --base-url)
  --poll-ms <ms>          pause between polls (default 5000)
  --resume <ftjob-id>     follow an existing job instead of creating one
  --database <url>        default DATABASE_URL or ${DEFAULTS.DATABASE_URL}
The API key is OPENAI_API_KEY (from the environment or .env).`;

interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(text: string): unknown };
}

interface Options {
  train: string | undefined;
  validation: string | undefined;
  model: string | undefined;
  /** Undefined when not given: a resumed job keeps the task it was started for. */
  task: Task | undefined;
  suffix: string;
  baseUrl: string;
  serveBaseUrl: string | undefined;
  pollMs: number;
  resume: string | undefined;
  databaseUrl: string;
  /** Given on the command line (repeated in the resume hint). */
  databaseGiven: boolean;
}

class UsageError extends Error {
  /** False for a problem with a file or the environment, where the option list would not help. */
  constructor(
    message: string,
    readonly showUsage = true,
  ) {
    super(message);
  }
}

function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Options | "help" {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) return "help";
  const resume = nonEmpty(values.resume, "--resume");
  const train = nonEmpty(values.train, "--train");
  const model = nonEmpty(values.model, "--model");
  if (resume === undefined) {
    if (train === undefined) throw new UsageError("--train <file> is required (or --resume <ftjob-id>)");
    if (model === undefined) throw new UsageError("--model <base model> is required (or --resume <ftjob-id>)");
  } else if (train !== undefined || values.validation !== undefined) {
    throw new UsageError("--resume follows an existing job: leave out --train and --validation");
  }
  let task: Task | undefined;
  if (values.task !== undefined) {
    if (!isTask(values.task)) throw new UsageError(`--task must be one of ${TASKS.join(", ")} (got "${values.task}")`);
    task = values.task;
  }
  const pollMs = values["poll-ms"] === undefined ? 5000 : Number(values["poll-ms"]);
  if (!Number.isInteger(pollMs) || pollMs <= 0) {
    throw new UsageError(`--poll-ms must be a positive whole number of milliseconds (got "${values["poll-ms"]}")`);
  }
  const suffix = values.suffix ?? "inkloom";
  if (suffix.length > 64) throw new UsageError("--suffix must be at most 64 characters");
  const baseUrl = url(values["base-url"] ?? nonBlank(env.OPENAI_BASE_URL) ?? DEFAULT_BASE_URL, "--base-url");
  const serveBaseUrl =
    values["serve-base-url"] === undefined ? undefined : url(values["serve-base-url"], "--serve-base-url");
  const databaseUrl = values.database ?? nonBlank(env.DATABASE_URL) ?? DEFAULTS.DATABASE_URL;
  return {
    train,
    validation: nonEmpty(values.validation, "--validation"),
    model,
    task,
    suffix,
    baseUrl,
    serveBaseUrl,
    pollMs,
    resume,
    databaseUrl,
    databaseGiven: values.database !== undefined,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      train: { type: "string" },
      validation: { type: "string" },
      model: { type: "string" },
      task: { type: "string" },
      suffix: { type: "string" },
      "base-url": { type: "string" },
      "serve-base-url": { type: "string" },
      "poll-ms": { type: "string" },
      resume: { type: "string" },
      database: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function nonEmpty(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "") throw new UsageError(`${name} needs a value`);
  return value;
}

function nonBlank(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function url(value: string, name: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new UsageError(`${name} must be an http(s) URL (got "${value}")`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`${name} must be an http(s) URL (got "${value}")`);
  }
  return value.replace(/\/+$/, "");
}

/** Reads and checks a JSONL file; a usage error naming the first problems when it is not valid. */
function checkFile(path: string, option: string): number {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(error);
    throw new UsageError(`cannot read ${option} ${path}: ${reason}`, false);
  }
  const report = validateJsonl(text, "chat");
  if (report.errorCount > 0 || report.valid === 0) {
    const lines = report.errors.slice(0, SHOWN_ERRORS).map((e) => `  ${e.message}`);
    const more = report.errorCount - lines.length;
    if (more > 0) lines.push(`  … and ${more} more (npm run train:validate -- ${path})`);
    throw new UsageError(
      `${option} ${path} is not valid fine-tuning data (${report.errorCount} problem(s)); nothing was uploaded:\n${lines.join("\n")}`,
      false,
    );
  }
  return report.valid;
}

/** Status lines, event messages and the training progress bar. */
class ProgressDisplay {
  /** The bar as last drawn, while it is on screen (terminal only). */
  #bar: string | undefined;

  constructor(private readonly out: Io["stdout"]) {}

  get #tty(): boolean {
    return this.out.isTTY === true;
  }

  line(text: string): void {
    if (this.#tty && this.#bar !== undefined) this.out.write(`\r\x1b[K${text}\n${this.#bar}`);
    else this.out.write(`${text}\n`);
  }

  status(job: FineTuningJob, previous: string | undefined): void {
    this.line(previous === undefined ? `Status: ${job.status}` : `Status: ${previous} -> ${job.status}`);
  }

  event(event: FineTuningJobEvent): void {
    const metrics = eventMetrics(event);
    if (metrics === undefined) {
      this.line(`  ${event.level === "info" ? "" : `[${event.level}] `}${event.message}`);
      return;
    }
    const bar = renderBar(metrics, this.#tty ? (this.out.columns ?? 80) : undefined);
    if (this.#tty) {
      this.out.write(`\r\x1b[K${bar}`);
      this.#bar = bar;
    } else {
      this.out.write(`${bar}\n`);
    }
  }

  /** Leaves the bar on its own line, so what follows starts on a fresh one. */
  end(): void {
    if (this.#tty && this.#bar !== undefined) this.out.write("\n");
    this.#bar = undefined;
  }
}

/** `columns`: the terminal's width, which the bar shrinks to fit; undefined for a full-width bar. */
function renderBar(metrics: NonNullable<ReturnType<typeof eventMetrics>>, columns: number | undefined): string {
  const loss =
    (metrics.trainLoss !== undefined ? `, train loss ${metrics.trainLoss.toFixed(4)}` : "") +
    (metrics.validLoss !== undefined ? `, validation loss ${metrics.validLoss.toFixed(4)}` : "");
  const total = metrics.totalSteps;
  if (total === undefined || total <= 0) return `  step ${metrics.step}${loss}`;
  const fraction = Math.min(1, Math.max(0, metrics.step / total));
  const text = ` ${metrics.step}/${total} steps (${Math.round(fraction * 100)}%)${loss}`;
  const width = columns === undefined ? 30 : Math.max(10, Math.min(30, columns - text.length - 5));
  const filled = Math.round(fraction * width);
  return `  [${"#".repeat(filled)}${"-".repeat(width - filled)}]${text}`;
}

function resumeHint(jobId: string, options: Options, task: Task): string {
  const parts = ["npm run train:finetune --", "--resume", jobId, "--task", task, "--base-url", options.baseUrl];
  if (options.serveBaseUrl !== undefined) parts.push("--serve-base-url", options.serveBaseUrl);
  if (options.databaseGiven) parts.push("--database", options.databaseUrl);
  return parts.join(" ");
}

/** Runs the command on `argv` (without node and the script) and returns the exit code. */
async function run(argv: readonly string[], io: Io, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<number> {
  const err = (text: string) => io.stderr.write(`${text}\n`);
  let options: Options;
  try {
    const parsed = parseOptions(argv, env);
    if (parsed === "help") {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = parsed;
    if (nonBlank(env.OPENAI_API_KEY) === undefined) {
      throw new UsageError("set OPENAI_API_KEY to the provider's API key (in the environment or .env)", false);
    }
    if (options.train !== undefined) {
      const count = checkFile(options.train, "--train");
      io.stdout.write(`${options.train}: ${count} example(s), valid\n`);
    }
    if (options.validation !== undefined) {
      const count = checkFile(options.validation, "--validation");
      io.stdout.write(`${options.validation}: ${count} example(s), valid\n`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`train:finetune: ${error.message}`);
    if (error.showUsage) err(USAGE);
    return 2;
  }

  let db: Db;
  try {
    db = await openDatabase(options.databaseUrl);
  } catch (error) {
    if (error instanceof DatabaseOpenError) {
      err(error.message);
      return 1;
    }
    throw error;
  }
  const progress = new ProgressDisplay(io.stdout);
  const tuner = new FineTuner({
    baseUrl: options.baseUrl,
    apiKey: nonBlank(env.OPENAI_API_KEY) ?? "",
    onRetry: ({ what, delayMs, error }) =>
      progress.line(`  (${error.message}; retrying ${what} in ${(delayMs / 1000).toFixed(1)} s)`),
  });
  let jobId: string | undefined;
  let task: Task = options.task ?? "continue";
  try {
    let job: FineTuningJob;
    if (options.resume !== undefined) {
      jobId = options.resume;
      if (options.task === undefined) {
        const row = await db.fineTuneJob.findUnique({ where: { providerJobId: jobId } });
        if (row !== null && isTask(row.task)) task = row.task;
      }
      job = await tuner.retrieve(jobId, signal);
      io.stdout.write(`Resuming ${job.id}: ${job.model}, for the ${task} task\n`);
    } else {
      const train = await tuner.upload(options.train ?? "", "fine-tune", signal);
      io.stdout.write(`Uploaded ${options.train} as ${train.id} (${train.bytes} bytes)\n`);
      let validationId: string | undefined;
      if (options.validation !== undefined) {
        const validation = await tuner.upload(options.validation, "fine-tune", signal);
        validationId = validation.id;
        io.stdout.write(`Uploaded ${options.validation} as ${validation.id} (${validation.bytes} bytes)\n`);
      }
      // Not abortable: once sent, a job may exist, and its id is what a resume needs.
      job = await tuner.create({
        model: options.model ?? "",
        trainingFileId: train.id,
        ...(validationId !== undefined && { validationFileId: validationId }),
        suffix: options.suffix,
      });
      jobId = job.id;
      io.stdout.write(`Created fine-tuning job ${job.id}: ${job.model}, for the ${task} task\n`);
    }
    const context: JobContext = { task, baseUrl: options.baseUrl };
    await recordJob(db, job, context);
    io.stdout.write(`Following ${job.id} every ${options.pollMs} ms (Ctrl-C stops following; the job goes on)\n`);
    progress.status(job, undefined);
    const id = job.id;
    job = await tuner.follow(id, {
      pollMs: options.pollMs,
      knownStatus: job.status,
      ...(signal !== undefined && { signal }),
      onEvent: (event) => progress.event(event),
      onStatus: async (current, previous) => {
        await recordJob(db, current, context);
        progress.status(current, previous);
      },
    });
    progress.end();
    const registration = await register(db, job, {
      ...context,
      ...(options.serveBaseUrl !== undefined && { serveBaseUrl: options.serveBaseUrl }),
    });
    if (!registration.registered) {
      err(`Fine-tuning job ${job.id} did not produce a model: ${registration.reason}. No route was registered.`);
      return 1;
    }
    if (job.trained_tokens !== null) io.stdout.write(`Trained tokens: ${job.trained_tokens}\n`);
    io.stdout.write(`Registered route: ${describeRoute(registration.task, registration.route)}\n`);
    return 0;
  } catch (error) {
    progress.end();
    if (signal?.aborted) {
      if (jobId === undefined) {
        err("Stopped before a fine-tuning job was created.");
      } else {
        err(`Stopped following ${jobId}; the job goes on at the provider.`);
        err(`Resume with: ${resumeHint(jobId, options, task)}`);
      }
      return 130;
    }
    if (error instanceof FineTuneError) {
      err(`train:finetune: ${error.message}`);
      if (jobId !== undefined && error.status !== 404) {
        err(`The job may still be running. Resume with: ${resumeHint(jobId, options, task)}`);
      }
      return 1;
    }
    throw error;
  } finally {
    await db.$disconnect();
  }
}

async function main(): Promise<number> {
  loadEnvFile();
  const controller = new AbortController();
  const interrupt = () => controller.abort(new DOMException("Interrupted.", "AbortError"));
  process.once("SIGINT", interrupt);
  try {
    return await run(
      process.argv.slice(2),
      { stdout: process.stdout, stderr: process.stderr },
      process.env,
      controller.signal,
    );
  } finally {
    process.off("SIGINT", interrupt);
  }
}

process.exitCode = await main();
