import { describe, expect, it } from "vitest";
import { InProcessJobQueue, JobQueueClosedError } from "../../src/jobs/in-process-queue.ts";
import { retryOn, TransientJobError } from "../../src/jobs/job-queue.ts";
import { jobQueueContract } from "../contract/job-queue.contract.ts";

jobQueueContract("InProcessJobQueue", (options) => new InProcessJobQueue(options));

function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("InProcessJobQueue", () => {
  it("runs at most 4 jobs at once by default and starts the rest as slots free up", async () => {
    const queue = new InProcessJobQueue();
    const release = gate();
    let active = 0;
    let maxActive = 0;
    const started: number[] = [];
    queue.handle<number>("chapter", async (n) => {
      active++;
      maxActive = Math.max(maxActive, active);
      started.push(n);
      await release.opened;
      active--;
    });

    for (let n = 1; n <= 6; n++) await queue.enqueue("chapter", n, { key: `k${n}` });
    await tick();
    expect(started).toEqual([1, 2, 3, 4]);

    release.open();
    await queue.onIdle();
    expect(started).toEqual([1, 2, 3, 4, 5, 6]);
    expect(maxActive).toBe(4);
  });

  it("honours a configured concurrency of 2", async () => {
    const queue = new InProcessJobQueue({ concurrency: 2 });
    let active = 0;
    let maxActive = 0;
    queue.handle("work", async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await tick();
      active--;
    });
    for (let n = 0; n < 5; n++) await queue.enqueue("work", n, { key: `k${n}` });
    await queue.onIdle();
    expect(maxActive).toBe(2);
  });

  it("returns the very same finished promise for a duplicate key", async () => {
    const queue = new InProcessJobQueue();
    queue.handle("work", async () => {});
    const first = await queue.enqueue("work", {}, { key: "story-1:chapter-2" });
    const second = await queue.enqueue("work", {}, { key: "story-1:chapter-2" });
    expect(second.finished).toBe(first.finished);
  });

  it("forgets the oldest finished keys beyond the retain limit", async () => {
    const queue = new InProcessJobQueue({ retain: 2 });
    let runs = 0;
    queue.handle("work", async () => {
      runs++;
    });
    for (const key of ["a", "b", "c"]) await (await queue.enqueue("work", {}, { key })).finished;

    expect((await queue.enqueue("work", {}, { key: "c" })).created).toBe(false);
    expect((await queue.enqueue("work", {}, { key: "b" })).created).toBe(false);
    const a = await queue.enqueue("work", {}, { key: "a" });
    expect(a.created).toBe(true);
    await a.finished;
    expect(runs).toBe(4);
  });

  it("reports a handler that throws synchronously as a failure", async () => {
    const queue = new InProcessJobQueue();
    const boom = new Error("boom");
    queue.handle("work", () => {
      throw boom;
    });
    const job = await queue.enqueue("work", {}, { key: "k" });
    await expect(job.finished).resolves.toEqual({ ok: false, error: boom });
  });

  it("does not start the handler inside the enqueue call", async () => {
    const queue = new InProcessJobQueue();
    let started = false;
    queue.handle("work", async () => {
      started = true;
    });
    const enqueued = queue.enqueue("work", {}, { key: "k" });
    expect(started).toBe(false);
    await (await enqueued).finished;
    expect(started).toBe(true);
  });

  it("settles jobs still waiting at close as failed with JobQueueClosedError, and does not run them", async () => {
    const queue = new InProcessJobQueue({ concurrency: 1 });
    const release = gate();
    const ran: string[] = [];
    queue.handle<string>("work", async (name) => {
      ran.push(name);
      await release.opened;
    });
    const running = await queue.enqueue("work", "running", { key: "r" });
    const waiting = await queue.enqueue("work", "waiting", { key: "w" });
    await tick();

    const closing = queue.close();
    release.open();
    await closing;

    expect(ran).toEqual(["running"]);
    await expect(running.finished).resolves.toEqual({ ok: true });
    const outcome = await waiting.finished;
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(JobQueueClosedError);
  });

  it("retries the errors retryOn recognises, and fails the others at once", async () => {
    const queue = new InProcessJobQueue({ retry: { attempts: 3, baseMs: 5, capMs: 5 } });
    const attempts: string[] = [];
    const isBusy = (error: unknown) => error instanceof Error && error.message === "busy";
    queue.handle<string>(
      "work",
      retryOn(isBusy, async (kind, { attempt }) => {
        attempts.push(`${kind}${attempt}`);
        if (kind === "busy" && attempt < 2) throw new Error("busy");
        if (kind === "bug") throw new Error("bug");
      }),
    );
    await expect((await queue.enqueue("work", "busy", { key: "a" })).finished).resolves.toEqual({ ok: true });
    const failed = await (await queue.enqueue("work", "bug", { key: "b" })).finished;
    expect(failed.ok ? "" : String(failed.error)).toContain("bug");
    expect(attempts).toEqual(["busy1", "busy2", "bug1"]);
  });

  it("settles scheduled jobs and jobs waiting for a retry at close, and runs neither", async () => {
    const queue = new InProcessJobQueue({ retry: { attempts: 2, baseMs: 10_000, capMs: 10_000 } });
    let runs = 0;
    queue.handle("work", async () => {
      runs++;
      throw new TransientJobError("busy");
    });
    const later = await queue.enqueue("work", {}, { key: "later", delayMs: 10_000 });
    const retrying = await queue.enqueue("work", {}, { key: "retrying" });
    while ((await queue.metrics())[0]?.delayed !== 2) await tick();
    await queue.close();
    for (const job of [later, retrying]) {
      const outcome = await job.finished;
      expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(JobQueueClosedError);
    }
    expect(runs).toBe(1);
  });

  it("refuses a second handler for the same job name", () => {
    const queue = new InProcessJobQueue();
    queue.handle("work", async () => {});
    expect(() => queue.handle("work", async () => {})).toThrow(/"work" is already registered/);
  });

  it("rejects an invalid concurrency or retain", () => {
    expect(() => new InProcessJobQueue({ concurrency: 0 })).toThrow(RangeError);
    expect(() => new InProcessJobQueue({ retain: -1 })).toThrow(RangeError);
  });
});
