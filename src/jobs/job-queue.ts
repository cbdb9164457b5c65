/**
 * The `JobQueue` port: chapter generation and other slow work runs as jobs.
 * In-process by default (src/jobs/in-process-queue.ts); BullMQ on Redis when
 * REDIS_URL is set (src/jobs/bullmq-queue.ts). One contract suite runs against
 * both (tests/contract/job-queue.contract.ts).
 */
import { retryDelayMs } from "../llm/retry.ts";

export interface EnqueueOptions {
  /**
   * Idempotency key: while a job with this key is queued, scheduled, running or
   * finished (within the queue's memory), enqueueing it again is a no-op that returns
   * the existing job. A double click or a retried delivery never runs twice.
   */
  key: string;
  /** Run no earlier than this many milliseconds from now (a timer). Not with `at`. */
  delayMs?: number;
  /** Run no earlier than this time (a timer; a time in the past runs at once). Not with `delayMs`. */
  at?: Date;
}

export interface EnqueuedJob {
  key: string;
  /** False when a job with this key already existed. */
  created: boolean;
  /**
   * Settles when the job finished (resolves even if the handler failed; see `outcome`).
   * Settles with `JobQueueClosedError` when this queue closes first: the job did not
   * run, or (BullMQ) it goes on in another process.
   */
  finished: Promise<JobOutcome>;
}

export type JobOutcome = { ok: true } | { ok: false; error: unknown };

export interface JobContext {
  key: string;
  /**
   * 1 on the job's first start. More when it is started again: after a
   * `TransientJobError` (a retry), or (BullMQ) after its worker died or handed it
   * back at shutdown. A job started again may find its own half-done work.
   */
  attempt: number;
  /**
   * Aborted when the queue is closing and the grace period is over: the handler should
   * stop soon, leaving its work where a later run can resume it.
   */
  signal: AbortSignal;
}

export type JobHandler<P> = (payload: P, job: JobContext) => Promise<void>;

/** A job the queue gave up on: it will not run again under its key. */
export interface JobFailure {
  key: string;
  /** The last error: the handler's, or the queue's reason (BullMQ: "job stalled more than allowable limit"). */
  error: Error;
}

export interface HandlerOptions<P> {
  /**
   * Called when a job of this name failed for good: its handler threw an error that is
   * not transient, its retries ran out, or (BullMQ) it stalled more than
   * `maxStalledCount` times, its handler not called again. At most once per job, in one
   * process (the one that moved the job to failed; in-process, before `finished`
   * settles). Not called for a job that close() stopped or kept from a retry: that job
   * is resumed later. Its errors are logged and go no further. Work the handler left
   * half-done (a chapter left `writing`) is settled here, conditionally: the handler may
   * have settled it itself, and a process that died first never calls it.
   */
  failed?: (payload: P, failure: JobFailure) => Promise<void>;
}

export interface CloseOptions {
  /** How long running jobs may go on before their signals are aborted (default: no limit). */
  graceMs?: number;
}

/** Counts of one queue (BullMQ: one per resource lane), for the operator's log. */
export interface QueueMetrics {
  queue: string;
  /** Due and not started. */
  waiting: number;
  /** Running. */
  active: number;
  /** Scheduled for later, or waiting out a retry's backoff. */
  delayed: number;
  /** Failed for good (BullMQ: failed jobs kept in Redis; in-process: since start). */
  failed: number;
  /** Jobs whose worker stopped renewing its lock and that were handed to another worker (since this queue opened). */
  stalled: number;
}

export interface JobQueue {
  /** Register the handler for a job name, and what to do when one fails for good. One handler per name. */
  handle<P>(name: string, handler: JobHandler<P>, options?: HandlerOptions<P>): void;
  /** Enqueue a job; see `EnqueueOptions.key` for idempotency. */
  enqueue<P>(name: string, payload: P, options: EnqueueOptions): Promise<EnqueuedJob>;
  /**
   * Resolves when no job is queued, running or waiting to be retried. Jobs scheduled
   * for later (`delayMs`, `at`) count only once they are due.
   */
  onIdle(): Promise<void>;
  /**
   * Stop taking jobs and wait for running ones; once `graceMs` has passed, abort their
   * signals and wait for them to stop.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Waiting, active, delayed, failed and stalled counts, one entry per queue. */
  metrics(): Promise<QueueMetrics[]>;
}

/** Rejects `enqueue` after `close()`, and settles jobs that close() kept from finishing here. */
export class JobQueueClosedError extends Error {
  override name = "JobQueueClosedError";
}

/** The queue's backend did not answer when it opened; the message names it (never with a password). */
export class JobQueueUnavailableError extends Error {
  override name = "JobQueueUnavailableError";
}

/**
 * Thrown by a handler for a failure worth another try (the database briefly
 * unreachable, say): the queue starts the job again after a backoff, up to its retry
 * policy's attempts. Any other error fails the job at once: only the handler knows
 * when running again is safe.
 */
export class TransientJobError extends Error {
  override name = "TransientJobError";
}

export function isTransientJobError(error: unknown): boolean {
  return error instanceof TransientJobError || (error instanceof Error && error.name === "TransientJobError");
}

/** How a job that threw `TransientJobError` is tried again. */
export interface RetryPolicy {
  /** Starts in all, the first included (1: never retried). */
  attempts: number;
  /** Backoff before the first retry, doubling each time (with jitter). */
  baseMs: number;
  /** Longest single backoff. */
  capMs: number;
}

/** 5 starts within 15 s (backoffs 0.5-1, 1-2, 2-4, 4-8 s): a database failover, while a reader still waits. */
export const RETRY_POLICY_DEFAULTS = { attempts: 5, baseMs: 1_000, capMs: 30_000 } as const satisfies RetryPolicy;

/** The wait before retry number `retry` (0 for the first), on the same curve as model calls. */
export function jobRetryDelayMs(policy: RetryPolicy, retry: number): number {
  return retryDelayMs(retry, { baseMs: policy.baseMs, capMs: policy.capMs });
}

/**
 * Wait for `stopped`; when `graceMs` (finite) passes first, call `graceOver` (abort the
 * running jobs) and wait on. Both queues close this way.
 */
export async function stopWithin(stopped: Promise<unknown>, graceMs: number | undefined, graceOver: () => void) {
  if (graceMs !== undefined && Number.isFinite(graceMs)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<"grace">((resolve) => {
      timer = setTimeout(() => resolve("grace"), Math.max(0, graceMs));
    });
    const first = await Promise.race([stopped, grace]);
    clearTimeout(timer);
    if (first === "grace") graceOver();
  }
  await stopped;
}

/** Milliseconds from `now` until a job enqueued with `options` is due (0: now). */
export function dueInMs(options: EnqueueOptions, now: number = Date.now()): number {
  if (options.at !== undefined && options.delayMs !== undefined) {
    throw new RangeError(`Job ${options.key}: give delayMs or at, not both`);
  }
  const delay = options.at !== undefined ? options.at.getTime() - now : (options.delayMs ?? 0);
  if (Number.isNaN(delay)) throw new RangeError(`Job ${options.key}: the time to run it is not a number`);
  return Math.max(0, delay);
}

/**
 * A handler whose errors that `isTransient` recognises become `TransientJobError`s,
 * so the queue tries the job again after a backoff.
 */
export function retryOn<P>(isTransient: (error: unknown) => boolean, handler: JobHandler<P>): JobHandler<P> {
  return async (payload, job) => {
    try {
      await handler(payload, job);
    } catch (error) {
      if (!isTransient(error) || isTransientJobError(error)) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new TransientJobError(reason, { cause: error });
    }
  };
}
