import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { showState } from "../../commands/show-state.ts";
import type { CommandContext } from "../../commands/types.ts";
import { ImageStore } from "../../src/art/image-store.ts";
import { InProcessJobQueue } from "../../src/jobs/in-process-queue.ts";
import { type JobQueue, retryOn } from "../../src/jobs/job-queue.ts";
import { type Db, isTransientDbError, openDatabase } from "../../src/store/db.ts";
import { bookToMarkdown } from "../../src/story/book.ts";
import { BookAssembler } from "../../src/story/book-assembler.ts";
import { CHAPTER_JOB, type ChapterJobPayload } from "../../src/story/chapter-job.ts";
import { ChapterRecovery } from "../../src/story/chapter-recovery.ts";
import { PartsRepairer } from "../../src/story/chapter-repair.ts";
import { ChapterWriter, handleChapterJobs } from "../../src/story/chapter-writer.ts";
import { ChoicePresenter } from "../../src/story/choice-presenter.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import type { Audience } from "../../src/story/ports/audience.ts";
import { Preplanner } from "../../src/story/preplanner.ts";
import { StoryCommands } from "../../src/story/story-commands.ts";
import { StoryQueries } from "../../src/story/story-queries.ts";
import { FakeStoryAgent } from "../fakes/fake-story-agent.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { chapterLeftWriting } from "../helpers/interrupted-chapter.ts";
import { createTestQueue } from "../helpers/topology.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const conversation = { platform: "console", workspaceId: "local", id: "c1" };

let dir: string;
let database: TestDatabase;
let db: Db;
let queue: JobQueue;
let agent: FakeStoryAgent;
let surface: FakeSurface;
let stories: StoryCommands;
let queries: StoryQueries;
let writer: ChapterWriter;
/** Chapters the writer queued for a background repair of their parts. */
let queuedRepairs: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-story-"));
  database = await createTestDatabase(dir);
  db = await openDatabase(database.url);
  queue = await createTestQueue({ concurrency: 2 });
  agent = new FakeStoryAgent();
  surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 0 } });
  stories = new StoryCommands(db, queue);
  const audiences = (id: string): Audience | undefined => (id === "console:c1" ? { surface, locale: "en" } : undefined);
  const presenter = new ChoicePresenter(db, audiences);
  queries = new StoryQueries(db, presenter);
  queuedRepairs = [];
  writer = new ChapterWriter(
    db,
    agent,
    audiences,
    {
      methods: { open: "cot", continue: "react", rewrite: "reflexion" },
      recentChapters: 2,
      repairs: {
        enqueue: async (id) => {
          queuedRepairs.push(id);
        },
      },
    },
    presenter,
  );
  handleChapterJobs(queue, writer);
});

afterEach(async () => {
  await queue.close();
  await db.$disconnect();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function startStory() {
  const ticket = await stories.start({
    actor,
    conversation,
    premise: "A ghost detective in Shanghai",
    genre: "horror",
  });
  await ticket.job.finished;
  return ticket.storyId;
}

async function expectUserError(promise: Promise<unknown>, id: string) {
  await expect(promise).rejects.toSatisfy((e: unknown) => e instanceof UserFacingError && e.id === id);
}

describe("story commands and queries with real SQLite", () => {
  it("start writes chapter 1 as done with its text, choices, cast and agent runs", async () => {
    const storyId = await startStory();
    const state = await queries.state(storyId);
    expect(state.title).toBe("The Fake Tale");
    expect(state.head?.number).toBe(1);
    expect(state.head?.status).toBe("done");
    expect(state.head?.text).toContain("Chapter 1 text about A ghost detective");
    expect(state.choices).toEqual(["Go north 1", "Go south 1", "Wait 1"]);
    expect(await db.character.count({ where: { storyId } })).toBe(2);
    const runs = await db.agentRun.findMany({ where: { storyId } });
    expect(runs.map((r) => r.task).sort()).toEqual(["choices", "open"]);
    expect(runs.find((r) => r.task === "open")?.method).toBe("cot");
    expect(surface.visibleText()).toContain("Chapter 1 text about");
    expect(surface.callsOf("offerChoices")).toHaveLength(1);
  });

  it("choices shown again without a presenter still name their chapter (the rating row rates it)", async () => {
    const storyId = await startStory();
    const head = (await queries.state(storyId)).head;
    const withoutPresenter = new StoryQueries(db, { reoffer: async () => false });
    const ctx = { queries: withoutPresenter, surface, locale: "en" } as unknown as CommandContext;
    await showState(ctx, storyId, { text: false });
    expect(surface.callsOf("offerChoices").at(-1)?.offer.chapterId).toBe(head?.id);
  });

  it("a choice continues the story with that choice as the action and records it as the outcome", async () => {
    const storyId = await startStory();
    const { revision } = await queries.state(storyId);
    const ticket = await stories.choose(storyId, revision, 2);
    await ticket.job.finished;
    const state = await queries.state(storyId);
    expect(state.head?.number).toBe(2);
    expect(agent.inputs.at(-1)?.action).toBe("Go south 1");
    expect(agent.inputs.at(-1)?.method).toBe("react");
    expect(agent.inputs.at(-1)?.story.chapters.map((c) => c.number)).toEqual([1]);
    const ch1 = await db.chapter.findFirstOrThrow({
      where: { storyId, number: 1 },
      include: { runs: true, reactions: true },
    });
    expect(ch1.reactions.map((r) => [r.kind, r.data])).toEqual([["choice", { position: 2, label: "Go south 1" }]]);
    expect(ch1.runs.length).toBeGreaterThan(0);
  });

  it("the same choice sent twice writes one chapter: the second is refused as stale", async () => {
    const storyId = await startStory();
    const { revision } = await queries.state(storyId);
    const first = await stories.choose(storyId, revision, 1);
    await expectUserError(stories.choose(storyId, revision, 1), "error.stale");
    await first.job.finished;
    expect(await db.chapter.count({ where: { storyId, number: 2 } })).toBe(1);
  });

  it("a choice out of range, an empty or overlong action change nothing", async () => {
    const storyId = await startStory();
    const before = await queries.state(storyId);
    await expectUserError(stories.choose(storyId, before.revision, 4), "error.choiceOutOfRange");
    await expectUserError(stories.act(storyId, before.revision, "   "), "error.emptyAction");
    await expectUserError(stories.act(storyId, before.revision, "x".repeat(501)), "error.actionTooLong");
    const after = await queries.state(storyId);
    expect(after.revision).toBe(before.revision);
    expect(await db.chapter.count({ where: { storyId } })).toBe(1);
  });

  it("empty and 10,000-character scenarios are refused and create nothing", async () => {
    await expectUserError(stories.start({ actor, conversation, premise: " ", genre: "none" }), "error.emptyScenario");
    await expectUserError(
      stories.start({ actor, conversation, premise: "a".repeat(10_000), genre: "none" }),
      "error.scenarioTooLong",
    );
    expect(await db.story.count()).toBe(0);
  });

  it("commands are refused while a chapter is being written", async () => {
    const storyId = await startStory();
    const { revision } = await queries.state(storyId);
    agent.hold();
    const ticket = await stories.act(storyId, revision, "I open the door");
    await expectUserError(stories.undo(storyId), "error.busy");
    await expectUserError(stories.rewrite(storyId, "darker"), "error.busy");
    agent.release();
    await ticket.job.finished;
    expect((await queries.state(storyId)).head?.number).toBe(2);
  });

  it("undo at chapter 1 is refused; undo later moves the head back and keeps the undone chapter", async () => {
    const storyId = await startStory();
    await expectUserError(stories.undo(storyId), "error.undoFirst");
    const s1 = await queries.state(storyId);
    await (await stories.act(storyId, s1.revision, "I run")).job.finished;
    expect(await stories.undo(storyId)).toBe(1);
    const s2 = await queries.state(storyId);
    expect(s2.head?.number).toBe(1);
    expect(s2.choices).toHaveLength(3);
    const undone = await db.chapter.findFirstOrThrow({ where: { storyId, number: 2 }, include: { reactions: true } });
    expect(undone.status).toBe("done");
    expect(undone.reactions.map((r) => r.kind)).toEqual(["undo"]);
  });

  it("rewrite writes a sibling with the direction and keeps the original as a branch", async () => {
    const storyId = await startStory();
    const s1 = await queries.state(storyId);
    await (await stories.act(storyId, s1.revision, "I run")).job.finished;
    const original = await queries.state(storyId);
    const ticket = await stories.rewrite(storyId, "make the ending happier");
    await ticket.job.finished;
    const input = agent.inputs.at(-1);
    expect(input?.task).toBe("rewrite");
    expect(input?.direction).toBe("make the ending happier");
    expect(input?.replacing?.text).toBe(original.head?.text);
    expect(input?.action).toBe("I run");
    const now = await queries.state(storyId);
    expect(now.head?.number).toBe(2);
    expect(now.head?.id).not.toBe(original.head?.id);
    expect(await db.chapter.count({ where: { storyId, number: 2 } })).toBe(2);
    const replaced = await db.reaction.findMany({ where: { chapterId: original.head?.id ?? "" } });
    expect(replaced.map((r) => [r.kind, (r.data as { direction?: string }).direction])).toEqual([
      ["rewrite", "make the ending happier"],
    ]);
    await expectUserError(stories.rewrite(storyId, "x".repeat(301)), "error.directionTooLong");
  });

  it("branch continues from an earlier chapter; the next chapter is its child and memory excludes the old branch", async () => {
    const storyId = await startStory();
    for (const action of ["I run", "I hide"]) {
      const s = await queries.state(storyId);
      await (await stories.act(storyId, s.revision, action)).job.finished;
    }
    await expectUserError(stories.branch(storyId, 9), "error.branchRange");
    await expectUserError(stories.branch(storyId, 3), "error.branchSame");
    await stories.branch(storyId, 1);
    const s = await queries.state(storyId);
    expect(s.head?.number).toBe(1);
    await (await stories.act(storyId, s.revision, "I fly")).job.finished;
    const input = agent.inputs.at(-1);
    expect(input?.story.chapters.map((c) => c.action)).toEqual([""]);
    const recap = await queries.recap(storyId);
    expect(recap.chapters.map((c) => c.summary)).toEqual([
      "Summary of chapter 1: A ghost detective in Shanghai",
      "Summary of chapter 2: I fly",
    ]);
    const markdown = bookToMarkdown(
      await new BookAssembler(db, new ImageStore(join(dir, "images"))).exportBook(storyId, "en"),
    );
    expect(markdown).toContain("I fly");
    expect(markdown).not.toContain("I hide");
  });

  it("a stream cut mid-chapter leaves the chapter failed without its text; retry writes it", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    agent.failNext("cut", "Half a sentence");
    await (await stories.act(storyId, s.revision, "I jump")).job.finished;
    const failed = await queries.state(storyId);
    expect(failed.head?.status).toBe("failed");
    expect(failed.head?.text).toBe("");
    expect(failed.choices).toEqual([]);
    expect(surface.notices.at(-1)).toContain("broke mid-chapter");
    expect(surface.notices.at(-1)).toContain("/retry");
    await expectUserError(stories.act(storyId, failed.revision, "again"), "error.noChoices");
    await (await stories.retry(storyId)).job.finished;
    const retried = await queries.state(storyId);
    expect(retried.head?.status).toBe("done");
    expect(retried.head?.id).toBe(failed.head?.id);
    await expectUserError(stories.retry(storyId), "error.notFailed");
  });

  it("a display failure mid-stream still saves the finished chapter", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    surface.failNextPost();
    surface.failNextPost();
    await (await stories.act(storyId, s.revision, "I shout")).job.finished;
    const state = await queries.state(storyId);
    expect(state.head?.status).toBe("done");
    expect(state.head?.text).toContain("I shout");
    expect(state.choices).toHaveLength(3);
  });

  it("a chapter that cannot be saved is marked failed, not left writing, and the reader is told", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    agent.corruptNext();
    const outcome = await (await stories.act(storyId, s.revision, "I run")).job.finished;
    expect(outcome.ok).toBe(false);
    const state = await queries.state(storyId);
    expect(state.head?.status).toBe("failed");
    expect(surface.notices.at(-1)).toContain("Something went wrong on our side");
    // Told once: the job's failed hook finds the chapter failed already.
    expect(surface.callsOf("failed")).toHaveLength(1);
    await (await stories.retry(storyId)).job.finished;
    expect((await queries.state(storyId)).head?.status).toBe("done");
  });

  it("after a crash, a chapter left writing resumes on its own in the messages it had shown, choices once", async () => {
    const storyId = await startStory();
    // The process died mid-chapter: the chapter was claimed and had shown its first words.
    const interrupted = await chapterLeftWriting(db, surface, storyId, "I wait");

    expect(await new ChapterRecovery(db, queue).resumeInterrupted()).toBe(1);
    await queue.onIdle();

    // Continued in the same message: no new post, the whole chapter shown, choices offered once.
    await interrupted.expectContinuedInPlace(agent);
  });

  it("readers are told the chapter is still being written once the model's retries waited 3 s", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    agent.waitNext(1000, 1500);
    await (await stories.act(storyId, s.revision, "I wait")).job.finished;
    expect(surface.notices.filter((n) => n.startsWith("Still writing"))).toEqual([]);
    const s2 = await queries.state(storyId);
    agent.waitNext(1000, 1500, 800, 2000);
    await (await stories.act(storyId, s2.revision, "I wait again")).job.finished;
    expect(surface.notices.filter((n) => n.startsWith("Still writing"))).toHaveLength(1);
  });

  it("a chapter whose parts failed is kept with a Continue choice, then repaired in the background", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    agent.failPartsNext();
    const ticket = await stories.act(storyId, s.revision, "I wait");
    await ticket.job.finished;
    const row = await db.chapter.findUniqueOrThrow({ where: { id: ticket.chapterId } });
    expect(row.status).toBe("done");
    expect(row.needsRepair).toBe(true);
    expect(row.title).toBe("Chapter 2 text about I wait.");
    expect((await queries.state(storyId)).choices).toEqual(["Continue"]);
    expect(surface.calls.filter((c) => c.kind === "offerChoices").at(-1)?.offer.allowWriteIn).toBe(true);
    expect(queuedRepairs).toEqual([ticket.chapterId]);

    const repairer = new PartsRepairer(db, agent, queue, { method: "react", baseMs: 1 });
    await repairer.run({ chapterId: ticket.chapterId });
    const repaired = await db.chapter.findUniqueOrThrow({ where: { id: ticket.chapterId } });
    expect(repaired.needsRepair).toBe(false);
    expect(repaired.title).toBe("Repaired title 2");
    expect(repaired.summary).toBe("Repaired summary of chapter 2");
    // The choices the reader was offered stay.
    expect((await queries.state(storyId)).choices).toEqual(["Continue"]);
    // Twice is harmless.
    await repairer.run({ chapterId: ticket.chapterId });
    expect(agent.repaired).toEqual([2]);
    expect(await repairer.recover()).toBe(0);
  });

  it("a chapter job delivered twice writes the chapter once", async () => {
    const storyId = await startStory();
    const s = await queries.state(storyId);
    const ticket = await stories.act(storyId, s.revision, "I knock");
    await ticket.job.finished;
    await writer.run({ chapterId: ticket.chapterId });
    expect(agent.inputs).toHaveLength(2);
    expect(await db.choice.count({ where: { chapterId: ticket.chapterId } })).toBe(3);
    expect(await db.agentRun.count({ where: { chapterId: ticket.chapterId } })).toBe(2);
  });

  it("old chapters are folded into a rolling summary stored on the branch", async () => {
    const storyId = await startStory();
    for (let i = 0; i < 8; i++) {
      const s = await queries.state(storyId);
      await (await stories.act(storyId, s.revision, `step ${i}`)).job.finished;
    }
    expect(agent.summaries.length).toBeGreaterThan(0);
    const folded = await db.chapter.findMany({ where: { storyId, rollingSummary: { not: "" } } });
    expect(folded.length).toBeGreaterThan(0);
    const last = agent.inputs.at(-1);
    expect(last?.story.summary).toMatch(/^Rolling summary up to \d+$/);
  });

  it("lists the stories of this conversation only, with their current chapter", async () => {
    const storyId = await startStory();
    const list = await queries.list(conversation);
    expect(list).toEqual([expect.objectContaining({ storyId, title: "The Fake Tale", chapter: 1 })]);
    expect(await queries.list({ ...conversation, id: "another-chat" })).toEqual([]);
  });
});

describe("planning ahead (PREPLAN)", () => {
  let planQueue: JobQueue;
  let planned: StoryCommands;
  let preplanner: Preplanner;

  beforeEach(async () => {
    planQueue = await createTestQueue({ concurrency: 2 });
    preplanner = new Preplanner(db, agent, { method: "react", concurrency: 2 });
    const moderator = {
      check: async (text: string) => {
        if (text.includes("forbidden")) throw new UserFacingError("error.moderated", { reason: "no" });
      },
    };
    planned = new StoryCommands(db, planQueue, moderator, preplanner);
    const audiences = () => ({ surface, locale: "en" as const });
    const planningWriter = new ChapterWriter(
      db,
      agent,
      audiences,
      { methods: { open: "cot", continue: "react", rewrite: "reflexion" }, recentChapters: 2, preplanner },
      new ChoicePresenter(db, audiences, { preplanner }),
    );
    planQueue.handle<ChapterJobPayload>(CHAPTER_JOB, (p) => planningWriter.run(p));
  });
  afterEach(async () => {
    await preplanner.close();
    await planQueue.close();
  });

  async function offered(): Promise<string> {
    const ticket = await planned.start({
      actor,
      conversation,
      premise: "A ghost detective in Shanghai",
      genre: "none",
    });
    await ticket.job.finished;
    // The offer starts one plan per choice.
    for (let i = 0; i < 100 && agent.planned.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    return ticket.storyId;
  }

  it("plans every offered choice; the chosen one's plan is used, the others are recorded as unused runs", async () => {
    const storyId = await offered();
    expect(agent.planned.map((i) => i.action)).toEqual(["Go north 1", "Go south 1", "Wait 1"]);
    expect(agent.planned.every((i) => i.method === "react" && i.chapterNumber === 2)).toBe(true);
    const s = await queries.state(storyId);
    await (await planned.choose(storyId, s.revision, 2)).job.finished;
    expect(agent.inputs.at(-1)?.action).toBe("Go south 1");
    expect(agent.writeOptions.at(-1)?.plan).toBeDefined();
    await preplanner.close();
    const unused = await db.agentRun.findMany({ where: { storyId, status: "unused" } });
    expect(unused.map((r) => (r.messages as { content: string }[])[1]?.content).sort()).toEqual([
      "Go north 1",
      "Wait 1",
    ]);
  });

  it("a typed action refused by moderation leaves no plan behind; the choices' plans stay", async () => {
    const storyId = await offered();
    const s = await queries.state(storyId);
    await expectUserError(planned.act(storyId, s.revision, "something forbidden"), "error.moderated");
    expect(agent.planned.map((i) => i.action)).toContain("something forbidden");
    expect(preplanner.pending).toBe(3);
    await (await planned.choose(storyId, s.revision, 1)).job.finished;
    expect(agent.writeOptions.at(-1)?.plan).toBeDefined();
  });

  it("chapters whose summary was folded are planned from the folded summary, so their plans are used", async () => {
    agent.summarizeDelayMs = 50;
    const storyId = await offered();
    for (let n = 2; n <= 9; n++) {
      const s = await queries.state(storyId);
      await (await planned.choose(storyId, s.revision, 1)).job.finished;
      expect(agent.writeOptions.at(-1)?.plan, `chapter ${n}`).toBeDefined();
      const want = agent.planned.length + 3;
      for (let i = 0; i < 100 && agent.planned.length < want; i++) await new Promise((r) => setTimeout(r, 5));
    }
    // Folds happened along the way (two chapters are kept verbatim).
    expect(agent.summaries.length).toBeGreaterThan(0);
  });

  it("showing the same choices again keeps their plans; a story beyond maxStories loses its plans first", async () => {
    const storyId = await offered();
    await preplanner.planChoices(storyId);
    expect(agent.planned).toHaveLength(3);

    const small = new Preplanner(db, agent, { method: "react", concurrency: 2, maxStories: 1 });
    const headId = (await db.story.findUniqueOrThrow({ where: { id: storyId } })).headChapterId;
    const first = agent.planned[0];
    if (first === undefined) throw new Error("no plan input");
    await small.planChoices(storyId);
    expect(small.pending).toBe(3);
    await small.planChoices(await offered());
    // Only the newest story keeps its plans; the older one's were cancelled.
    expect(small.pending).toBe(3);
    expect(await small.take(storyId, headId, first)).toBeUndefined();
    // While a story within the limit gets its plan.
    await small.planChoices(storyId);
    expect(await small.take(storyId, headId, first)).toBeDefined();
    await small.close();
  });

  it("a typed action is planned the moment it arrives; a plan is discarded when the story changed under it", async () => {
    const storyId = await offered();
    const s = await queries.state(storyId);
    await (await planned.act(storyId, s.revision, "I sing")).job.finished;
    expect(agent.planned.map((i) => i.action)).toContain("I sing");
    expect(agent.writeOptions.at(-1)?.plan).toBeDefined();

    for (let i = 0; i < 100 && agent.planned.length < 6; i++) await new Promise((r) => setTimeout(r, 5));
    // A character's look changed after the plans were made: the chapter's input differs.
    await db.character.updateMany({ where: { storyId }, data: { appearance: "a green hat" } });
    const s2 = await queries.state(storyId);
    await (await planned.choose(storyId, s2.revision, 1)).job.finished;
    expect(agent.writeOptions.at(-1)?.plan).toBeUndefined();
  });
});

describe("saving a chapter", () => {
  it("a database hiccup while saving a finished chapter is tried again: the chapter is not lost", async () => {
    let failures = 1;
    const flaky = new Proxy(db, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== "$transaction") return value;
        return (...args: unknown[]) => {
          if (Array.isArray(args[0]) && failures > 0) {
            failures--;
            return Promise.reject(new Error("SQLITE_BUSY: database is locked"));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const logs: string[] = [];
    const flakyQueue = await createTestQueue({ concurrency: 1 });
    const flakyStories = new StoryCommands(db, flakyQueue);
    const audiences = () => ({ surface, locale: "en" as const });
    const flakyWriter = new ChapterWriter(
      flaky,
      agent,
      audiences,
      {
        methods: { open: "cot", continue: "react", rewrite: "reflexion" },
        recentChapters: 2,
        log: (m) => logs.push(m),
      },
      new ChoicePresenter(flaky, audiences),
    );
    flakyQueue.handle<ChapterJobPayload>(CHAPTER_JOB, (p) => flakyWriter.run(p));
    try {
      const ticket = await flakyStories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
      await ticket.job.finished;
      expect((await queries.state(ticket.storyId)).head?.status).toBe("done");
      expect(failures).toBe(0);
      expect(logs.some((l) => l.includes("saving failed once, trying again"))).toBe(true);
    } finally {
      await flakyQueue.close();
    }
  });
});

describe("a chapter job given up for good", () => {
  it("retries spent (the database unreachable at every claim): the chapter is marked failed, not left pending, and Retry writes it", async () => {
    let unreachable = true;
    const claims: unknown[] = [];
    // The claim (-> writing) fails as a database that does not answer would; everything else works.
    const chapters = new Proxy(db.chapter, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== "update") return value;
        return (args: { data?: { status?: string } }) => {
          if (unreachable && args.data?.status === "writing") {
            claims.push(args);
            return Promise.reject(new Error("SQLITE_BUSY: database is locked"));
          }
          return (value as (a: unknown) => unknown).call(target, args);
        };
      },
    });
    const flaky = new Proxy(db, {
      get: (target, prop, receiver) => (prop === "chapter" ? chapters : Reflect.get(target, prop, receiver)),
    });
    const logs: string[] = [];
    const flakyQueue = new InProcessJobQueue({ concurrency: 1, retry: { attempts: 2, baseMs: 10, capMs: 20 } });
    const flakyStories = new StoryCommands(db, flakyQueue);
    const audiences = () => ({ surface, locale: "en" as const });
    const flakyWriter = new ChapterWriter(
      flaky,
      agent,
      audiences,
      {
        methods: { open: "cot", continue: "react", rewrite: "reflexion" },
        recentChapters: 2,
        log: (m) => logs.push(m),
      },
      new ChoicePresenter(db, audiences),
    );
    handleChapterJobs(flakyQueue, flakyWriter, (handler) => retryOn(isTransientDbError, handler));
    try {
      const ticket = await flakyStories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
      const outcome = await ticket.job.finished;
      expect(outcome.ok ? "" : String(outcome.error)).toContain("database is locked");
      expect(claims).toHaveLength(2);
      expect(await db.chapter.findUniqueOrThrow({ where: { id: ticket.chapterId } })).toMatchObject({
        status: "failed",
        error: "internal",
      });
      expect(surface.callsOf("failed")).toEqual([
        expect.objectContaining({ storyId: ticket.storyId, text: expect.stringContaining("/retry") }),
      ]);
      expect(logs.some((l) => l.includes("its job was given up (SQLITE_BUSY: database is locked)"))).toBe(true);

      unreachable = false;
      await expect((await flakyStories.retry(ticket.storyId)).job.finished).resolves.toEqual({ ok: true });
      expect((await queries.state(ticket.storyId)).head).toMatchObject({ id: ticket.chapterId, status: "done" });
    } finally {
      await flakyQueue.close();
    }
  });

  it("the failed hook leaves alone a chapter that was saved, and one its story has moved past; it tells readers once", async () => {
    const storyId = await startStory();
    const done = await queries.state(storyId);
    await writer.abandon({ chapterId: done.head?.id ?? "", revision: done.revision }, "stalled");
    expect((await queries.state(storyId)).head?.status).toBe("done");

    const { chapterId } = await chapterLeftWriting(db, surface, storyId, "I wait");
    const { revision } = await db.story.findUniqueOrThrow({ where: { id: storyId } });
    // A job queued at an earlier revision does not own the chapter written now.
    await writer.abandon({ chapterId, revision: revision - 1 }, "stalled");
    expect((await db.chapter.findUniqueOrThrow({ where: { id: chapterId } })).status).toBe("writing");
    expect(surface.callsOf("failed")).toEqual([]);

    await writer.abandon({ chapterId, revision }, "stalled");
    await writer.abandon({ chapterId, revision }, "stalled");
    expect(await db.chapter.findUniqueOrThrow({ where: { id: chapterId } })).toMatchObject({
      status: "failed",
      error: "internal",
      progress: null,
    });
    expect(surface.callsOf("failed")).toHaveLength(1);
  });
});

describe("shutting down", () => {
  it("a chapter stopped when the queue's grace is over stays resumable, and the next start completes it", async () => {
    const first = await createTestQueue({ concurrency: 1 });
    const firstStories = new StoryCommands(db, first);
    const audiences = () => ({ surface, locale: "en" as const });
    const writerOf = (log?: (m: string) => void) =>
      new ChapterWriter(
        db,
        agent,
        audiences,
        {
          methods: { open: "cot", continue: "react", rewrite: "reflexion" },
          recentChapters: 2,
          ...(log === undefined ? {} : { log }),
        },
        new ChoicePresenter(db, audiences),
      );
    const logs: string[] = [];
    const stopping = writerOf((m) => logs.push(m));
    first.handle<ChapterJobPayload>(CHAPTER_JOB, (p, job) => stopping.run(p, job.signal));
    agent.hold();
    const ticket = await firstStories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
    for (let i = 0; i < 100 && agent.inputs.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const closing = first.close({ graceMs: 10 });
    await new Promise((r) => setTimeout(r, 30));
    agent.release();
    await closing;
    expect((await db.chapter.findUniqueOrThrow({ where: { id: ticket.chapterId } })).status).toBe("writing");
    expect(logs.some((l) => l.includes("stopped for shutdown"))).toBe(true);
    expect(surface.calls.filter((c) => c.kind === "failed")).toEqual([]);

    // The next start.
    const second = await createTestQueue({ concurrency: 1 });
    const resuming = writerOf();
    second.handle<ChapterJobPayload>(CHAPTER_JOB, (p, job) => resuming.run(p, job.signal));
    expect(await new ChapterRecovery(db, second).resumeInterrupted()).toBe(1);
    await second.onIdle();
    expect((await db.chapter.findUniqueOrThrow({ where: { id: ticket.chapterId } })).status).toBe("done");
    await second.close();
  });
});
