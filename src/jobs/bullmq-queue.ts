/**
 * `JobQueue` on BullMQ and Redis (REDIS_URL): jobs outlive the process that
 * enqueued them and run in whichever process handles them.
 *
 * - Lanes: job names are split into BullMQ queues by the resource they spend
 *   (chapters spend the model, pictures the image endpoint, timers almost nothing),
 *   each with its own per-process concurrency. Names in no lane go to `jobs`.
 * - Ids: the idempotency key becomes the BullMQ job id (`jobIdFor`), so a key
 *   enqueued twice, by any process, while the job is kept in Redis, is one job.
 *   Keys are unique per lane; ours name their job anyway.
 * - Roles: a "worker" starts a BullMQ Worker for a lane when a handler of one of its
 *   jobs is registered; a "producer" only enqueues (its handlers declare names).
 * - Retries: a `TransientJobError` is retried with backoff (BullMQ attempts with a
 *   backoff strategy that refuses every other error); `attempt` is BullMQ's
 *   attemptsStarted, so a job started again after a stall or a hand-back knows it.
 * - Stalls: a worker renews its jobs' locks every `lockDurationMs / 2`. When it
 *   dies, the lock lapses after `lockDurationMs` and the next stalled check (every
 *   `stalledIntervalMs`, run by any worker of the lane) puts the job back in `wait`
 *   for another worker: at worst lock + interval after the death.
 * - Failing for good: a job whose handler threw a non-transient error, whose retries
 *   ran out, or that stalled more than `maxStalledCount` times (BullMQ 6 marks it in
 *   the stalled check and the next worker to take it fails it without running it) is
 *   moved to failed by one worker, whose `failed` event calls the name's `failed` hook
 *   there: once, in one process (a retry also emits `failed`; only a job moved to
 *   failed has `finishedOn`).
 * - Shutdown: `close({ graceMs })` closes the workers (they take no new job and
 *   wait for running ones); once the grace is over the running jobs' signals are
 *   aborted, and a job whose handler stopped is handed back to `wait` (first in line)
 *   rather than completed or failed: another worker resumes it.
 * - `finished` follows the lane's event stream (QueueEvents), so it settles for jobs
 *   run by any process.
 */
import { randomUUID } from "node:crypto";
import { type Job, Queue, QueueEvents, WaitingError, Worker } from "bullmq";
import { Redis } from "ioredis";
import {
  type CloseOptions,
  dueInMs,
  type EnqueuedJob,
  type EnqueueOptions,
  type HandlerOptions,
  isTransientJobError,
  type JobContext,
  type JobHandler,
  type JobOutcome,
  type JobQueue,
  JobQueueClosedError,
  JobQueueUnavailableError,
  jobRetryDelayMs,
  type QueueMetrics,
  RETRY_POLICY_DEFAULTS,
  type RetryPolicy,
  stopWithin,
} from "./job-queue.ts";

/** A BullMQ queue for the jobs that spend one resource. */
export interface BullMqLane {
  /** Job names that run in this lane. */
  jobs: readonly string[];
  /** Jobs of this lane one worker process runs at once. */
  concurrency: number;
}

export interface BullMqJobQueueOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  /** Namespace of every Redis key (default "inkloom"); tests use a random one each. */
  prefix?: string;
  /** Lanes by name (a BullMQ queue each). */
  lanes?: Readonly<Record<string, BullMqLane>>;
  /** Concurrency of the `jobs` lane, for names in no lane (default 4). */
  concurrency?: number;
  /** "worker" runs the jobs it has handlers for; "producer" only enqueues (default "worker"). */
  role?: "worker" | "producer";
  /** How long a job's lock lasts without renewal (default 20 s; renewed every half). */
  lockDurationMs?: number;
  /** How often a worker looks for jobs whose lock lapsed (default 15 s). */
  stalledIntervalMs?: number;
  /** Stalls a job survives; one more and it fails (default 2). */
  maxStalledCount?: number;
  /** How a `TransientJobError` is retried (default RETRY_POLICY_DEFAULTS). */
  retry?: RetryPolicy;
  /** Finished jobs kept in Redis, which keeps their keys idempotent (default: a day or 10 000 completed, a week failed). */
  keep?: { completedSeconds: number; failedSeconds: number; count: number };
  /** How long `open` waits for Redis to answer (default 10 s). */
  connectTimeoutMs?: number;
  /** How often `onIdle` looks (default 100 ms). */
  idlePollMs?: number;
  /** Operator log (connection trouble, jobs not handed back). Never given the URL's password. */
  log?: (message: string) => void;
}

export const BULLMQ_DEFAULTS = {
  prefix: "inkloom",
  concurrency: 4,
  role: "worker",
  lockDurationMs: 20_000,
  stalledIntervalMs: 15_000,
  maxStalledCount: 2,
  keep: { completedSeconds: 24 * 3600, failedSeconds: 7 * 24 * 3600, count: 10_000 },
  connectTimeoutMs: 10_000,
  idlePollMs: 100,
} as const satisfies Required<Omit<BullMqJobQueueOptions, "url" | "lanes" | "retry" | "log">>;

/** The lane of job names that are in no other. */
export const DEFAULT_LANE = "jobs";

/** A job failed on a worker (maybe in another process): the message is the worker's reason. */
export class JobFailedError extends Error {
  override name = "JobFailedError";
}

/**
 * The BullMQ job id for an idempotency key. BullMQ refuses ids that read as integers
 * and ids with ':' (its key separator), so '%' and ':' are percent-encoded and an
 * integer gets a prefix no encoded key can have: two keys never share an id.
 */
export function jobIdFor(key: string): string {
  const id = key.replace(/%/g, "%25").replace(/:/g, "%3A");
  return String(Number.parseInt(id, 10)) === id ? `%23${id}` : id;
}

/** A Redis URL as it may be logged: the password replaced. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unreadable Redis URL)";
  }
}

/** What a BullMQ job carries: the key as given (ids are encoded) and who added it. */
interface Envelope {
  key: string;
  payload: unknown;
  /** Tells the enqueue that created the job from one that found it there. */
  nonce: string;
}

interface Lane {
  name: string;
  concurrency: number;
  queue: Queue<Envelope>;
  events?: QueueEvents;
  worker?: Worker<Envelope>;
  stalled: number;
}

interface Watcher {
  lane: Lane;
  id: string;
  promise: Promise<JobOutcome>;
  settle: (outcome: JobOutcome) => void;
}

export class BullMqJobQueue implements JobQueue {
  /** Connect (failing fast, naming the server, when Redis does not answer) and open the lanes. */
  static async open(options: BullMqJobQueueOptions): Promise<BullMqJobQueue> {
    const log = options.log ?? (() => {});
    // One connection for every queue and worker; BullMQ duplicates it for its blocking reads.
    // Commands wait for a reconnect rather than fail: an enqueue during a Redis restart completes after it.
    const redis = new Redis(options.url, {
      maxRetriesPerRequest: null,
      lazyConnect: true,
      retryStrategy: (times) => Math.min(times * 250, 5_000),
    });
    let lastError: unknown;
    redis.on("error", (error: unknown) => {
      lastError = error;
    });
    const timeoutMs = options.connectTimeoutMs ?? BULLMQ_DEFAULTS.connectTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        redis.connect().then(() => redis.ping()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(lastError ?? new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      redis.disconnect();
      const reason = error instanceof Error ? error.message : String(error);
      throw new JobQueueUnavailableError(
        `Cannot reach Redis at ${redactRedisUrl(options.url)}: ${reason}. Start Redis, or unset REDIS_URL to run jobs in this process.`,
      );
    } finally {
      clearTimeout(timer);
    }
    redis.removeAllListeners("error");
    let queue: BullMqJobQueue;
    try {
      queue = new BullMqJobQueue(redis, options, log);
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    try {
      await queue.listen();
    } catch (error) {
      await queue.close();
      throw error;
    }
    return queue;
  }

  private readonly prefix: string;
  private readonly role: "worker" | "producer";
  private readonly retry: RetryPolicy;
  private readonly lanes = new Map<string, Lane>();
  private readonly laneOfJob = new Map<string, Lane>();
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  /** Set when close()'s grace ran out and running jobs were aborted: a job fetched since is handed back. */
  private graceOver = false;
  private readonly failureHooks = new Map<string, NonNullable<HandlerOptions<unknown>["failed"]>>();
  /** `failed` hooks running: close waits for them. */
  private readonly reporting = new Set<Promise<void>>();
  private readonly watchers = new Map<string, Watcher>();
  private readonly lastWarning = new Map<string, number>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly redis: Redis,
    private readonly options: BullMqJobQueueOptions,
    private readonly log: (message: string) => void,
  ) {
    this.prefix = options.prefix ?? BULLMQ_DEFAULTS.prefix;
    this.role = options.role ?? BULLMQ_DEFAULTS.role;
    this.retry = options.retry ?? RETRY_POLICY_DEFAULTS;
    if (!Number.isInteger(this.retry.attempts) || this.retry.attempts < 1) {
      throw new RangeError(`retry.attempts must be an integer >= 1, got ${this.retry.attempts}`);
    }
    redis.on("error", (error: unknown) => this.warn("redis", error));
    const lanes: [string, BullMqLane][] = [
      ...Object.entries(options.lanes ?? {}),
      [DEFAULT_LANE, { jobs: [], concurrency: options.concurrency ?? BULLMQ_DEFAULTS.concurrency }],
    ];
    const keep = options.keep ?? BULLMQ_DEFAULTS.keep;
    for (const [name, spec] of lanes) {
      if (this.lanes.has(name)) throw new Error(`Lane "${name}" is defined twice`);
      if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1) {
        throw new RangeError(`Lane "${name}": concurrency must be an integer >= 1, got ${spec.concurrency}`);
      }
      const queue = new Queue<Envelope>(name, {
        connection: redis,
        prefix: this.prefix,
        defaultJobOptions: {
          attempts: this.retry.attempts,
          backoff: { type: "transient" },
          removeOnComplete: { age: keep.completedSeconds, count: keep.count },
          removeOnFail: { age: keep.failedSeconds, count: keep.count },
        },
      });
      queue.on("error", (error: unknown) => this.warn(`queue ${name}`, error));
      const lane: Lane = { name, concurrency: spec.concurrency, queue, stalled: 0 };
      this.lanes.set(name, lane);
      for (const job of spec.jobs) {
        if (this.laneOfJob.has(job)) throw new Error(`Job "${job}" is in two lanes`);
        this.laneOfJob.set(job, lane);
      }
    }
  }

  handle<P>(name: string, handler: JobHandler<P>, options: HandlerOptions<P> = {}): void {
    if (this.handlers.has(name)) throw new Error(`A handler for job "${name}" is already registered`);
    this.handlers.set(name, handler as JobHandler<unknown>);
    if (options.failed !== undefined) {
      this.failureHooks.set(name, options.failed as NonNullable<HandlerOptions<unknown>["failed"]>);
    }
    if (this.role === "worker" && this.closing === undefined) this.startWorker(this.laneFor(name));
  }

  async enqueue<P>(name: string, payload: P, options: EnqueueOptions): Promise<EnqueuedJob> {
    const { key } = options;
    if (this.closing !== undefined) {
      throw new JobQueueClosedError(`Job queue is closed: cannot enqueue job "${name}" (key ${key})`);
    }
    if (!this.handlers.has(name) && !this.laneOfJob.has(name)) {
      throw new Error(`No handler registered for job "${name}" (key ${key})`);
    }
    const delay = dueInMs(options);
    const lane = this.laneFor(name);
    const id = jobIdFor(key);
    const nonce = randomUUID();
    const envelope: Envelope = { key, payload, nonce };
    await lane.queue.add(name, envelope, { jobId: id, ...(delay > 0 ? { delay } : {}) });
    // BullMQ answers a duplicate id with the id alone: the stored nonce says whose job it is.
    const stored = await lane.queue.getJob(id);
    const created = stored === undefined || (stored.data as Envelope | undefined)?.nonce === nonce;
    return { key, created, finished: this.watch(lane, id) };
  }

  async onIdle(): Promise<void> {
    const pollMs = this.options.idlePollMs ?? BULLMQ_DEFAULTS.idlePollMs;
    while (this.closing === undefined && !(await this.idle())) {
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  async metrics(): Promise<QueueMetrics[]> {
    return Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        const counts = await lane.queue.getJobCounts("waiting", "prioritized", "active", "delayed", "failed");
        const count = (state: string) => counts[state] ?? 0;
        return {
          queue: lane.name,
          waiting: count("waiting") + count("prioritized"),
          active: count("active"),
          delayed: count("delayed"),
          failed: count("failed"),
          stalled: lane.stalled,
        };
      }),
    );
  }

  close(options: CloseOptions = {}): Promise<void> {
    this.closing ??= this.shutdown(options);
    return this.closing;
  }

  /** Follow each lane's events from the last one already in Redis: nothing after it is missed. */
  private async listen(): Promise<void> {
    await Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        const [last] = await this.redis.xrevrange(lane.queue.keys.events ?? "", "+", "-", "COUNT", 1);
        const events = new QueueEvents(lane.name, {
          connection: this.redis,
          prefix: this.prefix,
          lastEventId: last?.[0] ?? "0-0",
        });
        events.on("completed", ({ jobId }) => this.settle(lane, jobId, { ok: true }));
        events.on("failed", ({ jobId, failedReason }) =>
          this.settle(lane, jobId, { ok: false, error: new JobFailedError(failedReason) }),
        );
        events.on("stalled", () => {
          lane.stalled++;
        });
        events.on("error", (error: unknown) => this.warn(`events ${lane.name}`, error));
        lane.events = events;
        await events.waitUntilReady();
      }),
    );
  }

  private laneFor(name: string): Lane {
    const lane = this.laneOfJob.get(name) ?? this.lanes.get(DEFAULT_LANE);
    if (lane === undefined) throw new Error(`No lane for job "${name}"`);
    return lane;
  }

  private startWorker(lane: Lane): void {
    if (lane.worker !== undefined) return;
    const worker = new Worker<Envelope>(lane.name, (job, token, signal) => this.process(job, token, signal), {
      connection: this.redis,
      prefix: this.prefix,
      concurrency: lane.concurrency,
      lockDuration: this.options.lockDurationMs ?? BULLMQ_DEFAULTS.lockDurationMs,
      stalledInterval: this.options.stalledIntervalMs ?? BULLMQ_DEFAULTS.stalledIntervalMs,
      maxStalledCount: this.options.maxStalledCount ?? BULLMQ_DEFAULTS.maxStalledCount,
      settings: {
        // Only a TransientJobError is tried again; -1 fails the job at once.
        backoffStrategy: (attemptsMade, _type, error) =>
          isTransientJobError(error) ? jobRetryDelayMs(this.retry, attemptsMade - 1) : -1,
      },
    });
    worker.on("error", (error: unknown) => this.warn(`worker ${lane.name}`, error));
    worker.on("failed", (job, error) => {
      // Emitted for a retry too; a job moved to failed has finishedOn.
      if (job === undefined || job.finishedOn === undefined) return;
      const reported = this.reportFailure(job, error).finally(() => this.reporting.delete(reported));
      this.reporting.add(reported);
    });
    // The lock is gone (another worker has the job, or will): stop rather than write twice.
    worker.on("lockRenewalFailed", (ids) => {
      for (const id of ids) worker.cancelJob(id, "lock lost: the job was handed to another worker");
    });
    lane.worker = worker;
  }

  private async process(job: Job<Envelope>, token: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const handler = this.handlers.get(job.name);
    if (handler === undefined) throw new Error(`No handler registered for job "${job.name}" in this process`);
    // A fetch under way when the grace ran out can still deliver a job (one just handed
    // back, say): it must not start here, where nothing would stop it and close() would
    // wait for it forever. (A job started before is tracked, so the grace's end aborts it.)
    if (this.graceOver) await this.handBack(job, token);
    const context: JobContext = {
      key: job.data.key,
      attempt: Math.max(1, job.attemptsStarted),
      signal: signal ?? new AbortController().signal,
    };
    try {
      await handler(job.data.payload, context);
    } catch (error) {
      if (!context.signal.aborted) throw error instanceof Error ? error : new Error(String(error));
    }
    if (context.signal.aborted) await this.handBack(job, token);
  }

  /** The job failed for good in this process's worker: its name's `failed` hook runs here. */
  private async reportFailure(job: Job<Envelope>, error: Error): Promise<void> {
    const failed = this.failureHooks.get(job.name);
    if (failed === undefined) return;
    try {
      await failed(job.data.payload, { key: job.data.key, error });
    } catch (hookError) {
      this.log(`job ${job.data.key}: its failure was not handled: ${message(hookError)}`);
    }
  }

  /** A job stopped by its abort signal goes back to `wait`, first in line, for any worker. */
  private async handBack(job: Job<Envelope>, token: string | undefined): Promise<never> {
    try {
      if (token !== undefined) await job.moveToWait(token);
    } catch (error) {
      this.log(`job ${job.data.key} not handed back (${message(error)}); the stalled check will hand it over`);
    }
    // Tells BullMQ the job was moved: neither completed nor failed.
    throw new WaitingError();
  }

  private watch(lane: Lane, id: string): Promise<JobOutcome> {
    const name = `${lane.name}/${id}`;
    const existing = this.watchers.get(name);
    if (existing !== undefined) return existing.promise;
    if (this.closing !== undefined) return Promise.resolve(closedOutcome(id));
    let settle: (outcome: JobOutcome) => void = () => {};
    const promise = new Promise<JobOutcome>((resolve) => {
      settle = resolve;
    });
    this.watchers.set(name, { lane, id, promise, settle });
    // Events after the listener started arrive; a job that finished before that is seen here.
    void this.finishedState(lane, id).then(
      (outcome) => {
        if (outcome !== undefined) this.settle(lane, id, outcome);
      },
      (error: unknown) => this.settle(lane, id, { ok: false, error }),
    );
    return promise;
  }

  private settle(lane: Lane, id: string, outcome: JobOutcome): void {
    const name = `${lane.name}/${id}`;
    const watcher = this.watchers.get(name);
    if (watcher === undefined) return;
    this.watchers.delete(name);
    watcher.settle(outcome);
  }

  /** The outcome of a job that finished, undefined while it has not. */
  private async finishedState(lane: Lane, id: string): Promise<JobOutcome | undefined> {
    const state = await lane.queue.getJobState(id);
    if (state === "completed") return { ok: true };
    if (state === "failed") {
      const job = await lane.queue.getJob(id);
      return { ok: false, error: new JobFailedError(job?.failedReason ?? "failed") };
    }
    if (state === "unknown") return { ok: false, error: new JobFailedError(`job ${id} is no longer in Redis`) };
    return undefined;
  }

  /**
   * Nothing due is waiting or running, and no job waits out a retry's backoff. One
   * MULTI reads every list at once, so no job is missed while it moves between them.
   */
  private async idle(): Promise<boolean> {
    for (const lane of this.lanes.values()) {
      const key = (type: string) => lane.queue.toKey(type);
      const replies = await this.redis
        .multi()
        .llen(key("wait"))
        .llen(key("active"))
        .llen(key("paused"))
        .zcard(key("prioritized"))
        .zrange(key("delayed"), 0, -1)
        .exec();
      if (replies === null) return false;
      const [wait, active, paused, prioritized, delayed] = replies.map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      if (Number(wait) + Number(active) + Number(paused) + Number(prioritized) > 0) return false;
      const ids = Array.isArray(delayed) ? delayed.map(String) : [];
      if (ids.length === 0) continue;
      // A delayed job that has started before waits out a retry; one that never started is scheduled.
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hget(key(id), "ats");
      const started = (await pipeline.exec()) ?? [];
      if (started.some(([, value]) => Number(value ?? 0) > 0)) return false;
    }
    return true;
  }

  private async shutdown(options: CloseOptions): Promise<void> {
    const workers = [...this.lanes.values()].flatMap((lane) => (lane.worker === undefined ? [] : [lane.worker]));
    await stopWithin(Promise.all(workers.map((worker) => worker.close())), options.graceMs, () => {
      this.graceOver = true;
      for (const worker of workers) worker.cancelAllJobs("shutdown: grace over");
    });
    await Promise.all(this.reporting);
    // A last look for jobs someone waits on: their final event may still be on its way.
    await Promise.all(
      [...this.watchers.values()].map(async ({ lane, id }) => {
        const outcome = await this.finishedState(lane, id).catch(() => undefined);
        this.settle(lane, id, outcome ?? closedOutcome(id));
      }),
    );
    const lanes = [...this.lanes.values()];
    await Promise.all(lanes.map((lane) => lane.events?.close()));
    await Promise.all(lanes.map((lane) => lane.queue.close()));
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /** Connection trouble repeats every reconnect: one line per source every 10 s. */
  private warn(source: string, error: unknown): void {
    const now = Date.now();
    if (now - (this.lastWarning.get(source) ?? 0) < 10_000) return;
    this.lastWarning.set(source, now);
    this.log(`job queue (${source}): ${message(error)}`);
  }
}

function closedOutcome(id: string): JobOutcome {
  return { ok: false, error: new JobQueueClosedError(`Job queue closed before job ${id} finished here`) };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
