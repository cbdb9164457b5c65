/**
 * The BullMQ queue on a real Redis (a fresh key prefix per test): the JobQueue contract,
 * then what only a shared queue has: processes on one key, roles, lanes, a killed
 * worker, Redis restarts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BullMqJobQueue, type BullMqJobQueueOptions, jobIdFor } from "../../src/jobs/bullmq-queue.ts";
import { JobQueueUnavailableError } from "../../src/jobs/job-queue.ts";
import { jobQueueContract } from "../contract/job-queue.contract.ts";
import { connectTestRedis, freePort, OwnRedis, useTestRedis } from "../helpers/redis.ts";
import { startWorkerProcess } from "../helpers/worker-process.ts";

const redis = useTestRedis();

jobQueueContract(
  "BullMqJobQueue",
  (options) =>
    BullMqJobQueue.open({
      url: redis.url,
      prefix: redis.prefix,
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      idlePollMs: 20,
      // Short locks: a job not moved back at close (a busy machine) is handed over by the
      // stalled check within seconds, as it would be in production within ~35 s.
      lockDurationMs: 2_000,
      stalledIntervalMs: 1_000,
    }),
  { abortedJobs: "handBack" },
);

const opened: BullMqJobQueue[] = [];

async function open(options: Partial<BullMqJobQueueOptions> = {}): Promise<BullMqJobQueue> {
  const queue = await BullMqJobQueue.open({ url: redis.url, prefix: redis.prefix, idlePollMs: 20, ...options });
  opened.push(queue);
  return queue;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((queue) => queue.close()));
});

function deferred() {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("BullMqJobQueue", () => {
  it("turns any key into a job id BullMQ accepts, never the same id for two keys", () => {
    const keys = ["chapter:c1:r3", "ballot:b1:1700000000000", "123", "-5", "%3A", ":", "50%:x", "a:b:c:d"];
    const ids = keys.map(jobIdFor);
    expect(new Set(ids).size).toBe(keys.length);
    for (const id of ids) {
      expect(id).not.toContain(":");
      expect(String(Number.parseInt(id, 10))).not.toBe(id);
    }
    expect(jobIdFor("chapter:c1:r3")).toBe("chapter%3Ac1%3Ar3");
  });

  it("runs jobs whose keys hold colons, percent signs or only digits, each under its own key", async () => {
    const queue = await open();
    const seen: string[] = [];
    queue.handle("work", async (_payload, { key }) => {
      seen.push(key);
    });
    const keys = ["chapter:c1:r3", "123", "50%:x"];
    const jobs = await Promise.all(keys.map((key) => queue.enqueue("work", {}, { key })));
    await Promise.all(jobs.map((job) => job.finished));
    expect(seen.sort()).toEqual([...keys].sort());
  });

  it("runs a key enqueued by two processes at once exactly once, and tells only one it created it", async () => {
    const [a, b] = [await open(), await open()];
    let runs = 0;
    for (const queue of [a, b]) {
      queue.handle("chapter", async () => {
        runs++;
      });
    }
    const [first, second] = await Promise.all([
      a.enqueue("chapter", { n: 1 }, { key: "chapter:c1:r1" }),
      b.enqueue("chapter", { n: 2 }, { key: "chapter:c1:r1" }),
    ]);
    expect([first.created, second.created].sort()).toEqual([false, true]);
    await expect(Promise.all([first.finished, second.finished])).resolves.toEqual([{ ok: true }, { ok: true }]);
    await a.onIdle();
    expect(runs).toBe(1);
  });

  it("a producer runs nothing; a worker elsewhere runs the job and the producer learns it finished", async () => {
    const producer = await open({ role: "producer", lanes: { chapters: { jobs: ["chapter"], concurrency: 1 } } });
    let ranInProducer = false;
    producer.handle("chapter", async () => {
      ranInProducer = true;
    });
    const enqueued = await producer.enqueue("chapter", {}, { key: "chapter:c2:r1" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ranInProducer).toBe(false);
    expect(await producer.metrics()).toContainEqual(expect.objectContaining({ queue: "chapters", waiting: 1 }));

    const worker = await open({ lanes: { chapters: { jobs: ["chapter"], concurrency: 1 } } });
    const ran: string[] = [];
    worker.handle("chapter", async (_payload, { key }) => {
      ran.push(key);
    });
    await expect(enqueued.finished).resolves.toEqual({ ok: true });
    expect(ran).toEqual(["chapter:c2:r1"]);
    expect(ranInProducer).toBe(false);
  });

  it("keeps lanes apart: a timer runs while every chapter slot is busy, and each lane reports its own counts", async () => {
    const queue = await open({
      lanes: { chapters: { jobs: ["chapter"], concurrency: 1 }, timers: { jobs: ["ballot-close"], concurrency: 1 } },
    });
    const release = deferred();
    const started = deferred();
    queue.handle("chapter", async () => {
      started.resolve();
      await release.promise;
    });
    let closed = false;
    queue.handle("ballot-close", async () => {
      closed = true;
    });
    await queue.enqueue("chapter", {}, { key: "chapter:a:r1" });
    await queue.enqueue("chapter", {}, { key: "chapter:b:r1" });
    await started.promise;
    await (await queue.enqueue("ballot-close", {}, { key: "ballot:x:1" })).finished;
    expect(closed).toBe(true);
    const metrics = await queue.metrics();
    expect(metrics.map((m) => m.queue).sort()).toEqual(["chapters", "jobs", "timers"]);
    expect(metrics.find((m) => m.queue === "chapters")).toMatchObject({ active: 1, waiting: 1 });
    release.resolve();
    await queue.onIdle();
  });

  it("a worker killed mid-job loses it to no one: the stalled check hands it to another worker within lock + interval", async () => {
    const lockMs = 1000;
    const stalledMs = 500;
    const worker = startWorkerProcess({ url: redis.url, prefix: redis.prefix, job: "chapter", lockMs, stalledMs });
    try {
      await worker.printed("ready");
      const producer = await open({ role: "producer" });
      producer.handle("chapter", async () => {});
      const enqueued = await producer.enqueue("chapter", { chapterId: "c9" }, { key: "chapter:c9:r1" });
      await worker.printed("started chapter:c9:r1 1");
      worker.kill();
      const killedAt = Date.now();

      const rescuer = await open({ lockDurationMs: lockMs, stalledIntervalMs: stalledMs });
      const resumed: { payload: unknown; attempt: number; after: number }[] = [];
      rescuer.handle("chapter", async (payload, { attempt }) => {
        resumed.push({ payload, attempt, after: Date.now() - killedAt });
      });
      await expect(enqueued.finished).resolves.toEqual({ ok: true });
      expect(resumed).toHaveLength(1);
      expect(resumed[0]).toMatchObject({ payload: { chapterId: "c9" }, attempt: 2 });
      // The lock lapses within lockMs of the kill; a check runs every stalledMs (plus start-up).
      expect(resumed[0]?.after).toBeLessThan(lockMs + 2 * stalledMs + 1500);
      const stalled = (await rescuer.metrics()).find((m) => m.queue === "jobs")?.stalled;
      expect(stalled).toBe(1);
    } finally {
      worker.kill();
    }
  });

  it("a job that stalls more often than maxStalledCount fails for good: the worker that fails it calls the failed hook once, without the handler", async () => {
    const lockMs = 1000;
    const stalledMs = 500;
    const worker = startWorkerProcess({ url: redis.url, prefix: redis.prefix, job: "chapter", lockMs, stalledMs });
    try {
      await worker.printed("ready");
      const producer = await open({ role: "producer" });
      producer.handle("chapter", async () => {});
      const enqueued = await producer.enqueue("chapter", { chapterId: "c7" }, { key: "chapter:c7:r1" });
      await worker.printed("started chapter:c7:r1 1");
      worker.kill();

      // No stall allowed here: the first one is one too many.
      const rescuer = await open({ lockDurationMs: lockMs, stalledIntervalMs: stalledMs, maxStalledCount: 0 });
      const runs: unknown[] = [];
      const failures: unknown[] = [];
      const reported = deferred();
      rescuer.handle(
        "chapter",
        async (payload) => {
          runs.push(payload);
        },
        {
          failed: async (payload, { key, error }) => {
            failures.push({ payload, key, message: error.message });
            reported.resolve();
          },
        },
      );
      const outcome = await enqueued.finished;
      expect(outcome.ok ? "" : String(outcome.error)).toContain("job stalled more than allowable limit");
      await reported.promise;
      await rescuer.close();
      expect(runs).toEqual([]);
      expect(failures).toEqual([
        {
          payload: { chapterId: "c7" },
          key: "chapter:c7:r1",
          message: "job stalled more than allowable limit",
        },
      ]);
    } finally {
      worker.kill();
    }
  });

  it("a worker that finds its job's lock gone stops the job rather than write on; the job runs again", async () => {
    const logs: string[] = [];
    const queue = await open({ lockDurationMs: 1000, stalledIntervalMs: 500, log: (m) => logs.push(m) });
    const started = deferred();
    const runs: { attempt: number; reason?: unknown }[] = [];
    queue.handle("chapter", async (_payload, { attempt, signal }) => {
      if (attempt > 1) {
        runs.push({ attempt });
        return;
      }
      started.resolve();
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      runs.push({ attempt, reason: signal.reason });
    });
    const enqueued = await queue.enqueue("chapter", {}, { key: "chapter:lost:r1" });
    await started.promise;
    // As if the lock had lapsed (a long pause) and the stalled check had given the job away.
    const probe = await connectTestRedis(redis.url);
    try {
      await probe.del(`${redis.prefix}:jobs:${jobIdFor("chapter:lost:r1")}:lock`);
    } finally {
      probe.disconnect();
    }
    await expect(enqueued.finished).resolves.toEqual({ ok: true });
    expect(runs).toEqual([{ attempt: 1, reason: expect.stringContaining("lock lost") }, { attempt: 2 }]);
  });

  it("refuses a job name placed in two lanes", async () => {
    const lanes = { a: { jobs: ["x"], concurrency: 1 }, b: { jobs: ["x"], concurrency: 1 } };
    await expect(open({ lanes })).rejects.toThrow(/"x" is in two lanes/);
  });

  it("fails fast when Redis does not answer, naming the server without its password", async () => {
    const port = await freePort();
    const error = await BullMqJobQueue.open({ url: `redis://:s3cret@127.0.0.1:${port}`, connectTimeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(JobQueueUnavailableError);
    const text = String((error as Error).message);
    expect(text).toContain(`127.0.0.1:${port}`);
    expect(text).not.toContain("s3cret");
  });
});

describe("BullMqJobQueue across a Redis restart", () => {
  let server: OwnRedis | undefined;
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((queue) => queue.close()));
    await server?.stop();
    server = undefined;
  });

  it("with an append-only file, loses no job: queued and scheduled jobs run once Redis is back", async () => {
    server = await OwnRedis.start({ appendonly: true });
    const url = server.url;
    const producer = await open({ url, role: "producer" });
    producer.handle("work", async () => {});
    await producer.enqueue("work", "now", { key: "now" });
    await producer.enqueue("work", "later", { key: "later", delayMs: 500 });
    await producer.close();
    await server.kill();
    await server.start();

    const worker = await open({ url });
    const ran: unknown[] = [];
    worker.handle("work", async (payload) => {
      ran.push(payload);
    });
    const later = await worker.enqueue("work", "later again", { key: "later" });
    expect(later.created).toBe(false);
    await later.finished;
    expect(ran.sort()).toEqual(["later", "now"]);
  });

  it("without persistence, an enqueue during the outage completes when Redis is back, and workers reconnect", async () => {
    server = await OwnRedis.start({ appendonly: false });
    const url = server.url;
    const logs: string[] = [];
    const queue = await open({ url, log: (m) => logs.push(m) });
    const ran: unknown[] = [];
    queue.handle("work", async (payload) => {
      ran.push(payload);
    });
    await (await queue.enqueue("work", "before", { key: "before" })).finished;

    await server.kill();
    let settled = false;
    const during = queue.enqueue("work", "during", { key: "during" }).then((job) => {
      settled = true;
      return job;
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(settled).toBe(false);
    await server.start();

    const enqueued = await during;
    expect(enqueued.created).toBe(true);
    await expect(enqueued.finished).resolves.toEqual({ ok: true });
    await (await queue.enqueue("work", "after", { key: "after" })).finished;
    expect(ran).toEqual(["before", "during", "after"]);
    // The outage was told to the operator (once per source, not once per reconnect).
    expect(logs.some((line) => /ECONNRE(SET|FUSED)/.test(line))).toBe(true);
  });
});
