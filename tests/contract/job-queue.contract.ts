/**
 * Behaviours every `JobQueue` implementation must have. Import and call from a
 * `*.test.ts` file (vitest collects only those):
 *
 *   jobQueueContract("InProcessJobQueue", (options) => new InProcessJobQueue(options));
 *
 * Written for real timers and real backends: every test uses fresh job names
 * and keys (a Redis-backed queue keeps state between tests), waits on deferred
 * promises rather than sleeps, and closes its queue afterwards. The factory
 * receives `{ concurrency }`; an implementation that cannot honour it passes
 * `{ honoursConcurrency: false }` and the ordering test is skipped.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { JobOutcome, JobQueue } from "../../src/jobs/job-queue.ts";

export interface JobQueueContractOptions {
  /** Whether the factory runs at most `concurrency` jobs at once (default true). */
  honoursConcurrency?: boolean;
}

export type JobQueueFactory = (options: { concurrency?: number }) => Promise<JobQueue> | JobQueue;

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

    async function open(options: { concurrency?: number } = {}): Promise<JobQueue> {
      const queue = await make(options);
      opened.push(queue);
      return queue;
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((queue) => queue.close()));
    });

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
      const started = deferred();
      let sawAbort = false;
      queue.handle(job, async (_payload, { signal }) => {
        started.resolve();
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        sawAbort = signal.aborted;
      });
      const running = await queue.enqueue(job, {}, { key: unique("key") });
      await started.promise;
      await queue.close({ graceMs: 20 });
      expect(sawAbort).toBe(true);
      await expect(running.finished).resolves.toEqual({ ok: true });
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

    it.skipIf(contract.honoursConcurrency === false)(
      "starts jobs in enqueue order, one at a time, with concurrency 1",
      async () => {
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
      },
    );
  });
}
