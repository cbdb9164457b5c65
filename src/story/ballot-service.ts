/**
 * Votes on a chapter's choices, for conversations where members vote (group
 * chats, Discord threads). One ballot per chapter; one vote per member,
 * changeable; a write-in joins the ballot. A ballot closes when its window
 * ends, or early by its starter or a moderator. A window that ends with no vote
 * leaves the ballot open until 10 seconds after the first vote. Ties are broken
 * at random, and the result is announced in the ballot's closing edit. A ballot closes
 * on time through a delayed `ballot-close` job keyed by ballot and closing time, not an
 * in-memory timer: on a shared queue it outlives the process, and `resume()` schedules it
 * again from the database for a queue that forgot it (in-process, after a restart).
 *
 * Live counts are drawn by `LiveCounts` (one trailing edit per ballot and interval), or
 * by a caller that draws the returned `redraw` in its answer to the press
 * (`callerDraws`: Discord's update callback, outside the bot's request budget).
 */
import type { JobQueue } from "../jobs/job-queue.ts";
import { closedOfferText } from "../render/offer-layout.ts";
import type { ChoiceOffer, ChoiceResult, OfferRedraw } from "../render/surface.ts";
import type { Db } from "../store/db.ts";
import type { WriteTicket } from "./chapter-job.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, upsertUser } from "./identity.ts";
import { LIMITS } from "./limits.ts";
import { BALLOT_INCLUDE, ballotOffer, LiveCounts, type Tally, tallyOf } from "./live-counts.ts";
import type { Moderator } from "./moderation.ts";
import type { AudienceResolver } from "./ports/audience.ts";
import type { BallotOpener, BallotOpening, OpenedBallot } from "./ports/ballot-opener.ts";
import type { StoryCommands } from "./story-commands.ts";

export type { Tally } from "./live-counts.ts";

/** Most choices a ballot may hold, write-ins included (keyboards stay readable). */
export const MAX_BALLOT_CHOICES = 8;

export interface BallotOptions {
  /** How long a ballot stays open after its first vote when the window passed empty. */
  firstVoteGraceMs?: number;
  /** Checks write-ins when a moderation model is configured. */
  moderator?: Moderator;
  /** Tie-break draw, [0, 1). */
  random?: () => number;
  log?: (message: string) => void;
  /** Plans a write-in ahead while the vote is open (PREPLAN on). */
  preplanner?: { planAction(storyId: string, action: string): Promise<void> };
  /** Live counts are redrawn at most this often, in one trailing edit per ballot (default 3000 ms). */
  liveCountIntervalMs?: number;
}

/** Who draws what a vote or a close changed. */
export interface DrawOptions {
  /**
   * The caller draws the returned `redraw` in its answer to the press (Discord's update
   * callback), and on the surface itself if that answer fails; the ballot does not.
   */
  callerDraws?: boolean;
}

export interface VoteResult extends Tally {
  /** How the ballot's message should look now: fresh counts, or decided when this vote closed it. */
  redraw?: OfferRedraw;
}

export interface BallotClosed {
  result: ChoiceResult;
  ticket: WriteTicket;
  /** The decided offer, when the ballot has a message. */
  redraw?: OfferRedraw;
}

/** The job that closes a ballot when its window ends. */
export const BALLOT_CLOSE_JOB = "ballot-close";

export interface BallotClosePayload {
  ballotId: string;
  storyId: string;
  revision: number;
  /** The closing time the job was scheduled for, in ms since the epoch. */
  closesAt: number;
}

/** One job per ballot and closing time: scheduling the same close again (a restart's `resume`) is the same job. */
export function ballotCloseKey(ballotId: string, closesAt: Date): string {
  return `ballot:${ballotId}:${closesAt.getTime()}`;
}

type OpenBallot = NonNullable<Awaited<ReturnType<BallotService["openBallotOf"]>>>;

export class BallotService implements BallotOpener {
  private readonly liveCounts: LiveCounts;
  private readonly graceMs: number;
  private readonly random: () => number;

  constructor(
    private readonly db: Db,
    /** Runs the `ballot-close` jobs (its handler: `closeOnTime`, registered by the composition root). */
    private readonly queue: JobQueue,
    /** Continues the story with a closed ballot's winner. */
    private readonly stories: Pick<StoryCommands, "chooseByVote">,
    private readonly audiences: AudienceResolver,
    private readonly options: BallotOptions = {},
  ) {
    this.graceMs = options.firstVoteGraceMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.liveCounts = new LiveCounts(db, audiences, {
      ...(options.liveCountIntervalMs === undefined ? {} : { intervalMs: options.liveCountIntervalMs }),
      ...(options.log === undefined ? {} : { log: options.log }),
    });
  }

  async open(input: BallotOpening): Promise<OpenedBallot> {
    const closesAt = new Date(Date.now() + input.windowSeconds * 1000);
    // Choices offered again (after an undo or a branch) are a new round: the old
    // ballot of the chapter closes and its votes are cleared (their outcome was
    // recorded as a reaction when it closed).
    const [, , ballot] = await this.db.$transaction([
      this.db.ballot.updateMany({
        where: { chapterId: input.chapterId, status: "open" },
        data: { status: "closed", closedAt: new Date() },
      }),
      this.db.vote.deleteMany({ where: { chapterId: input.chapterId } }),
      this.db.ballot.create({ data: { ...input, closesAt }, select: { id: true } }),
    ]);
    await this.schedule(ballot.id, input.storyId, input.revision, closesAt);
    return { ballotId: ballot.id, closesAt };
  }

  /** The offer showing the ballot was posted: its live counts and result are drawn on `messageRef`. */
  async shown(ballotId: string, messageRef: string): Promise<void> {
    await this.db.ballot.update({ where: { id: ballotId }, data: { messageRef }, select: { id: true } });
  }

  /**
   * Record or change `actor`'s vote. The live count is drawn by a trailing edit, or by the
   * caller (`draw.callerDraws`) from the returned `redraw`.
   */
  async vote(
    storyId: string,
    revision: number,
    position: number,
    actor: Actor,
    draw: DrawOptions = {},
  ): Promise<VoteResult> {
    const before = await this.requireOpen(storyId, revision);
    const choice = before.chapter.choices[position - 1];
    if (choice === undefined) {
      throw new UserFacingError("error.choiceOutOfRange", { input: position, max: before.chapter.choices.length });
    }
    const user = await this.user(actor);
    await castVote(this.db, before.chapterId, user.id, choice.id);
    await this.startGraceIfWaiting(before);
    // Counted after the vote: this one and any that came in meanwhile.
    const ballot = await this.requireOpen(storyId, revision);
    const tally = tallyOf(ballot);
    if (await this.regularsAllVoted(ballot.id)) {
      const closed = await this.decide(ballot, draw).catch((error: unknown) => {
        if (!(error instanceof UserFacingError)) throw error;
        return undefined;
      });
      if (closed !== undefined) return { ...tally, ...(closed.redraw === undefined ? {} : { redraw: closed.redraw }) };
    }
    return { ...tally, ...this.liveCount(ballot, tally, draw) };
  }

  /**
   * Where the audience asks for it (Discord threads): a ballot closes early once
   * everyone who voted on the previous ballot has voted again. A story's first
   * ballot has no previous one, so it always runs its full window.
   */
  private async regularsAllVoted(ballotId: string): Promise<boolean> {
    const ballot = await this.db.ballot.findUnique({
      where: { id: ballotId },
      select: {
        status: true,
        chapter: { select: { parentId: true, story: { select: { conversationId: true } }, votes: true } },
      },
    });
    if (ballot === null || ballot.status !== "open" || ballot.chapter.parentId === null) return false;
    const audience = await this.audiences(ballot.chapter.story.conversationId);
    if (audience?.voting?.closeWhenPreviousVotersReturn !== true) return false;
    const previous = await this.db.vote.findMany({
      where: { chapterId: ballot.chapter.parentId },
      select: { userId: true },
    });
    if (previous.length === 0) return false;
    const now = new Set(ballot.chapter.votes.map((v) => v.userId));
    return previous.every((v) => now.has(v.userId));
  }

  /** Add `actor`'s own action to the ballot, with their vote on it. */
  async writeIn(storyId: string, revision: number, text: string, actor: Actor): Promise<VoteResult> {
    const label = text.trim();
    if (label === "") throw new UserFacingError("error.emptyAction");
    if (label.length > LIMITS.writeIn) {
      throw new UserFacingError("error.writeInTooLong", { length: label.length, max: LIMITS.writeIn });
    }
    const ballot = await this.requireOpen(storyId, revision);
    const { choices } = ballot.chapter;
    if (choices.some((c) => c.label.toLowerCase() === label.toLowerCase())) {
      throw new UserFacingError("error.writeInDuplicate");
    }
    if (choices.length >= MAX_BALLOT_CHOICES) {
      throw new UserFacingError("error.ballotFull", { max: MAX_BALLOT_CHOICES });
    }
    if (this.options.moderator !== undefined) {
      const story = await this.db.story.findUnique({ where: { id: storyId }, select: { rating: true } });
      await this.options.moderator.check(label, story?.rating ?? "general");
    }
    const user = await this.user(actor);
    await this.db.$transaction(async (tx) => {
      const choice = await tx.choice.create({
        data: { chapterId: ballot.chapterId, position: choices.length + 1, label, direction: label, writeIn: true },
        select: { id: true },
      });
      await castVote(tx, ballot.chapterId, user.id, choice.id);
    });
    await this.startGraceIfWaiting(ballot);
    this.options.preplanner
      ?.planAction(storyId, label)
      .catch((error: unknown) => this.options.log?.(`story ${storyId}: planning a write-in failed: ${String(error)}`));
    const after = await this.requireOpen(storyId, revision);
    const tally = tallyOf(after);
    return { ...tally, ...this.liveCount(after, tally, {}) };
  }

  /** Close early: only the story's starter or a moderator. */
  async closeEarly(
    storyId: string,
    revision: number,
    actor: Actor,
    moderator: boolean,
    draw: DrawOptions = {},
  ): Promise<BallotClosed> {
    const ballot = await this.requireOpen(storyId, revision);
    if (!moderator) {
      const user = await this.user(actor);
      if (user.id !== ballot.starterId) throw new UserFacingError("error.notStarter");
    }
    const closed = await this.decide(ballot, draw);
    if (closed === undefined) throw new UserFacingError("error.noVotesYet");
    return closed;
  }

  /**
   * Schedule the close of every open ballot again (at start): a queue that lost its
   * timers gets them back; on a shared queue the same key is the job it already has.
   */
  async resume(): Promise<number> {
    const open = await this.db.ballot.findMany({ where: { status: "open" } });
    for (const b of open) if (b.closesAt !== null) await this.schedule(b.id, b.storyId, b.revision, b.closesAt);
    return open.length;
  }

  /**
   * The `ballot-close` job: close the ballot if this is still its closing time. A job
   * for a ballot closed meanwhile (a button, or this job run twice) or a closing time
   * moved since (the grace after a first vote has its own job) does nothing.
   */
  async closeOnTime(payload: BallotClosePayload): Promise<void> {
    const { ballotId, storyId, revision, closesAt } = payload;
    try {
      const ballot = await this.openBallotOf(storyId);
      if (ballot === null || ballot.id !== ballotId || ballot.revision !== revision) return;
      if (ballot.closesAt === null || ballot.closesAt.getTime() > closesAt) return;
      if (tallyOf(ballot).total === 0) {
        // Nobody voted: keep the ballot open; the first vote starts a short grace period.
        await this.db.ballot.update({ where: { id: ballot.id }, data: { closesAt: null }, select: { id: true } });
        return;
      }
      await this.decide(ballot).catch((error: unknown) => {
        if (!(error instanceof UserFacingError)) throw error;
      });
    } catch (error) {
      this.options.log?.(`ballot ${ballotId}: closing failed: ${String(error)}`);
      throw error;
    }
  }

  /** Drop the live-count edits due (shutdown). Open ballots and their closing jobs stay. */
  dispose(): void {
    this.liveCounts.dispose();
  }

  /**
   * The ballot's fresh look after a vote or a write-in. A trailing edit is due unless one
   * already is; a caller that draws the look itself has it remembered as shown, so that
   * edit finds nothing to do.
   */
  private liveCount(ballot: OpenBallot, tally: Tally, draw: DrawOptions): { redraw?: OfferRedraw } {
    this.liveCounts.changed(ballot.id, ballot.storyId);
    // A vote racing the offer's post: the trailing edit finds the message by then.
    if (ballot.messageRef === "") return {};
    const redraw: OfferRedraw = { ref: { id: ballot.messageRef }, offer: ballotOffer(ballot, tally) };
    if (draw.callerDraws === true) this.liveCounts.drawn(ballot.id, redraw.offer);
    return { redraw };
  }

  /**
   * Tally, draw among ties, close, show the result (the caller's to draw with
   * `callerDraws`), and continue with the winner. Undefined when nobody voted.
   */
  private async decide(ballot: OpenBallot, draw: DrawOptions = {}): Promise<BallotClosed | undefined> {
    const tally = tallyOf(ballot);
    if (tally.total === 0) return undefined;
    const best = Math.max(...tally.counts);
    const tied = tally.counts.flatMap((c, i) => (c === best ? [i + 1] : []));
    const winner = tied[Math.min(tied.length - 1, Math.floor(this.random() * tied.length))] ?? 1;
    // Only one closer wins the race (timer vs. button): the others find it closed.
    const { count } = await this.db.ballot.updateMany({
      where: { id: ballot.id, status: "open" },
      data: { status: "closed", closedAt: new Date(), winner, tieBroken: tied.length > 1 },
    });
    if (count !== 1) throw new UserFacingError("error.voteClosed");
    this.liveCounts.forget(ballot.id);
    const result: ChoiceResult = {
      chosen: winner,
      label: tally.labels[winner - 1] ?? "",
      counts: tally.counts,
      ...(tied.length > 1 ? { tiedWith: tied } : {}),
    };
    const offer = ballotOffer(ballot, tally);
    const redraw = ballot.messageRef === "" ? undefined : { ref: { id: ballot.messageRef }, offer, result };
    if (redraw === undefined || draw.callerDraws !== true) {
      await this.announce(ballot, offer, result, redraw);
    }
    const ticket = await this.stories.chooseByVote(ballot.storyId, ballot.revision, winner, {
      counts: tally.counts,
      turnout: tally.total,
      tieBroken: tied.length > 1,
    });
    return { result, ticket, ...(redraw === undefined ? {} : { redraw }) };
  }

  /** The result in the ballot's closing edit (the announcement is its first line); a notice when it has no message. */
  private async announce(
    ballot: OpenBallot,
    offer: ChoiceOffer,
    result: ChoiceResult,
    redraw: OfferRedraw | undefined,
  ): Promise<void> {
    const audience = await this.audiences(ballot.chapter.story.conversationId);
    if (audience === undefined) return;
    const shown =
      redraw === undefined
        ? audience.surface.notice(closedOfferText(offer, result, audience.locale))
        : audience.surface.closeChoices(redraw.ref, offer, result);
    await shown.catch((e: unknown) => this.options.log?.(`ballot ${ballot.id}: result not shown: ${String(e)}`));
  }

  /**
   * Enqueue the close for `at`. A failure is logged, not thrown: the ballot and its
   * closing time are in the database, so a moderator can close it and `resume()`
   * schedules it again at the next start.
   */
  private async schedule(ballotId: string, storyId: string, revision: number, at: Date): Promise<void> {
    const payload: BallotClosePayload = { ballotId, storyId, revision, closesAt: at.getTime() };
    await this.queue
      .enqueue(BALLOT_CLOSE_JOB, payload, { key: ballotCloseKey(ballotId, at), at })
      .catch((error: unknown) => this.options.log?.(`ballot ${ballotId}: closing not scheduled: ${String(error)}`));
  }

  private async startGraceIfWaiting(ballot: OpenBallot): Promise<void> {
    if (ballot.closesAt !== null) return;
    const closesAt = new Date(Date.now() + this.graceMs);
    await this.db.ballot.update({ where: { id: ballot.id }, data: { closesAt }, select: { id: true } });
    await this.schedule(ballot.id, ballot.storyId, ballot.revision, closesAt);
  }

  private async requireOpen(storyId: string, revision: number): Promise<OpenBallot> {
    const ballot = await this.openBallotOf(storyId);
    if (ballot === null || ballot.revision !== revision) throw new UserFacingError("error.voteClosed");
    return ballot;
  }

  /** The open ballot on the story's head chapter, with its choices and votes. */
  openBallotOf(storyId: string) {
    return this.db.ballot.findFirst({
      where: { storyId, status: "open", chapter: { headOf: { id: storyId } } },
      include: BALLOT_INCLUDE,
    });
  }

  private user(actor: Actor) {
    return upsertUser(this.db, actor);
  }
}

/** One vote per member and chapter: a second vote replaces the first. */
function castVote(db: Pick<Db, "vote">, chapterId: string, userId: string, choiceId: string) {
  return db.vote.upsert({
    where: { chapterId_userId: { chapterId, userId } },
    create: { chapterId, userId, choiceId },
    update: { choiceId },
    select: { id: true },
  });
}
