/**
 * The default `JobQueue`: jobs run in this process, at most `concurrency` at a
 * time, started in enqueue order (FIFO).
 *
 * - Idempotency keys are global across job names (a chapter key already names
 *   its story and chapter). A key is remembered while queued or running and,
 *   once finished, among the last `retain` finished keys.
 * - No retries: a handler that throws settles `finished` with `{ ok: false }`
 *   and runs once (`attempt` is always 1). A chapter job must never write twice,
 *   and only its handler knows which steps already happened and when another
 *   try is safe, so the retry policy lives in the handler, not here.
 * - `close()` stops taking jobs, lets running ones finish (within `graceMs`, after
 *   which their signals are aborted), and settles jobs that never started with
 *   `{ ok: false, error: JobQueueClosedError }`: their chapters stay `pending` and
 *   are resumed on the next start.
 */
import type { CloseOptions, EnqueuedJob, JobHandler, JobOutcome, JobQueue } from "./job-queue.ts";

export interface InProcessJobQueueOptions {
  /** Jobs running at once (default 4). */
  concurrency?: number;
  /** Finished keys remembered for idempotency; the oldest are forgotten first (default 10 000). */
  retain?: number;
}

/** Rejects `enqueue` after `close()`, and settles jobs that close() kept from starting. */
export class JobQueueClosedError extends Error {
  override name = "JobQueueClosedError";
}

interface Job {
  name: string;
  payload: unknown;
  key: string;
  finished: Promise<JobOutcome>;
  settle: (outcome: JobOutcome) => void;
  controller: AbortController;
}

export class InProcessJobQueue implements JobQueue {
  private readonly concurrency: number;
  private readonly retain: number;
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  /** Queued, running and remembered finished jobs by key. */
  private readonly jobs = new Map<string, Job>();
  /** Finished keys, oldest first (insertion order). */
  private readonly finishedKeys = new Set<string>();
  private readonly waiting: Job[] = [];
  private readonly active = new Set<Job>();
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(options: InProcessJobQueueOptions = {}) {
    this.concurrency = options.concurrency ?? 4;
    this.retain = options.retain ?? 10_000;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${this.concurrency}`);
    }
    if (!Number.isInteger(this.retain) || this.retain < 0) {
      throw new RangeError(`retain must be an integer >= 0, got ${this.retain}`);
    }
  }

  handle<P>(name: string, handler: JobHandler<P>): void {
    if (this.handlers.has(name)) throw new Error(`A handler for job "${name}" is already registered`);
    this.handlers.set(name, handler as JobHandler<unknown>);
  }

  async enqueue<P>(name: string, payload: P, options: { key: string }): Promise<EnqueuedJob> {
    const { key } = options;
    if (this.closed) throw new JobQueueClosedError(`Job queue is closed: cannot enqueue job "${name}" (key ${key})`);
    if (!this.handlers.has(name)) throw new Error(`No handler registered for job "${name}" (key ${key})`);
    const existing = this.jobs.get(key);
    if (existing) return { key, created: false, finished: existing.finished };

    let settle: (outcome: JobOutcome) => void = () => {};
    const finished = new Promise<JobOutcome>((resolve) => {
      settle = resolve;
    });
    const job: Job = { name, payload, key, finished, settle, controller: new AbortController() };
    this.jobs.set(key, job);
    this.waiting.push(job);
    this.pump();
    return { key, created: true, finished };
  }

  onIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(options: CloseOptions = {}): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) {
      this.jobs.delete(job.key);
      job.settle({ ok: false, error: new JobQueueClosedError(`Job queue closed before job "${job.name}" started`) });
    }
    const idle = this.onIdle();
    if (options.graceMs !== undefined && Number.isFinite(options.graceMs)) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<"grace">((resolve) => {
        timer = setTimeout(() => resolve("grace"), Math.max(0, options.graceMs ?? 0));
      });
      const first = await Promise.race([idle, graceOver]);
      clearTimeout(timer);
      if (first === "grace") {
        for (const job of this.active) job.controller.abort(new JobQueueClosedError("Job queue closing: grace over"));
      }
    }
    await idle;
  }

  private isIdle(): boolean {
    return this.running === 0 && this.waiting.length === 0;
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
      await handler(job.payload, { key: job.key, attempt: 1, signal: job.controller.signal });
      outcome = { ok: true };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.active.delete(job);
    this.running--;
    this.remember(job.key);
    job.settle(outcome);
    this.pump();
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
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
