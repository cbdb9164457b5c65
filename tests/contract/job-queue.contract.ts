/**
 * Behaviours every `JobQueue` implementation must have. Import and call from a
 * `*.test.ts` file (vitest collects only those):
 *
 *   jobQueueContract("InProcessJobQueue", (options) => new InProcessJobQueue(options));
 *
 * Written for real timers and real backends: every test uses fresh job names
 * and keys (a Redis-backed queue keeps state between tests), waits on deferred
 * promises rather than sleeps, and closes its queue afterwards. The factory
 * receives `{ concurrency, retry }`. Two queues a test opens are two processes
 * sharing one backend (the runner gives every test its own namespace).
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  type JobOutcome,
  type JobQueue,
  JobQueueClosedError,
  type QueueMetrics,
  type RetryPolicy,
  TransientJobError,
} from "../../src/jobs/job-queue.ts";

export interface JobQueueContractOptions {
  /**
   * What becomes of a job whose handler stopped when close's grace was over:
   * "finish" (in-process: it finished, and a restart resumes its work) or "handBack"
   * (shared queues: it goes back to the queue, and another process runs it again).
   */
  abortedJobs?: "finish" | "handBack";
}

export interface JobQueueFactoryOptions {
  concurrency?: number;
  retry?: RetryPolicy;
}

export type JobQueueFactory = (options: JobQueueFactoryOptions) => Promise<JobQueue> | JobQueue;

/** Retries fast enough for a test. */
const QUICK_RETRY: RetryPolicy = { attempts: 3, baseMs: 20, capMs: 100 };

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function jobQueueContract(name: string, make: JobQueueFactory, contract: JobQueueContractOptions = {}): void {
  describe(`JobQueue contract: ${name}`, () => {
    const opened: JobQueue[] = [];
    const unique = (label: string) => `${label}-${randomUUID()}`;

    async function open(options: JobQueueFactoryOptions = {}): Promise<JobQueue> {
      const queue = await make(options);
      opened.push(queue);
      return queue;
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((queue) => queue.close()));
    });

    const total = (metrics: QueueMetrics[], field: "waiting" | "active" | "delayed" | "failed") =>
      metrics.reduce((sum, m) => sum + m[field], 0);

    it("runs the handler once with the payload and key, then reports success", async () => {
      const queue = await open();
      const job = unique("job");
      const key = unique("key");
      const seen: unknown[] = [];
      queue.handle<{ chapter: number }>(job, async (payload, info) => {
        seen.push({ payload, key: info.key, attempt: info.attempt });
      });

      const enqueued = await queue.enqueue(job, { chapter: 3 }, { key });

      expect(enqueued).toMatchObject({ key, created: true });
      await expect(enqueued.finished).resolves.toEqual({ ok: true });
      expect(seen).toEqual([{ payload: { chapter: 3 }, key, attempt: 1 }]);
    });

    it("returns the existing job for a key enqueued again while it runs, and runs it once", async () => {
      const queue = await open();
      const job = unique("job");
      const key = unique("key");
      const started = deferred();
      const release = deferred();
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
        started.resolve();
        await release.promise;
      });

      const first = await queue.enqueue(job, { n: 1 }, { key });
      await started.promise;
      const second = await queue.enqueue(job, { n: 2 }, { key });
      release.resolve();

      expect(second).toMatchObject({ key, created: false });
      const outcomes = await Promise.all([first.finished, second.finished]);
      expect(outcomes).toEqual([{ ok: true }, { ok: true }]);
      expect(runs).toBe(1);
    });

    it("returns the existing job for a key enqueued again after it finished, without running it again", async () => {
      const queue = await open();
      const job = unique("job");
      const key = unique("key");
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
      });

      await (await queue.enqueue(job, {}, { key })).finished;
      const again = await queue.enqueue(job, {}, { key });

      expect(again.created).toBe(false);
      await expect(again.finished).resolves.toEqual({ ok: true });
      expect(runs).toBe(1);
    });

    it("runs jobs with different keys independently", async () => {
      const queue = await open();
      const job = unique("job");
      const payloads: unknown[] = [];
      queue.handle<string>(job, async (payload) => {
        payloads.push(payload);
      });

      const a = await queue.enqueue(job, "a", { key: unique("key") });
      const b = await queue.enqueue(job, "b", { key: unique("key") });

      expect([a.created, b.created]).toEqual([true, true]);
      await Promise.all([a.finished, b.finished]);
      expect(payloads.sort()).toEqual(["a", "b"]);
    });

    it("reports a handler failure in finished without retrying it", async () => {
      const queue = await open();
      const job = unique("job");
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
        throw new Error("model endpoint down");
      });

      const enqueued = await queue.enqueue(job, {}, { key: unique("key") });
      const outcome: JobOutcome = await enqueued.finished;

      expect(outcome.ok).toBe(false);
      expect(outcome.ok ? "" : errorMessage(outcome.error)).toContain("model endpoint down");
      await queue.onIdle();
      expect(runs).toBe(1);
    });

    it("calls the failed hook once, with the payload, key and error, for a job that fails; never for one that succeeds", async () => {
      const queue = await open();
      const job = unique("job");
      const failures: unknown[] = [];
      queue.handle<string>(
        job,
        async (payload) => {
          if (payload === "bad") throw new Error("model endpoint down");
        },
        {
          failed: async (payload, { key, error }) => {
            failures.push({ payload, key, message: error.message });
          },
        },
      );
      const key = unique("key");
      const bad = await queue.enqueue(job, "bad", { key });
      const good = await queue.enqueue(job, "good", { key: unique("key") });
      await Promise.all([bad.finished, good.finished]);
      // A shared queue calls the hook beside `finished`: close waits for it.
      await queue.close();
      expect(failures).toEqual([{ payload: "bad", key, message: "model endpoint down" }]);
    });

    it("calls the failed hook after the last try of a transient failure, not after each retry", async () => {
      const queue = await open({ retry: QUICK_RETRY });
      const job = unique("job");
      let runs = 0;
      const failures: unknown[] = [];
      queue.handle(
        job,
        async () => {
          runs++;
          throw new TransientJobError(`database unreachable (${runs})`);
        },
        {
          failed: async (_payload, { error }) => {
            failures.push({ message: error.message, runs });
          },
        },
      );
      await (await queue.enqueue(job, {}, { key: unique("key") })).finished;
      await queue.close();
      expect(failures).toEqual([{ message: "database unreachable (3)", runs: 3 }]);
    });

    it("does not call the failed hook for a job that close() stopped: it is resumed later", async () => {
      const queue = await open();
      const job = unique("job");
      const started = deferred();
      const failures: unknown[] = [];
      queue.handle(
        job,
        async (_payload, { signal }) => {
          started.resolve();
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          throw new Error("stopped mid-way");
        },
        {
          failed: async (_payload, { error }) => {
            failures.push(error.message);
          },
        },
      );
      await queue.enqueue(job, {}, { key: unique("key") });
      await started.promise;
      await queue.close({ graceMs: 20 });
      expect(failures).toEqual([]);
    });

    it("rejects a job name without a handler, naming it", async () => {
      const queue = await open();
      const job = unique("unregistered");
      await expect(queue.enqueue(job, {}, { key: unique("key") })).rejects.toThrow(job);
    });

    it("resolves onIdle at once when nothing is queued", async () => {
      const queue = await open();
      await expect(queue.onIdle()).resolves.toBeUndefined();
    });

    it("resolves onIdle only after every queued and running job finished", async () => {
      const queue = await open();
      const job = unique("job");
      const release = deferred();
      let done = 0;
      queue.handle(job, async () => {
        await release.promise;
        done++;
      });
      for (let i = 0; i < 3; i++) await queue.enqueue(job, i, { key: unique("key") });

      let idle = false;
      const onIdle = queue.onIdle().then(() => {
        idle = true;
      });
      await new Promise((resolve) => setImmediate(resolve));
      expect(idle).toBe(false);

      release.resolve();
      await onIdle;
      expect(done).toBe(3);
    });

    it("waits for the running job on close, then rejects new jobs", async () => {
      const queue = await open();
      const job = unique("job");
      const started = deferred();
      const release = deferred();
      let finishedRunning = false;
      queue.handle(job, async () => {
        started.resolve();
        await release.promise;
        finishedRunning = true;
      });
      const running = await queue.enqueue(job, {}, { key: unique("key") });
      await started.promise;

      const closing = queue.close();
      await expect(queue.enqueue(job, {}, { key: unique("key") })).rejects.toThrow(/closed/i);
      release.resolve();
      await closing;

      expect(finishedRunning).toBe(true);
      await expect(running.finished).resolves.toEqual({ ok: true });
    });

    it("aborts a running job's signal once close's grace is over, and waits for it to stop", async () => {
      const queue = await open();
      const job = unique("job");
      const key = unique("key");
      const started = deferred();
      let sawAbort = false;
      queue.handle(job, async (_payload, { signal }) => {
        started.resolve();
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        sawAbort = signal.aborted;
      });
      const running = await queue.enqueue(job, {}, { key });
      await started.promise;
      await queue.close({ graceMs: 20 });
      expect(sawAbort).toBe(true);
      if (contract.abortedJobs !== "handBack") {
        await expect(running.finished).resolves.toEqual({ ok: true });
        return;
      }
      // Handed back: not finished here, and the next process runs it again.
      const outcome = await running.finished;
      expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(JobQueueClosedError);
      const next = await open();
      const attempts: number[] = [];
      next.handle(job, async (_payload, { attempt }) => {
        attempts.push(attempt);
      });
      const again = await next.enqueue(job, {}, { key });
      expect(again.created).toBe(false);
      await expect(again.finished).resolves.toEqual({ ok: true });
      expect(attempts).toEqual([2]);
    });

    it("does not abort a job that finishes within the grace", async () => {
      const queue = await open();
      const job = unique("job");
      let aborted: boolean | undefined;
      queue.handle(job, async (_payload, { signal }) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        aborted = signal.aborted;
      });
      await queue.enqueue(job, {}, { key: unique("key") });
      await queue.close({ graceMs: 5_000 });
      expect(aborted).toBe(false);
    });

    it("runs a job enqueued for later no earlier than its time, and onIdle does not wait for it", async () => {
      const queue = await open();
      const job = unique("job");
      let ranAt: number | undefined;
      queue.handle(job, async () => {
        ranAt = Date.now();
      });
      const before = Date.now();
      const later = await queue.enqueue(job, {}, { key: unique("key"), delayMs: 300 });
      await queue.onIdle();
      expect(ranAt).toBeUndefined();
      await expect(later.finished).resolves.toEqual({ ok: true });
      expect(ranAt).toBeGreaterThanOrEqual(before + 300);
    });

    it("runs a job due at a time already past at once, and one due later at that time", async () => {
      const queue = await open();
      const job = unique("job");
      const ran: string[] = [];
      queue.handle<string>(job, async (which) => {
        ran.push(which);
      });
      const due = new Date(Date.now() + 250);
      const later = await queue.enqueue(job, "later", { key: unique("key"), at: due });
      const past = await queue.enqueue(job, "past", { key: unique("key"), at: new Date(Date.now() - 60_000) });
      await expect(past.finished).resolves.toEqual({ ok: true });
      expect(ran).toEqual(["past"]);
      await expect(later.finished).resolves.toEqual({ ok: true });
      expect(ran).toEqual(["past", "later"]);
      expect(Date.now()).toBeGreaterThanOrEqual(due.getTime());
    });

    it("keeps a scheduled job's key idempotent: enqueued again before its time, it is the same job", async () => {
      const queue = await open();
      const job = unique("job");
      const key = unique("key");
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
      });
      const first = await queue.enqueue(job, {}, { key, delayMs: 150 });
      const second = await queue.enqueue(job, {}, { key, delayMs: 150 });
      expect([first.created, second.created]).toEqual([true, false]);
      await Promise.all([first.finished, second.finished]);
      expect(runs).toBe(1);
    });

    it("starts a job again after a TransientJobError, with a growing attempt, until it succeeds", async () => {
      const queue = await open({ retry: QUICK_RETRY });
      const job = unique("job");
      const attempts: number[] = [];
      const startedAt: number[] = [];
      queue.handle(job, async (_payload, { attempt }) => {
        attempts.push(attempt);
        startedAt.push(Date.now());
        if (attempt < 3) throw new TransientJobError("database unreachable");
      });
      const enqueued = await queue.enqueue(job, {}, { key: unique("key") });
      await expect(enqueued.finished).resolves.toEqual({ ok: true });
      expect(attempts).toEqual([1, 2, 3]);
      // A backoff before each retry: at least half of baseMs, then of twice that.
      const gaps = startedAt.slice(1).map((at, i) => at - (startedAt[i] ?? at));
      expect(gaps[0]).toBeGreaterThanOrEqual(QUICK_RETRY.baseMs / 2);
      expect(gaps[1]).toBeGreaterThanOrEqual(QUICK_RETRY.baseMs);
    });

    it("reports the last transient failure once the retry policy's attempts are spent", async () => {
      const queue = await open({ retry: { ...QUICK_RETRY, attempts: 2 } });
      const job = unique("job");
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
        throw new TransientJobError(`database unreachable (${runs})`);
      });
      const outcome = await (await queue.enqueue(job, {}, { key: unique("key") })).finished;
      expect(outcome.ok ? "" : errorMessage(outcome.error)).toContain("database unreachable (2)");
      expect(runs).toBe(2);
    });

    it("waits in onIdle for a job that waits out a retry's backoff", async () => {
      const queue = await open({ retry: { attempts: 2, baseMs: 200, capMs: 200 } });
      const job = unique("job");
      let runs = 0;
      queue.handle(job, async () => {
        runs++;
        if (runs === 1) throw new TransientJobError("busy");
      });
      await queue.enqueue(job, {}, { key: unique("key") });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await queue.onIdle();
      expect(runs).toBe(2);
    });

    it("counts a running job as active, a scheduled one as delayed, and a failed one as failed", async () => {
      const queue = await open();
      const job = unique("job");
      const started = deferred();
      const release = deferred();
      queue.handle<string>(job, async (kind) => {
        if (kind === "fail") throw new Error("broken");
        started.resolve();
        await release.promise;
      });
      const before = await queue.metrics();
      expect(before.length).toBeGreaterThan(0);
      for (const m of before) expect(typeof m.queue).toBe("string");
      await (await queue.enqueue(job, "fail", { key: unique("key") })).finished;
      await queue.enqueue(job, "later", { key: unique("key"), delayMs: 60_000 });
      const running = await queue.enqueue(job, "run", { key: unique("key") });
      await started.promise;
      const during = await queue.metrics();
      expect(total(during, "active")).toBe(total(before, "active") + 1);
      expect(total(during, "delayed")).toBe(total(before, "delayed") + 1);
      expect(total(during, "failed")).toBe(total(before, "failed") + 1);
      expect(total(during, "waiting")).toBe(total(before, "waiting"));
      release.resolve();
      await running.finished;
    });

    it("starts jobs in enqueue order, one at a time, with concurrency 1", async () => {
      const queue = await open({ concurrency: 1 });
      const job = unique("job");
      const order: number[] = [];
      let active = 0;
      let maxActive = 0;
      queue.handle<number>(job, async (n) => {
        active++;
        maxActive = Math.max(maxActive, active);
        order.push(n);
        await new Promise((resolve) => setImmediate(resolve));
        active--;
      });

      const jobs = [];
      for (let n = 1; n <= 5; n++) jobs.push(await queue.enqueue(job, n, { key: unique("key") }));
      await Promise.all(jobs.map((j) => j.finished));

      expect(order).toEqual([1, 2, 3, 4, 5]);
      expect(maxActive).toBe(1);
    });
  });
}
