import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JobQueue } from "../../src/jobs/job-queue.ts";
import { closedOfferText } from "../../src/render/offer-layout.ts";
import type { ChoiceOffer, MessageRef } from "../../src/render/surface.ts";
import { type Db, openDatabase } from "../../src/store/db.ts";
import {
  BALLOT_CLOSE_JOB,
  type BallotClosePayload,
  BallotService,
  ballotCloseKey,
} from "../../src/story/ballot-service.ts";
import { CHAPTER_JOB, type ChapterJobPayload } from "../../src/story/chapter-job.ts";
import { ChapterWriter } from "../../src/story/chapter-writer.ts";
import { ChoicePresenter } from "../../src/story/choice-presenter.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import type { Actor } from "../../src/story/identity.ts";
import type { Audience } from "../../src/story/ports/audience.ts";
import { StoryCommands } from "../../src/story/story-commands.ts";
import { StoryQueries } from "../../src/story/story-queries.ts";
import { FakeStoryAgent } from "../fakes/fake-story-agent.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestQueue } from "../helpers/topology.ts";

const starter: Actor = { platform: "telegram", id: "100", name: "Ann" };
const bea: Actor = { platform: "telegram", id: "101", name: "Bea" };
const cal: Actor = { platform: "telegram", id: "102", name: "Cal" };
const conversation = { platform: "telegram", workspaceId: "-500", id: "-500" };

let dir: string;
let database: TestDatabase;
let db: Db;
let queue: JobQueue;
let agent: FakeStoryAgent;
let surface: FakeSurface;
let stories: StoryCommands;
let queries: StoryQueries;
let ballots: BallotService;
let writer: ChapterWriter;
let draws: number[];
/** Actions the ballots asked to plan ahead (write-ins). */
let plannedAhead: string[];

/** The live-count interval of the test that times it. */
const INTERVAL = 1000;

function setup(windowSeconds: number, closeWhenPreviousVotersReturn = false, liveCountIntervalMs?: number) {
  const audience: Audience = { surface, locale: "en", voting: { windowSeconds, closeWhenPreviousVotersReturn } };
  ballots = new BallotService(db, queue, stories, () => audience, {
    firstVoteGraceMs: 150,
    ...(liveCountIntervalMs === undefined ? {} : { liveCountIntervalMs }),
    random: () => draws.shift() ?? 0,
    preplanner: {
      planAction: async (_storyId, action) => {
        plannedAhead.push(action);
      },
    },
  });
  const presenter = new ChoicePresenter(db, () => audience, {}, ballots);
  queries = new StoryQueries(db, presenter);
  writer = new ChapterWriter(
    db,
    agent,
    () => audience,
    { methods: { open: "cot", continue: "cot", rewrite: "cot" }, recentChapters: 2 },
    presenter,
  );
  queue.handle<ChapterJobPayload>(CHAPTER_JOB, (p) => writer.run(p));
  queue.handle<BallotClosePayload>(BALLOT_CLOSE_JOB, (p) => ballots.closeOnTime(p));
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-ballot-"));
  database = await createTestDatabase(dir);
  db = await openDatabase(database.url);
  queue = await createTestQueue();
  agent = new FakeStoryAgent();
  surface = new FakeSurface({ limits: { maxMessageLength: 4096, minEditIntervalMs: 0 } });
  stories = new StoryCommands(db, queue);
  draws = [];
  plannedAhead = [];
});

afterEach(async () => {
  await queue.close();
  await db.$disconnect();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function startStory(): Promise<{ storyId: string; revision: number }> {
  const ticket = await stories.start({
    actor: starter,
    conversation,
    premise: "A heist on a night train",
    genre: "none",
  });
  await ticket.job.finished;
  const { revision } = await queries.state(ticket.storyId);
  return { storyId: ticket.storyId, revision };
}

const until = async (check: () => Promise<boolean>, ms = 5000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
};

async function expectError(promise: Promise<unknown>, id: string) {
  await expect(promise).rejects.toSatisfy((e: unknown) => e instanceof UserFacingError && e.id === id);
}

describe("ballots in a voting conversation", () => {
  it("offers the choices as a vote with zero counts and a deadline", async () => {
    setup(60);
    await startStory();
    const offer = surface.callsOf("offerChoices").at(-1);
    expect(offer?.kind === "offerChoices" && offer.offer.mode).toBe("vote");
    expect(offer?.kind === "offerChoices" && offer.offer.counts).toEqual([0, 0, 0]);
    expect(await db.ballot.count({ where: { status: "open" } })).toBe(1);
  });

  it("three members vote, one changes their mind; the window closes and the winner's chapter follows", async () => {
    setup(1);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, starter);
    await ballots.vote(storyId, revision, 2, bea);
    await ballots.vote(storyId, revision, 1, cal);
    const tally = await ballots.vote(storyId, revision, 2, cal);
    expect(tally.counts).toEqual([1, 2, 0]);
    await until(async () => (await queries.state(storyId)).head?.number === 2);
    await until(async () => (await queries.state(storyId)).head?.status === "done");
    expect(agent.inputs.at(-1)?.action).toBe("Go south 1");
    // The result is announced in the ballot's closing edit, not in a notice of its own.
    const closed = surface.callsOf("closeChoices").at(-1);
    expect(closed?.kind === "closeChoices" && closed.result.chosen).toBe(2);
    expect(closed?.kind === "closeChoices" && closedOfferText(closed.offer, closed.result, "en")).toMatch(
      /^The readers chose: “Go south 1” \(2 of 3 votes\)\.\n/,
    );
    expect(surface.notices.filter((n) => n.includes("readers chose"))).toEqual([]);
    const reaction = await db.reaction.findFirstOrThrow({ where: { kind: "vote" } });
    expect(reaction.data).toMatchObject({ position: 2, counts: [1, 2, 0], turnout: 3, tieBroken: false });
  });

  it("a write-in joins the ballot, is planned ahead while the vote is open, and can win", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    const tally = await ballots.writeIn(storyId, revision, "Pull the emergency brake", bea);
    expect(tally.labels).toEqual(["Go north 1", "Go south 1", "Wait 1", "Pull the emergency brake"]);
    expect(plannedAhead).toEqual(["Pull the emergency brake"]);
    await ballots.vote(storyId, revision, 4, cal);
    await expectError(ballots.writeIn(storyId, revision, "pull the emergency brake", cal), "error.writeInDuplicate");
    await expectError(ballots.writeIn(storyId, revision, "x".repeat(81), cal), "error.writeInTooLong");
    const { ticket } = await ballots.closeEarly(storyId, revision, starter, false);
    await ticket.job.finished;
    expect(agent.inputs.at(-1)?.action).toBe("Pull the emergency brake");
  });

  it("only the starter or a moderator may close early, and not before anyone voted", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await expectError(ballots.closeEarly(storyId, revision, starter, false), "error.noVotesYet");
    await ballots.vote(storyId, revision, 3, bea);
    await expectError(ballots.closeEarly(storyId, revision, bea, false), "error.notStarter");
    const { result, ticket } = await ballots.closeEarly(storyId, revision, cal, true);
    expect(result.label).toBe("Wait 1");
    await ticket.job.finished;
    await expectError(ballots.vote(storyId, revision, 1, bea), "error.voteClosed");
  });

  it("a window that ends with no vote keeps the ballot open until shortly after the first vote", async () => {
    setup(1);
    const { storyId, revision } = await startStory();
    await until(async () => (await db.ballot.findFirstOrThrow()).closesAt === null);
    expect((await db.ballot.findFirstOrThrow()).status).toBe("open");
    await ballots.vote(storyId, revision, 3, bea);
    await until(async () => (await db.ballot.findFirstOrThrow()).status === "closed");
    await until(async () => (await queries.state(storyId)).head?.number === 2);
    await until(async () => agent.inputs.length === 2);
    expect(agent.inputs.at(-1)?.action).toBe("Wait 1");
  });

  it("a tie is broken at random and announced", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, bea);
    await ballots.vote(storyId, revision, 3, cal);
    draws.push(0.99);
    const { result, ticket } = await ballots.closeEarly(storyId, revision, starter, false);
    await ticket.job.finished;
    expect(result.tiedWith).toEqual([1, 3]);
    expect(result.label).toBe("Wait 1");
    const closed = surface.callsOf("closeChoices").at(-1);
    expect(closed?.kind === "closeChoices" && closedOfferText(closed.offer, closed.result, "en")).toMatch(
      /^Tie between “Go north 1”, “Wait 1”: chance picked “Wait 1”\.\n/,
    );
    expect(surface.notices.filter((n) => n.startsWith("Tie between"))).toEqual([]);
  });

  it("live counts are drawn in one trailing edit per interval, never twice the same, never over the result", async () => {
    // An interval long enough for a few votes on a busy machine; the waits below outlast it.
    setup(60, false, INTERVAL);
    const { storyId, revision } = await startStory();
    const updates = () => surface.callsOf("updateChoices");
    await ballots.vote(storyId, revision, 1, starter);
    await ballots.vote(storyId, revision, 2, bea);
    await ballots.vote(storyId, revision, 2, cal);
    // Three votes, no edit yet: one trailing edit shows all of them.
    expect(updates()).toHaveLength(0);
    await until(async () => updates().length === 1);
    await new Promise((r) => setTimeout(r, INTERVAL + 300));
    expect(updates()).toHaveLength(1);
    const shown = updates()[0];
    expect(shown?.kind === "updateChoices" && shown.offer.counts).toEqual([1, 2, 0]);

    // A caller that draws the count in its answer gets it back; the trailing edit has nothing to do.
    const drawn = await ballots.vote(storyId, revision, 3, cal, { callerDraws: true });
    expect(drawn.redraw?.offer.counts).toEqual([1, 1, 1]);
    expect(drawn.redraw?.ref.id).toBe(
      (surface.callsOf("offerChoices").at(-1) as { ref?: { id: string } } | undefined)?.ref?.id,
    );
    await new Promise((r) => setTimeout(r, INTERVAL + 300));
    expect(updates()).toHaveLength(1);

    // Another vote without the caller drawing it: edited again, with the latest counts.
    await ballots.vote(storyId, revision, 3, bea);
    await until(async () => updates().length === 2);
    const latest = updates()[1];
    expect(latest?.kind === "updateChoices" && latest.offer.counts).toEqual([1, 0, 2]);

    // Closed by a caller that draws the result: no closing edit and no notice from the ballot.
    await ballots.vote(storyId, revision, 1, bea);
    const closed = await ballots.closeEarly(storyId, revision, starter, false, { callerDraws: true });
    expect(closed.redraw?.result?.chosen).toBe(1);
    expect(closed.redraw?.offer.counts).toEqual([2, 0, 1]);
    await closed.ticket.job.finished;
    await new Promise((r) => setTimeout(r, INTERVAL + 300));
    // The vote just before the close never got its trailing edit: the result is what shows.
    expect(updates()).toHaveLength(2);
    expect(surface.callsOf("closeChoices")).toHaveLength(0);
    expect(surface.notices.filter((n) => n.includes("readers chose"))).toEqual([]);
  });

  it("a live-count edit that lands after the ballot closed is drawn over with the result", async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = new (class extends FakeSurface {
      override async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
        await gate;
        return super.updateChoices(ref, offer);
      }
    })({ limits: { maxMessageLength: 4096, minEditIntervalMs: 0 } });
    surface = slow;
    setup(60, false, 50);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 2, bea);
    // The trailing edit read the open ballot and is on its way...
    await new Promise((r) => setTimeout(r, 200));
    // ...when the starter closes the vote, drawing the result in their own answer.
    const { ticket } = await ballots.closeEarly(storyId, revision, starter, false, { callerDraws: true });
    release();
    await ticket.job.finished;
    await until(async () => slow.callsOf("closeChoices").length === 1);
    const order = slow.calls.filter((c) => c.kind === "updateChoices" || c.kind === "closeChoices").map((c) => c.kind);
    expect(order).toEqual(["updateChoices", "closeChoices"]);
    const closed = slow.callsOf("closeChoices")[0];
    expect(closed?.kind === "closeChoices" && closed.result).toMatchObject({ chosen: 2, counts: [0, 1, 0] });
  });

  it("a vote that closes the ballot (everyone voted again) returns the result for the caller to draw", async () => {
    setup(60, true, 200);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, bea);
    const { ticket } = await ballots.closeEarly(storyId, revision, starter, false);
    await ticket.job.finished;
    const next = (await queries.state(storyId)).revision;
    const last = await ballots.vote(storyId, next, 2, bea, { callerDraws: true });
    expect(last.redraw?.result).toMatchObject({ chosen: 2, counts: [0, 1, 0] });
    await until(async () => (await queries.state(storyId)).head?.number === 3);
    // Only the first ballot, closed without a drawing caller, was closed by the ballot itself.
    expect(surface.callsOf("closeChoices")).toHaveLength(1);
  });

  it("a vote for another revision or a position off the ballot changes nothing", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await expectError(ballots.vote(storyId, revision + 1, 1, bea), "error.voteClosed");
    await expectError(ballots.vote(storyId, revision, 7, bea), "error.choiceOutOfRange");
    expect(await db.vote.count()).toBe(0);
  });

  it("closes early once everyone who voted last time has voted again (never on the first ballot)", async () => {
    setup(60, true);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, bea);
    await ballots.vote(storyId, revision, 2, cal);
    expect((await db.ballot.findFirstOrThrow()).status).toBe("open");
    const { ticket } = await ballots.closeEarly(storyId, revision, starter, false);
    await ticket.job.finished;
    const next = (await queries.state(storyId)).revision;
    await ballots.vote(storyId, next, 1, bea);
    expect(await db.ballot.count({ where: { status: "open" } })).toBe(1);
    await ballots.vote(storyId, next, 3, cal);
    await until(async () => (await queries.state(storyId)).head?.number === 3);
    // The head moves when chapter 3 is created; its writing starts a moment later.
    await until(async () => agent.inputs.length === 3);
    expect(agent.inputs.at(-1)?.action).toMatch(/^(Go north|Wait) 2$/);
  });

  it("after an undo the chapter's choices are put to a fresh vote", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 2, bea);
    const { ticket } = await ballots.closeEarly(storyId, revision, starter, false);
    await ticket.job.finished;
    await stories.undo(storyId);
    expect(await queries.offerChoicesAgain(storyId)).toBe(true);
    const open = await db.ballot.findMany({ where: { status: "open" } });
    expect(open).toHaveLength(1);
    expect(await db.vote.count({ where: { chapterId: open[0]?.chapterId ?? "" } })).toBe(0);
    const { revision: now } = await queries.state(storyId);
    const tally = await ballots.vote(storyId, now, 3, cal);
    expect(tally.counts).toEqual([0, 0, 1]);
  });

  it("after a restart, an open ballot's close is scheduled again from the database, and it still closes", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 2, bea);
    // The process stops: its in-process queue forgets the scheduled close.
    await queue.close();
    await db.ballot.updateMany({ data: { closesAt: new Date(Date.now() + 200) } });
    // A new process: a fresh queue and services over the same database.
    const next = await createTestQueue();
    try {
      const audience: Audience = { surface, locale: "en", voting: { windowSeconds: 60 } };
      const revived = new BallotService(db, next, new StoryCommands(db, next), () => audience);
      next.handle<BallotClosePayload>(BALLOT_CLOSE_JOB, (p) => revived.closeOnTime(p));
      next.handle<ChapterJobPayload>(CHAPTER_JOB, (p) => writer.run(p));
      expect(await revived.resume()).toBe(1);
      await until(async () => (await queries.state(storyId)).head?.number === 2);
    } finally {
      await next.close();
    }
  });

  it("closes through a delayed job keyed by ballot and closing time; a close run twice continues the story once", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, bea);
    const ballot = await db.ballot.findFirstOrThrow({ where: { status: "open" } });
    const closesAt = ballot.closesAt ?? new Date(0);
    // Summed over the queue's lanes (BullMQ keeps ballot closes in a lane of their own).
    expect((await queue.metrics()).reduce((sum, lane) => sum + lane.delayed, 0)).toBe(1);
    const payload = { ballotId: ballot.id, storyId, revision, closesAt: closesAt.getTime() };
    const again = await queue.enqueue(BALLOT_CLOSE_JOB, payload, { key: ballotCloseKey(ballot.id, closesAt) });
    expect(again.created).toBe(false);

    // The closing time has come, and the close is delivered twice at once.
    await db.ballot.update({ where: { id: ballot.id }, data: { closesAt: new Date(Date.now() - 1) } });
    const due = { ...payload, closesAt: Date.now() };
    await Promise.all([ballots.closeOnTime(due), ballots.closeOnTime(due)]);
    await queue.onIdle();
    expect((await queries.state(storyId)).head?.number).toBe(2);
    expect(await db.chapter.count({ where: { storyId } })).toBe(2);
    expect(await db.reaction.count({ where: { kind: "vote" } })).toBe(1);
  });

  it("a close scheduled for a closing time moved since does nothing; the later time's own job closes", async () => {
    setup(60);
    const { storyId, revision } = await startStory();
    await ballots.vote(storyId, revision, 1, bea);
    const ballot = await db.ballot.findFirstOrThrow({ where: { status: "open" } });
    const early = (ballot.closesAt ?? new Date()).getTime();
    await db.ballot.update({ where: { id: ballot.id }, data: { closesAt: new Date(early + 60_000) } });
    await ballots.closeOnTime({ ballotId: ballot.id, storyId, revision, closesAt: early });
    expect((await db.ballot.findUniqueOrThrow({ where: { id: ballot.id } })).status).toBe("open");
  });
});
