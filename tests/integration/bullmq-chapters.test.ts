/**
 * Chapters on BullMQ across processes: real SQLite shared by every "process", real
 * Redis (a fresh key prefix per test), the real ChapterWriter. A process here is a
 * BullMqJobQueue with its own StoryCommands and writer; the killed worker is a real
 * child process (tests/helpers/bullmq-worker-process.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BullMqJobQueue, type BullMqJobQueueOptions } from "../../src/jobs/bullmq-queue.ts";
import { type Db, openDatabase } from "../../src/store/db.ts";
import { CHAPTER_JOB, enqueueChapter } from "../../src/story/chapter-job.ts";
import { ChapterRecovery } from "../../src/story/chapter-recovery.ts";
import { ChapterWriter, handleChapterJobs } from "../../src/story/chapter-writer.ts";
import { ChoicePresenter } from "../../src/story/choice-presenter.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { StoryCommands } from "../../src/story/story-commands.ts";
import { StoryQueries } from "../../src/story/story-queries.ts";
import { FakeStoryAgent } from "../fakes/fake-story-agent.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { chapterLeftWriting } from "../helpers/interrupted-chapter.ts";
import { useTestRedis } from "../helpers/redis.ts";
import { startWorkerProcess } from "../helpers/worker-process.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const conversation = { platform: "console", workspaceId: "local", id: "c1" };
const LOCK_MS = 1000;
const STALLED_MS = 500;

const redis = useTestRedis();
let dir: string;
let db: Db;
let agent: FakeStoryAgent;
let surface: FakeSurface;
let queries: StoryQueries;
const queues: BullMqJobQueue[] = [];

interface Process {
  queue: BullMqJobQueue;
  stories: StoryCommands;
  logs: string[];
}

/** One process: its queue (a worker unless `role: "producer"`), commands and chapter writer. */
async function startProcess(options: Partial<BullMqJobQueueOptions> = {}): Promise<Process> {
  const queue = await BullMqJobQueue.open({
    url: redis.url,
    prefix: redis.prefix,
    idlePollMs: 20,
    lockDurationMs: LOCK_MS,
    stalledIntervalMs: STALLED_MS,
    ...options,
  });
  queues.push(queue);
  const logs: string[] = [];
  const audiences = () => ({ surface, locale: "en" as const });
  const writer = new ChapterWriter(
    db,
    agent,
    audiences,
    { methods: { open: "cot", continue: "react", rewrite: "reflexion" }, recentChapters: 2, log: (m) => logs.push(m) },
    new ChoicePresenter(db, audiences),
  );
  handleChapterJobs(queue, writer);
  return { queue, stories: new StoryCommands(db, queue), logs };
}

const until = async (check: () => Promise<boolean> | boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};

async function startStory(process: Process): Promise<string> {
  const ticket = await process.stories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
  await expect(ticket.job.finished).resolves.toEqual({ ok: true });
  return ticket.storyId;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-bullmq-"));
  db = await openDatabase(`file:${join(dir, "test.db")}`);
  agent = new FakeStoryAgent();
  surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 0 } });
  queries = new StoryQueries(db, new ChoicePresenter(db, () => ({ surface, locale: "en" })));
});

afterEach(async () => {
  await Promise.all(queues.splice(0).map((queue) => queue.close()));
  await db.$disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe("chapters on BullMQ across processes", () => {
  it("a chapter stopped when a worker's shutdown grace is over is handed back, and another worker writes it", async () => {
    const stopping = await startProcess();
    agent.hold();
    const ticket = await stopping.stories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
    await until(() => agent.inputs.length > 0);
    const other = await startProcess();
    const closing = stopping.queue.close({ graceMs: 10 });
    await new Promise((r) => setTimeout(r, 30));
    agent.release();
    await closing;
    expect(stopping.logs.some((l) => l.includes("stopped for shutdown"))).toBe(true);

    await until(async () => (await queries.state(ticket.storyId)).head?.status === "done");
    await other.queue.onIdle();
    const state = await queries.state(ticket.storyId);
    expect(state.head?.text).toBe("Chapter 1 text about A lighthouse.\n\nIt goes on.");
    expect(agent.inputs).toHaveLength(2);
    expect(surface.calls.filter((c) => c.kind === "failed")).toEqual([]);
    expect(surface.calls.filter((c) => c.kind === "offerChoices")).toHaveLength(1);
  });

  it("a worker killed mid-chapter: another worker takes the chapter over and continues it in the messages shown", async () => {
    const first = await startProcess();
    const storyId = await startStory(first);
    await first.queue.close();
    const { revision } = await queries.state(storyId);
    // The worker that will die claimed chapter 2 and showed its first words.
    const interrupted = await chapterLeftWriting(db, surface, storyId, "I wait");
    const { chapterId } = interrupted;
    const worker = startWorkerProcess({
      url: redis.url,
      prefix: redis.prefix,
      job: CHAPTER_JOB,
      lockMs: LOCK_MS,
      stalledMs: STALLED_MS,
    });
    try {
      await worker.printed("ready");
      const front = await startProcess({ role: "producer" });
      const ticket = await enqueueChapter(front.queue, { storyId, chapterId, number: 2, revision });
      await worker.printed(`started chapter:${chapterId}:r${revision} 1`);
      worker.kill();

      await startProcess();
      await expect(ticket.job.finished).resolves.toEqual({ ok: true });
    } finally {
      worker.kill();
    }
    await interrupted.expectContinuedInPlace(agent);
  });

  it("a chapter whose workers die more often than maxStalledCount allows is marked failed once, readers get a retry, and the retry writes it", async () => {
    const first = await startProcess();
    const storyId = await startStory(first);
    await first.queue.close();
    const { revision } = await queries.state(storyId);
    const { chapterId } = await chapterLeftWriting(db, surface, storyId, "I wait");
    const workerOptions = {
      url: redis.url,
      prefix: redis.prefix,
      job: CHAPTER_JOB,
      lockMs: LOCK_MS,
      stalledMs: STALLED_MS,
    };
    const key = `chapter:${chapterId}:r${revision}`;
    const dying = [startWorkerProcess(workerOptions)];
    try {
      await dying[0]?.printed("ready");
      const front = await startProcess({ role: "producer" });
      const ticket = await enqueueChapter(front.queue, { storyId, chapterId, number: 2, revision });
      await dying[0]?.printed(`started ${key} 1`);
      dying[0]?.kill();
      // The next worker takes the chapter over (stall 1 of 1 allowed), and dies too.
      dying.push(startWorkerProcess(workerOptions));
      await dying[1]?.printed(`started ${key} 2`);
      dying[1]?.kill();

      const rescuer = await startProcess({ maxStalledCount: 1 });
      const outcome = await ticket.job.finished;
      expect(outcome.ok ? "" : String(outcome.error)).toContain("job stalled more than allowable limit");
      await until(async () => (await queries.state(storyId)).head?.status === "failed");
      await rescuer.queue.close();
      expect(rescuer.logs.some((l) => l.includes("its job was given up (job stalled more than allowable limit)"))).toBe(
        true,
      );
    } finally {
      for (const worker of dying) worker.kill();
    }
    const failed = await db.chapter.findUniqueOrThrow({ where: { id: chapterId } });
    expect(failed).toMatchObject({ status: "failed", error: "internal", progress: null });
    expect(agent.inputs).toHaveLength(1);
    const told = surface.calls.filter((c) => c.kind === "failed");
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ storyId, text: expect.stringContaining("Something went wrong on our side") });

    // The story is no longer stuck: Retry writes the chapter.
    const writer = await startProcess();
    const retried = await writer.stories.retry(storyId);
    await expect(retried.job.finished).resolves.toEqual({ ok: true });
    expect((await queries.state(storyId)).head).toMatchObject({ id: chapterId, status: "done" });
  });

  it("start-up recovery beside a live worker steals nothing: the chapter it holds keeps its one job", async () => {
    const first = await startProcess();
    const storyId = await startStory(first);
    await first.queue.close();
    const { revision } = await queries.state(storyId);
    const { chapterId } = await chapterLeftWriting(db, surface, storyId, "I wait");
    const worker = startWorkerProcess({
      url: redis.url,
      prefix: redis.prefix,
      job: CHAPTER_JOB,
      lockMs: LOCK_MS,
      stalledMs: STALLED_MS,
    });
    try {
      await worker.printed("ready");
      const front = await startProcess({ role: "producer" });
      await enqueueChapter(front.queue, { storyId, chapterId, number: 2, revision });
      await worker.printed(`started chapter:${chapterId}:r${revision} 1`);

      // Another worker starts while the first one writes, and recovers what it finds busy.
      const starting = await startProcess();
      expect(await new ChapterRecovery(db, starting.queue).resumeInterrupted()).toBe(0);
      // Long enough for a lapsed lock to be noticed (lock + two checks): the live worker keeps it.
      await new Promise((r) => setTimeout(r, LOCK_MS + 2 * STALLED_MS + 500));
      expect(agent.inputs).toHaveLength(1);
      expect((await db.chapter.findUniqueOrThrow({ where: { id: chapterId } })).status).toBe("writing");
      expect(surface.calls.filter((c) => c.kind === "failed")).toEqual([]);
    } finally {
      worker.kill();
    }
  });

  it("one chapter at a time per story: a second request from another process is refused while one is written", async () => {
    const a = await startProcess();
    const b = await startProcess();
    const storyId = await startStory(a);
    const { revision } = await queries.state(storyId);
    agent.hold();
    // The same click delivered to two processes at once: one chapter.
    const results = await Promise.allSettled([
      a.stories.act(storyId, revision, "I run"),
      b.stories.act(storyId, revision, "I hide"),
    ]);
    const written = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    expect(written).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(UserFacingError);
    // While it is written, another request (at the new revision) is refused as busy.
    const now = await queries.state(storyId);
    await expect(b.stories.act(storyId, now.revision, "I wait")).rejects.toSatisfy(
      (e: unknown) => e instanceof UserFacingError && e.id === "error.busy",
    );
    agent.release();
    await expect(written[0]?.job.finished).resolves.toEqual({ ok: true });
    expect(await db.chapter.count({ where: { storyId } })).toBe(2);
    expect(agent.inputs).toHaveLength(2);
  });
});
