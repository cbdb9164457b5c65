import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { note } from "../../commands/note.ts";
import { status } from "../../commands/status.ts";
import type { CommandContext } from "../../commands/types.ts";
import { Prisma } from "../../src/generated/prisma/client.ts";
import type { JobQueue } from "../../src/jobs/job-queue.ts";
import { type Db, openDatabase } from "../../src/store/db.ts";
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

function setUp(preplanner?: Preplanner) {
  stories = new StoryCommands(db, queue, undefined, preplanner);
  const audiences = (id: string): Audience | undefined => (id === "console:c1" ? { surface, locale: "en" } : undefined);
  const presenter = new ChoicePresenter(db, audiences);
  queries = new StoryQueries(db, presenter);
  const writer = new ChapterWriter(
    db,
    agent,
    audiences,
    {
      methods: { open: "cot", continue: "react", rewrite: "reflexion" },
      recentChapters: 2,
      ...(preplanner === undefined ? {} : { preplanner }),
    },
    presenter,
  );
  handleChapterJobs(queue, writer);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-note-"));
  database = await createTestDatabase(dir);
  db = await openDatabase(database.url);
  queue = await createTestQueue({ concurrency: 2 });
  agent = new FakeStoryAgent();
  surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 0 } });
});

afterEach(async () => {
  await queue.close();
  await db.$disconnect();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function startStory(): Promise<string> {
  const ticket = await stories.start({
    actor,
    conversation,
    premise: "A ghost detective in Shanghai",
    genre: "horror",
  });
  await ticket.job.finished;
  return ticket.storyId;
}

async function choose(storyId: string, position = 1): Promise<void> {
  const { revision } = await queries.state(storyId);
  await (await stories.choose(storyId, revision, position)).job.finished;
}

/** A command context for the terminal's reader (who started the story) on `on`. */
function context(storyId: string, on: FakeSurface = surface): CommandContext {
  return {
    actor,
    moderator: false,
    conversation,
    locale: "en",
    surface: on,
    session: { storyId },
    stories,
    queries,
  } as unknown as CommandContext;
}

async function expectUserError(promise: Promise<unknown>, id: string) {
  await expect(promise).rejects.toSatisfy((e: unknown) => e instanceof UserFacingError && e.id === id);
}

describe("author's note: stored on the branch", () => {
  beforeEach(() => setUp());

  it("shapes every next chapter until cleared, and /note shows it", async () => {
    const storyId = await startStory();
    expect((await note.run(context(storyId), { direction: "more dialogue, slower pace" })).kind).toBe("done");
    expect(surface.notices.at(-1)).toContain("Author's note set: more dialogue, slower pace");
    await choose(storyId);
    await choose(storyId);
    expect(agent.inputs.slice(1).map((i) => i.authorNote)).toEqual([
      "more dialogue, slower pace",
      "more dialogue, slower pace",
    ]);
    await note.run(context(storyId), { direction: undefined });
    expect(surface.notices.at(-1)).toContain("Author's note: more dialogue, slower pace");
    await note.run(context(storyId), { direction: "clear" });
    expect(surface.notices.at(-1)).toBe("The author's note is cleared.");
    await choose(storyId);
    expect(agent.inputs.at(-1)?.authorNote).toBeUndefined();
    await note.run(context(storyId), { direction: undefined });
    expect(surface.notices.at(-1)).toContain("No author's note is set.");
  });

  it("undo and branch land on the note their chapter had; a rewrite keeps the note set before it", async () => {
    const storyId = await startStory();
    await choose(storyId); // chapter 2, no note
    await stories.setNote(storyId, "slower pace, more dread");
    await choose(storyId); // chapter 3 inherits it
    await stories.setNote(storyId, "a lighter touch");
    expect(await queries.note(storyId)).toBe("a lighter touch");
    await stories.undo(storyId); // back to chapter 2
    expect(await queries.note(storyId)).toBe("slower pace, more dread");
    await stories.branch(storyId, 1);
    expect(await queries.note(storyId)).toBe("");
    await choose(storyId, 2); // a new chapter 2 on another branch: no note
    expect(agent.inputs.at(-1)?.authorNote).toBeUndefined();
    await stories.setNote(storyId, "make it rain");
    await (await stories.rewrite(storyId, "")).job.finished;
    expect(agent.inputs.at(-1)).toMatchObject({ task: "rewrite", authorNote: "make it rain" });
  });

  it("a note set while an action is being committed is not lost: the action is refused as stale", async () => {
    const storyId = await startStory();
    // The moderator check runs between reading the head and committing the new chapter.
    const racing = new StoryCommands(db, queue, {
      check: async () => {
        await stories.setNote(storyId, "set in between");
      },
    });
    const { revision } = await queries.state(storyId);
    await expectUserError(racing.act(storyId, revision, "I open the door"), "error.stale");
    expect(await queries.note(storyId)).toBe("set in between");
    expect((await queries.state(storyId)).head?.number).toBe(1);
    // Asked again, the chapter carries the note.
    await (await stories.act(storyId, revision, "I open the door")).job.finished;
    expect(agent.inputs.at(-1)?.authorNote).toBe("set in between");
  });

  it("refuses a note too long, or in a shared chat from a reader who did not start the story; nothing changes", async () => {
    const storyId = await startStory();
    await stories.setNote(storyId, "keep it short");
    await expectUserError(stories.setNote(storyId, "x".repeat(301)), "note.tooLong");
    const stranger = { ...context(storyId), actor: { platform: "console", id: "u2", name: "Other" } } as CommandContext;
    await expectUserError(note.run(stranger, { direction: "all romance now" }), "error.notStarterCommand");
    expect(await queries.note(storyId)).toBe("keep it short");
  });

  it("a plan made ahead is used only when it was made with the note in effect", async () => {
    await queue.close();
    queue = await createTestQueue({ concurrency: 2 });
    const preplanner = new Preplanner(db, agent, { method: "react", concurrency: 2 });
    setUp(preplanner);
    const storyId = await startStory();
    await preplanner.planChoices(storyId);
    await stories.setNote(storyId, "more dialogue");
    await choose(storyId);
    expect(agent.inputs.at(-1)?.authorNote).toBe("more dialogue");
    expect(agent.writeOptions.at(-1)?.plan).toBeUndefined();
    // Planned with the note in effect: the plan is the chapter's.
    await preplanner.planChoices(storyId);
    await choose(storyId);
    expect(agent.inputs.at(-1)?.authorNote).toBe("more dialogue");
    expect(agent.writeOptions.at(-1)?.plan).toBeDefined();
    await preplanner.close();
  });
});

describe("story state: branch-local, from each chapter's parts", () => {
  beforeEach(() => setUp());

  it("merges each chapter's update into its branch's state and carries it to the next chapter", async () => {
    const storyId = await startStory();
    expect((await queries.status(storyId)).state).toEqual({
      relationships: [{ name: "Mei", value: 10, standing: "standing after chapter 1: A ghost detective in Shanghai" }],
      milestones: ["milestone 1"],
      arcProgress: 10,
    });
    await choose(storyId);
    // Chapter 2 was written from chapter 1's state.
    expect(agent.inputs.at(-1)?.story.state?.arcProgress).toBe(10);
    const after2 = await queries.status(storyId);
    expect(after2.chapter).toBe(2);
    expect(after2.state?.relationships).toEqual([
      { name: "Mei", value: 20, standing: "standing after chapter 2: Go north 1" },
    ]);
    expect(after2.state?.milestones).toEqual(["milestone 1", "milestone 2"]);
    expect(after2.state?.arcProgress).toBe(20);
  });

  it("undo, branch and rewrite read the state of the chapter they stand on", async () => {
    const storyId = await startStory();
    await choose(storyId);
    await choose(storyId);
    expect((await queries.status(storyId)).state?.milestones).toEqual(["milestone 1", "milestone 2", "milestone 3"]);
    await stories.undo(storyId);
    expect((await queries.status(storyId)).state?.milestones).toEqual(["milestone 1", "milestone 2"]);
    await stories.branch(storyId, 1);
    expect((await queries.status(storyId)).state?.arcProgress).toBe(10);
    await choose(storyId, 3);
    await (await stories.rewrite(storyId, "darker")).job.finished;
    // The rewrite of chapter 2 starts from chapter 1's state, not from the replaced chapter's.
    expect(agent.inputs.at(-1)?.story.state?.milestones).toEqual(["milestone 1"]);
    const now = (await queries.status(storyId)).state;
    expect(now?.milestones).toEqual(["milestone 1", "milestone 2"]);
    expect(now?.relationships[0]?.standing).toBe("standing after chapter 2: darker");
  });

  it("a chapter kept without its parts has no state of its own until its repair merges one", async () => {
    const storyId = await startStory();
    agent.failPartsNext();
    const { revision } = await queries.state(storyId);
    const ticket = await stories.choose(storyId, revision, 1);
    await ticket.job.finished;
    // The branch's state is still chapter 1's.
    expect((await queries.status(storyId)).state?.milestones).toEqual(["milestone 1"]);
    await new PartsRepairer(db, agent, queue, { method: "react", baseMs: 1 }).run({ chapterId: ticket.chapterId });
    const repaired = (await queries.status(storyId)).state;
    expect(repaired?.milestones).toEqual(["milestone 1", "repaired milestone 2"]);
    expect(repaired?.relationships.map((r) => r.name)).toEqual(["Mei"]);
    expect(repaired?.arcProgress).toBe(50);
  });

  it("/status: text bars, and a PNG chart only where pictures show in the chat", async () => {
    const storyId = await startStory();
    await choose(storyId);
    await status.run(context(storyId), {});
    const text = surface.notices.at(-1) ?? "";
    expect(text).toContain("Story state — The Fake Tale, after chapter 2");
    expect(text).toContain("Mei  ░░░░░░░░░░│██░░░░░░░░ +20  — standing after chapter 2: Go north 1");
    expect(text).toContain("✓ milestone 2");
    expect(text).toContain("Arc  ████░░░░░░░░░░░░░░░░ 20%");
    expect(surface.images).toHaveLength(1);
    expect(surface.images[0]?.mime).toBe("image/png");
    expect(
      Buffer.from(surface.images[0]?.bytes ?? [])
        .subarray(1, 4)
        .toString(),
    ).toBe("PNG");
    expect(surface.images[0]?.caption).toContain("Mei");

    const terminal = new FakeSurface({ showsImages: false });
    await status.run(context(storyId, terminal), {});
    expect(terminal.notices.at(-1)).toContain("Mei  ");
    expect(terminal.images).toHaveLength(0);
  });

  it("/status before any state says so", async () => {
    const storyId = await startStory();
    await db.chapter.updateMany({ where: { storyId }, data: { state: Prisma.DbNull } });
    await status.run(context(storyId), {});
    expect(surface.notices.at(-1)).toBe("No story state yet: it builds up as chapters are written.");
    expect(surface.images).toHaveLength(0);
  });
});
