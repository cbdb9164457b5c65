/**
 * The `JobQueue` port: chapter generation and other slow work runs as jobs.
 * In-process by default (src/jobs/in-process-queue.ts); BullMQ on Redis later.
 */

export interface EnqueueOptions {
  /**
   * Idempotency key: while a job with this key is queued, running or finished
   * (within the queue's memory), enqueueing it again is a no-op that returns the
   * existing job. A double click or a retried delivery never runs twice.
   */
  key: string;
}

export interface EnqueuedJob {
  key: string;
  /** False when a job with this key already existed. */
  created: boolean;
  /** Settles when the job finished (resolves even if the handler failed; see `outcome`). */
  finished: Promise<JobOutcome>;
}

export type JobOutcome = { ok: true } | { ok: false; error: unknown };

export interface JobContext {
  key: string;
  attempt: number;
  /**
   * Aborted when the queue is closing and the grace period is over: the handler should
   * stop soon, leaving its work where a later run can resume it.
   */
  signal: AbortSignal;
}

export type JobHandler<P> = (payload: P, job: JobContext) => Promise<void>;

export interface CloseOptions {
  /** How long running jobs may go on before their signals are aborted (default: no limit). */
  graceMs?: number;
}

export interface JobQueue {
  /** Register the handler for a job name. One handler per name. */
  handle<P>(name: string, handler: JobHandler<P>): void;
  /** Enqueue a job; see `EnqueueOptions.key` for idempotency. */
  enqueue<P>(name: string, payload: P, options: EnqueueOptions): Promise<EnqueuedJob>;
  /** Resolves when no job is queued or running. */
  onIdle(): Promise<void>;
  /**
   * Stop taking jobs and wait for running ones; once `graceMs` has passed, abort their
   * signals and wait for them to stop.
   */
  close(options?: CloseOptions): Promise<void>;
}
