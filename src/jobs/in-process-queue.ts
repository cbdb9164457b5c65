/**
 * The default `JobQueue`: jobs run in this process, at most `concurrency` at a
 * time, started in enqueue order (FIFO).
 *
 * - Idempotency keys are global across job names (a chapter key already names
 *   its story and chapter). A key is remembered while scheduled, queued or running
 *   and, once finished, among the last `retain` finished keys.
 * - A job enqueued with `delayMs`/`at` waits on a timer (which does not keep the
 *   process alive); nothing of it survives the process (a ballot's closing time is
 *   scheduled again from the database at start).
 * - Retries: only a handler's `TransientJobError` starts the job again, after a
 *   backoff, up to `retry.attempts` starts. Any other error settles `finished` with
 *   `{ ok: false }` at once: a chapter job must never write twice, and only its
 *   handler knows which steps already happened and when another try is safe.
 * - A job that failed for good (not a transient error, or its retries spent) goes to
 *   its name's `failed` hook before `finished` settles; onIdle waits for the hook too.
 * - `close()` stops taking jobs, lets running ones finish (within `graceMs`, after
 *   which their signals are aborted), and settles jobs that never started (queued,
 *   scheduled or waiting for a retry) with `{ ok: false, error: JobQueueClosedError }`:
 *   their chapters stay `pending` and are resumed on the next start.
 */
import {
  type CloseOptions,
  dueInMs,
  type EnqueuedJob,
  type EnqueueOptions,
  type HandlerOptions,
  isTransientJobError,
  type JobHandler,
  type JobOutcome,
  type JobQueue,
  JobQueueClosedError,
  jobRetryDelayMs,
  type QueueMetrics,
  RETRY_POLICY_DEFAULTS,
  type RetryPolicy,
  stopWithin,
} from "./job-queue.ts";

export { JobQueueClosedError };

export interface InProcessJobQueueOptions {
  /** Jobs running at once (default 4). */
  concurrency?: number;
  /** Finished keys remembered for idempotency; the oldest are forgotten first (default 10 000). */
  retain?: number;
  /** How a `TransientJobError` is retried (default RETRY_POLICY_DEFAULTS). */
  retry?: RetryPolicy;
  /** Operator log (a `failed` hook that threw). */
  log?: (message: string) => void;
}

interface Job {
  name: string;
  payload: unknown;
  key: string;
  finished: Promise<JobOutcome>;
  settle: (outcome: JobOutcome) => void;
  controller: AbortController;
  /** Starts so far. */
  attempt: number;
  /** Until a scheduled job is due, or a retry's backoff is over. */
  timer?: ReturnType<typeof setTimeout> | undefined;
  /** When a scheduled job is due (ms since the epoch). */
  dueAt?: number;
}

export class InProcessJobQueue implements JobQueue {
  private readonly concurrency: number;
  private readonly retain: number;
  private readonly retry: RetryPolicy;
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  private readonly failureHooks = new Map<string, NonNullable<HandlerOptions<unknown>["failed"]>>();
  private readonly log: (message: string) => void;
  /** Scheduled, queued, running and remembered finished jobs by key. */
  private readonly jobs = new Map<string, Job>();
  /** Finished keys, oldest first (insertion order). */
  private readonly finishedKeys = new Set<string>();
  private readonly waiting: Job[] = [];
  /** Enqueued for later and not due yet. */
  private readonly scheduled = new Set<Job>();
  /** Waiting out a retry's backoff. */
  private readonly retrying = new Set<Job>();
  private readonly active = new Set<Job>();
  private running = 0;
  private failed = 0;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(options: InProcessJobQueueOptions = {}) {
    this.concurrency = options.concurrency ?? 4;
    this.retain = options.retain ?? 10_000;
    this.retry = options.retry ?? RETRY_POLICY_DEFAULTS;
    this.log = options.log ?? (() => {});
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${this.concurrency}`);
    }
    if (!Number.isInteger(this.retain) || this.retain < 0) {
      throw new RangeError(`retain must be an integer >= 0, got ${this.retain}`);
    }
    if (!Number.isInteger(this.retry.attempts) || this.retry.attempts < 1) {
      throw new RangeError(`retry.attempts must be an integer >= 1, got ${this.retry.attempts}`);
    }
  }

  handle<P>(name: string, handler: JobHandler<P>, options: HandlerOptions<P> = {}): void {
    if (this.handlers.has(name)) throw new Error(`A handler for job "${name}" is already registered`);
    this.handlers.set(name, handler as JobHandler<unknown>);
    if (options.failed !== undefined) {
      this.failureHooks.set(name, options.failed as NonNullable<HandlerOptions<unknown>["failed"]>);
    }
  }

  async enqueue<P>(name: string, payload: P, options: EnqueueOptions): Promise<EnqueuedJob> {
    const { key } = options;
    if (this.closed) throw new JobQueueClosedError(`Job queue is closed: cannot enqueue job "${name}" (key ${key})`);
    if (!this.handlers.has(name)) throw new Error(`No handler registered for job "${name}" (key ${key})`);
    const delay = dueInMs(options);
    const existing = this.jobs.get(key);
    if (existing) return { key, created: false, finished: existing.finished };

    let settle: (outcome: JobOutcome) => void = () => {};
    const finished = new Promise<JobOutcome>((resolve) => {
      settle = resolve;
    });
    const job: Job = { name, payload, key, finished, settle, controller: new AbortController(), attempt: 0 };
    this.jobs.set(key, job);
    if (delay > 0) {
      this.scheduled.add(job);
      job.dueAt = Date.now() + delay;
      job.timer = setTimeout(() => this.due(job, this.scheduled), delay);
      // A timer for later (a ballot's close) must not keep a finished process alive.
      job.timer.unref?.();
    } else {
      this.waiting.push(job);
      this.pump();
    }
    return { key, created: true, finished };
  }

  onIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(options: CloseOptions = {}): Promise<void> {
    this.closed = true;
    const notStarted = [...this.waiting.splice(0), ...this.scheduled, ...this.retrying];
    this.scheduled.clear();
    this.retrying.clear();
    for (const job of notStarted) {
      clearTimeout(job.timer);
      this.jobs.delete(job.key);
      job.settle({ ok: false, error: new JobQueueClosedError(`Job queue closed before job "${job.name}" started`) });
    }
    this.notifyIfIdle();
    await stopWithin(this.onIdle(), options.graceMs, () => {
      for (const job of this.active) job.controller.abort(new JobQueueClosedError("Job queue closing: grace over"));
    });
  }

  async metrics(): Promise<QueueMetrics[]> {
    return [
      {
        queue: "in-process",
        waiting: this.waiting.length,
        active: this.running,
        delayed: this.scheduled.size + this.retrying.size,
        failed: this.failed,
        stalled: 0,
      },
    ];
  }

  private isIdle(): boolean {
    return this.running === 0 && this.waiting.length === 0 && this.retrying.size === 0;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** A scheduled job came due, or a retry's backoff is over. */
  private due(job: Job, from: Set<Job>): void {
    // Timers may fire a millisecond early (clock granularity): a job never starts before it is due.
    const left = (job.dueAt ?? 0) - Date.now();
    if (left > 0 && from.has(job)) {
      job.timer = setTimeout(() => this.due(job, from), left);
      job.timer.unref?.();
      return;
    }
    if (!from.delete(job)) return;
    job.timer = undefined;
    this.waiting.push(job);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const job = this.waiting.shift();
      if (!job) return;
      this.running++;
      void this.run(job);
    }
  }

  private async run(job: Job): Promise<void> {
    let outcome: JobOutcome;
    try {
      // Start on a later tick: a handler never runs inside the enqueue caller's stack.
      await Promise.resolve();
      // Looked up at run time; enqueue checked that it exists and handlers are never removed.
      const handler = this.handlers.get(job.name);
      if (!handler) throw new Error(`No handler registered for job "${job.name}"`);
      this.active.add(job);
      job.attempt++;
      await handler(job.payload, { key: job.key, attempt: job.attempt, signal: job.controller.signal });
      outcome = { ok: true };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.active.delete(job);
    if (!outcome.ok && this.retries(job, outcome.error)) {
      this.retrying.add(job);
      job.timer = setTimeout(() => this.due(job, this.retrying), jobRetryDelayMs(this.retry, job.attempt - 1));
    } else {
      if (!outcome.ok) {
        this.failed++;
        // Still counted as running: onIdle and close wait for the hook.
        if (this.givenUp(job, outcome.error)) await this.reportFailure(job, outcome.error);
      }
      this.remember(job.key);
      job.settle(outcome);
    }
    this.running--;
    this.pump();
    this.notifyIfIdle();
  }

  private retries(job: Job, error: unknown): boolean {
    return (
      isTransientJobError(error) && job.attempt < this.retry.attempts && !this.closed && !job.controller.signal.aborted
    );
  }

  /** Failed for good: not stopped by close, and no retry was left to it (close keeping a retry away is not giving up). */
  private givenUp(job: Job, error: unknown): boolean {
    return !job.controller.signal.aborted && (!isTransientJobError(error) || job.attempt >= this.retry.attempts);
  }

  private async reportFailure(job: Job, error: unknown): Promise<void> {
    const failed = this.failureHooks.get(job.name);
    if (failed === undefined) return;
    const failure = {
      key: job.key,
      error: error instanceof Error ? error : new Error(String(error)),
    };
    await failed(job.payload, failure).catch((e: unknown) =>
      this.log(`job ${job.key}: its failure was not handled: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private remember(key: string): void {
    this.finishedKeys.add(key);
    for (const oldest of this.finishedKeys) {
      if (this.finishedKeys.size <= this.retain) break;
      this.finishedKeys.delete(oldest);
      this.jobs.delete(oldest);
    }
  }
}
