/**
 * Fine-tuning through the OpenAI fine-tuning API (OpenAI, and the providers that offer
 * the same endpoints): `FineTuner` uploads JSONL files, creates a job and follows it to
 * its end; `recordJob` keeps the job's `FineTuneJob` row up to date and `register` turns a
 * succeeded job into the route of a task (src/training/routes.ts), so the bot starts using
 * the fine-tuned model with the zero-shot prompt.
 *
 * Like the chat client (src/llm/openai-client.ts), the SDK's own retries are off: 429,
 * 5xx, timeouts and connection errors are retried here with ../llm/retry.ts's backoff.
 * Creating a job is only retried when the request surely did not start one (429, refused
 * connection): a second job would train, and bill, twice.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, toFile } from "openai";
import type { FileObject, FilePurpose } from "openai/resources/files";
import type { FineTuningJob, FineTuningJobEvent, JobCreateParams } from "openai/resources/fine-tuning/jobs/jobs";
import { describe } from "../llm/openai-client.ts";
import { isRetryableStatus, kindForStatus, parseRetryAfter, RETRY_DEFAULTS, retryDelayMs } from "../llm/retry.ts";
import type { ModelRoute, Task } from "../llm/types.ts";
import type { Db } from "../store/db.ts";
import { RouteStore } from "./routes.ts";

export type { FileObject, FineTuningJob, FineTuningJobEvent };
export type JobStatus = FineTuningJob["status"];

type RequestOptions = NonNullable<Parameters<OpenAI["files"]["retrieve"]>[1]>;

export const TERMINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];

export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

export interface FineTunerOptions {
  /** The API, e.g. "https://api.openai.com/v1". */
  baseUrl: string;
  apiKey: string;
  /** Per attempt of every call but uploads (default 60 s). */
  timeoutMs?: number;
  /** Per attempt of an upload (default 10 min). */
  uploadTimeoutMs?: number;
  /** Retries after the first attempt of one call (default 5). */
  maxRetries?: number;
  /** First backoff step (default 250 ms); tests make it tiny. */
  retryBaseMs?: number;
  /** Longest backoff (default 8 s). */
  retryCapMs?: number;
  /** Told before each retry: what failed and how long until the next attempt. */
  onRetry?: (info: { what: string; retry: number; delayMs: number; error: FineTuneError }) => void;
  fetch?: typeof globalThis.fetch;
}

export interface CreateJobParams {
  /** The base model, e.g. "gpt-4.1-mini-2025-04-14". */
  model: string;
  trainingFileId: string;
  validationFileId?: string;
  /** Up to 64 characters, part of the fine-tuned model's name. */
  suffix?: string;
  seed?: number;
  /** Supervised hyperparameters; the provider picks ("auto") what is left out. */
  hyperparameters?: { n_epochs?: number; batch_size?: number; learning_rate_multiplier?: number };
}

export interface FollowOptions {
  /** Pause between polls (default 5 s). */
  pollMs?: number;
  /** Each new event once, oldest first. */
  onEvent?: (event: FineTuningJobEvent) => void | Promise<void>;
  /** The first status seen, then each change (after the events that came with it). */
  onStatus?: (job: FineTuningJob, previous: JobStatus | undefined) => void | Promise<void>;
  /** The status already known (from `create` or a `retrieve`): `onStatus` then starts at the first change from it. */
  knownStatus?: JobStatus;
  /** Stops following (the job goes on); `follow` then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Give up with a `FineTuneError("timeout")` when the job has not ended after this long (default: no limit). */
  maxWaitMs?: number;
}

export type FineTuneErrorKind = "unreachable" | "timeout" | "rate_limited" | "server" | "auth" | "bad_request";

/** A call to the fine-tuning API failed (after its retries); `message` says which call and why. */
export class FineTuneError extends Error {
  override readonly name = "FineTuneError";
  constructor(
    readonly kind: FineTuneErrorKind,
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

interface Failure {
  error: FineTuneError;
  retryable: boolean;
  /** The request surely did not reach the point of doing anything (429, refused connection). */
  unsent: boolean;
  retryAfterMs?: number | undefined;
}

const EVENTS_PAGE = 100;
/** Pages read per poll at most (a resumed job with a long history is read over several polls). */
const MAX_EVENT_PAGES = 50;

export class FineTuner {
  readonly baseUrl: string;
  readonly #sdk: OpenAI;
  readonly #timeoutMs: number;
  readonly #uploadTimeoutMs: number;
  readonly #maxRetries: number;
  readonly #options: FineTunerOptions;

  constructor(options: FineTunerOptions) {
    this.#options = options;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#uploadTimeoutMs = options.uploadTimeoutMs ?? 600_000;
    this.#maxRetries = options.maxRetries ?? 5;
    this.#sdk = new OpenAI({
      baseURL: this.baseUrl,
      apiKey: options.apiKey,
      timeout: this.#timeoutMs,
      maxRetries: 0,
      ...(options.fetch !== undefined && { fetch: options.fetch }),
    });
  }

  /** Uploads a file (JSONL for fine-tuning) and returns the provider's file object. */
  async upload(path: string, purpose: FilePurpose = "fine-tune", signal?: AbortSignal): Promise<FileObject> {
    const bytes = await readFile(path);
    const name = basename(path);
    return this.#call(
      `uploading ${name}`,
      async (options) => this.#sdk.files.create({ file: await toFile(bytes, name), purpose }, options),
      { signal, timeoutMs: this.#uploadTimeoutMs },
    );
  }

  async create(params: CreateJobParams, signal?: AbortSignal): Promise<FineTuningJob> {
    const body: JobCreateParams = {
      model: params.model,
      training_file: params.trainingFileId,
      ...(params.validationFileId !== undefined && { validation_file: params.validationFileId }),
      ...(params.suffix !== undefined && { suffix: params.suffix }),
      ...(params.seed !== undefined && { seed: params.seed }),
      ...(params.hyperparameters !== undefined && {
        method: { type: "supervised", supervised: { hyperparameters: params.hyperparameters } },
      }),
    };
    return this.#call("creating the fine-tuning job", (options) => this.#sdk.fineTuning.jobs.create(body, options), {
      signal,
      retryable: (failure) => failure.retryable && failure.unsent,
    });
  }

  async retrieve(jobId: string, signal?: AbortSignal): Promise<FineTuningJob> {
    return this.#call(`reading ${jobId}`, (options) => this.#sdk.fineTuning.jobs.retrieve(jobId, options), { signal });
  }

  /** Asks the provider to stop the job; returns it as it is then. */
  async cancel(jobId: string, signal?: AbortSignal): Promise<FineTuningJob> {
    return this.#call(`cancelling ${jobId}`, (options) => this.#sdk.fineTuning.jobs.cancel(jobId, options), { signal });
  }

  /**
   * Polls the job until it succeeds, fails or is cancelled and returns it as it ended.
   * Every poll reads the job, then the events not seen yet (the API lists them newest
   * first; they are handed over oldest first, each once), then reports a status change.
   * A call that keeps failing after its retries rejects with `FineTuneError`; an aborted
   * `signal` rejects with its reason.
   */
  async follow(jobId: string, options: FollowOptions = {}): Promise<FineTuningJob> {
    const { signal } = options;
    const pollMs = options.pollMs ?? 5_000;
    const deadline = options.maxWaitMs !== undefined ? Date.now() + options.maxWaitMs : undefined;
    const seen = new Set<string>();
    let status: JobStatus | undefined = options.knownStatus;
    for (;;) {
      const job = await this.retrieve(jobId, signal);
      for (const event of await this.#newEvents(jobId, seen, signal)) await options.onEvent?.(event);
      if (job.status !== status) {
        const previous = status;
        status = job.status;
        await options.onStatus?.(job, previous);
      }
      if (isTerminal(job.status)) return job;
      if (deadline !== undefined && Date.now() + pollMs > deadline) {
        throw new FineTuneError("timeout", `${jobId} is still ${job.status} after ${options.maxWaitMs} ms`);
      }
      await pause(pollMs, signal);
    }
  }

  /** Events not in `seen`, oldest first; adds them to `seen`. */
  async #newEvents(jobId: string, seen: Set<string>, signal: AbortSignal | undefined): Promise<FineTuningJobEvent[]> {
    const fresh: FineTuningJobEvent[] = [];
    const ids = new Set<string>();
    let after: string | undefined;
    for (let page = 0; page < MAX_EVENT_PAGES; page++) {
      const query = { limit: EVENTS_PAGE, ...(after !== undefined && { after }) };
      const { data, has_more } = await this.#call(
        `reading the events of ${jobId}`,
        (options) => this.#sdk.fineTuning.jobs.listEvents(jobId, query, options),
        { signal },
      );
      let reachedSeen = false;
      let added = 0;
      for (const event of data) {
        if (seen.has(event.id)) {
          reachedSeen = true;
          break;
        }
        if (ids.has(event.id)) continue;
        ids.add(event.id);
        fresh.push(event);
        added++;
      }
      const last = data.at(-1);
      if (reachedSeen || !has_more || last === undefined || added === 0) break;
      after = last.id;
    }
    for (const id of ids) seen.add(id);
    return fresh.reverse();
  }

  /** One API call with per-attempt timeout and the retry policy. */
  async #call<T>(
    what: string,
    request: (options: RequestOptions) => Promise<T>,
    opts: { signal?: AbortSignal | undefined; timeoutMs?: number; retryable?: (failure: Failure) => boolean },
  ): Promise<T> {
    const { signal } = opts;
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    for (let retry = 0; ; retry++) {
      throwIfAborted(signal);
      // A signal per attempt: the SDK never removes the listener it adds to the signal it is
      // given, and following a job for hours would pile them up on the caller's.
      const attempt = new AbortController();
      const forward = () => attempt.abort(signal?.reason);
      signal?.addEventListener("abort", forward, { once: true });
      try {
        return await request({ timeout: timeoutMs, maxRetries: 0, signal: attempt.signal });
      } catch (err) {
        throwIfAborted(signal);
        const failure = classify(err, what, timeoutMs);
        const retryable = opts.retryable?.(failure) ?? failure.retryable;
        if (!retryable || retry >= this.#maxRetries) throw failure.error;
        const delayMs = retryDelayMs(retry, {
          baseMs: this.#options.retryBaseMs ?? RETRY_DEFAULTS.baseMs,
          capMs: this.#options.retryCapMs ?? RETRY_DEFAULTS.capMs,
          retryAfterMs: failure.retryAfterMs,
        });
        this.#options.onRetry?.({ what, retry: retry + 1, delayMs, error: failure.error });
        await pause(delayMs, signal);
      } finally {
        signal?.removeEventListener("abort", forward);
      }
    }
  }
}

function classify(err: unknown, what: string, timeoutMs: number): Failure {
  if (err instanceof FineTuneError) return { error: err, retryable: false, unsent: false };
  if (err instanceof APIConnectionTimeoutError || err instanceof APIUserAbortError) {
    return {
      error: new FineTuneError("timeout", `${what}: no answer within ${timeoutMs} ms`, undefined, { cause: err }),
      retryable: true,
      unsent: false,
    };
  }
  if (err instanceof APIConnectionError) {
    const reason = describe(err);
    return {
      error: new FineTuneError("unreachable", `${what}: cannot reach the API: ${reason}`, undefined, { cause: err }),
      retryable: true,
      unsent: /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(reason),
    };
  }
  if (err instanceof APIError && err.status !== undefined) {
    return {
      error: new FineTuneError(kindForStatus(err.status), `${what}: ${err.message}`, err.status, { cause: err }),
      retryable: isRetryableStatus(err.status),
      unsent: err.status === 429,
      retryAfterMs: parseRetryAfter(err.headers),
    };
  }
  // Thrown while reading an answer: the connection broke, or the body was not what was promised.
  return {
    error: new FineTuneError("server", `${what}: ${describe(err)}`, undefined, { cause: err }),
    retryable: true,
    unsent: false,
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException("Following was stopped.", "AbortError");
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal !== undefined ? { signal } : {});
  } catch (err) {
    throwIfAborted(signal);
    throw err;
  }
}

/** The numbers of a `metrics` event (`data: { step, total_steps, train_loss, ... }`), if it is one. */
export function eventMetrics(
  event: FineTuningJobEvent,
):
  | { step: number; totalSteps: number | undefined; trainLoss: number | undefined; validLoss: number | undefined }
  | undefined {
  if (event.type !== "metrics" || typeof event.data !== "object" || event.data === null) return undefined;
  const data = event.data as Record<string, unknown>;
  if (typeof data.step !== "number") return undefined;
  const number = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : undefined);
  return {
    step: data.step,
    totalSteps: number(data.total_steps),
    trainLoss: number(data.train_loss),
    validLoss: number(data.valid_loss),
  };
}

/** Where the job runs and which task its model is for. */
export interface JobContext {
  task: Task;
  /** The fine-tuning API's base URL. */
  baseUrl: string;
}

/** Why a job failed, as stored and shown ("" when it did not fail). */
export function jobError(job: FineTuningJob): string {
  if (job.status !== "failed") return "";
  const error = job.error;
  if (error === null || (error.message ?? "") === "") return "the job failed without saying why";
  return error.code ? `${error.message} (${error.code})` : error.message;
}

/** Creates or updates the job's `FineTuneJob` row (by its provider id) from the job as last read. */
export async function recordJob(db: Db, job: FineTuningJob, context: JobContext): Promise<void> {
  const data = {
    baseUrl: context.baseUrl.replace(/\/+$/, ""),
    baseModel: job.model,
    trainingFileId: job.training_file,
    validationFileId: job.validation_file ?? "",
    status: job.status,
    fineTunedModel: job.fine_tuned_model ?? "",
    task: context.task,
    error: jobError(job),
  };
  await db.fineTuneJob.upsert({
    where: { providerJobId: job.id },
    create: { providerJobId: job.id, ...data },
    update: data,
  });
}

export type Registration =
  | { registered: true; task: Task; route: ModelRoute }
  | { registered: false; task: Task; reason: string };

/**
 * Records the job's final state and, when it succeeded, makes its model the route of
 * the task (source "finetune"), served from `serveBaseUrl` (default: the API's base URL).
 * A job that failed, was cancelled or has not ended registers nothing; `reason` says why.
 */
export async function register(
  db: Db,
  job: FineTuningJob,
  context: JobContext & { serveBaseUrl?: string },
): Promise<Registration> {
  await recordJob(db, job, context);
  const { task } = context;
  if (job.status === "failed") return { registered: false, task, reason: `the job failed: ${jobError(job)}` };
  if (job.status === "cancelled") return { registered: false, task, reason: "the job was cancelled" };
  if (job.status !== "succeeded") return { registered: false, task, reason: `the job is still ${job.status}` };
  if (job.fine_tuned_model === null || job.fine_tuned_model === "") {
    return { registered: false, task, reason: "the job succeeded but named no fine-tuned model" };
  }
  const route: ModelRoute = {
    model: job.fine_tuned_model,
    baseUrl: (context.serveBaseUrl ?? context.baseUrl).replace(/\/+$/, ""),
    fineTuned: true,
  };
  await new RouteStore(db).set(task, route, "finetune");
  return { registered: true, task, route };
}

/** "continue -> ft:gpt-4.1-mini:acme:inkloom:abc@https://api.openai.com/v1 (fine-tuned)" */
export function describeRoute(task: Task, route: ModelRoute): string {
  return `${task} -> ${route.model}@${route.baseUrl}${route.fineTuned ? " (fine-tuned)" : ""}`;
}
