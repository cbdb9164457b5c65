/**
 * The story domain: every command that changes a story goes through here, in
 * one transaction, guarded by the story's revision so a stale or doubled
 * request changes nothing. Chapter writing is enqueued as a job
 * (src/story/chapter-writer.ts).
 */
import { randomUUID } from "node:crypto";
import type { Genre } from "../agent/types.ts";
import { artStyleFor } from "../art/visual-bible.ts";
import type { Locale } from "../i18n/locale.ts";
import { t } from "../i18n/messages.ts";
import type { EnqueuedJob, JobQueue } from "../jobs/job-queue.ts";
import { type Db, isPrismaError, type PrismaPromise } from "../store/db.ts";
import { latestRatings } from "../training/score.ts";
import type { Book } from "./book.ts";
import { UserFacingError } from "./errors.ts";
import type { StoredImage } from "./illustrations.ts";
import { LIMITS } from "./limits.ts";
import type { Moderator } from "./moderation.ts";
import type { Preplanner } from "./preplanner.ts";
import { loadChain, loadStoryWithCanon } from "./snapshot.ts";

export interface Actor {
  platform: string;
  /** Platform user id. */
  id: string;
  name: string;
}

export interface Conversation {
  platform: string;
  /** Discord guild / Telegram chat / "local": where settings live. */
  workspaceId: string;
  /** Discord thread / Telegram chat / terminal: where the story is shown. */
  id: string;
}

export const CHAPTER_JOB = "chapter";

export interface ChapterJobPayload {
  chapterId: string;
}

/** A request that led to a chapter being written; `job.finished` settles when it is. */
export interface WriteTicket {
  storyId: string;
  chapterId: string;
  number: number;
  /** The choice or action the chapter continues from, when there is one. */
  action?: string;
  job: EnqueuedJob;
}

export interface StoryState {
  storyId: string;
  title: string;
  revision: number;
  head: { id: string; number: number; status: string; text: string; title: string } | null;
  choices: string[];
}

export interface StoryListItem {
  storyId: string;
  title: string;
  chapter: number;
  updatedAt: Date;
}

const BUSY = new Set(["pending", "writing"]);

/** The user row of a platform user, created on first sight. */
export function upsertUser(db: Pick<Db, "user">, actor: Actor) {
  return db.user.upsert({
    where: { platform_externalId: { platform: actor.platform, externalId: actor.id } },
    create: { platform: actor.platform, externalId: actor.id, displayName: actor.name },
    update: {},
    select: { id: true },
  });
}

export function conversationKey(c: Conversation): string {
  return `${c.platform}:${c.id}`;
}

export class StoryService {
  private presenter: ((storyId: string) => Promise<boolean>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    /** Checks what readers write in (scenarios, own actions) when a moderation model is configured. */
    private readonly moderator?: Moderator,
    /** Plans a reader's own action as soon as it arrives, alongside moderation and the commit (PREPLAN on). */
    private readonly preplanner?: Pick<Preplanner, "planAction" | "forget">,
  ) {}

  /** Create a story and enqueue chapter 1. */
  async start(input: {
    actor: Actor;
    conversation: Conversation;
    premise: string;
    genre: Genre;
    /** Content rating when no theme sets one (the workspace's setting). */
    rating?: string;
    /** short | medium | long (the workspace's setting). */
    chapterLength?: string;
    /** A moderators' theme: its rules bind the story, its rating and art style become the story's. */
    theme?: { id: string; rating: string; artStyle?: string };
  }): Promise<WriteTicket> {
    const premise = input.premise.trim();
    if (premise === "") throw new UserFacingError("error.emptyScenario");
    if (premise.length > LIMITS.scenario) {
      throw new UserFacingError("error.scenarioTooLong", { length: premise.length, max: LIMITS.scenario });
    }
    const { actor, conversation } = input;
    const rating = input.theme?.rating ?? input.rating ?? "general";
    await this.moderator?.check(premise, rating);
    const created = await this.db.$transaction(async (tx) => {
      const user = await upsertUser(tx, actor);
      const workspace = await tx.workspace.upsert({
        where: { platform_externalId: { platform: conversation.platform, externalId: conversation.workspaceId } },
        create: { platform: conversation.platform, externalId: conversation.workspaceId, settings: {} },
        update: {},
      });
      const story = await tx.story.create({
        data: {
          workspaceId: workspace.id,
          ownerId: user.id,
          conversationId: conversationKey(conversation),
          premise,
          genre: input.genre,
          rating,
          chapterLength: input.chapterLength ?? "medium",
          // Fixed at the start, like the cast's looks: every picture of the story shares it.
          artStyle: artStyleFor(input.theme?.artStyle, input.genre),
          ...(input.theme === undefined ? {} : { themeId: input.theme.id }),
          bible: {},
          arc: {},
          revision: 1,
        },
      });
      const chapter = await tx.chapter.create({
        data: {
          storyId: story.id,
          number: 1,
          task: "open",
          requestedById: user.id,
          requestKey: `${story.id}:r0`,
          bibleUpdates: {},
          messageRefs: [],
        },
      });
      await tx.story.update({ where: { id: story.id }, data: { headChapterId: chapter.id } });
      return { storyId: story.id, chapterId: chapter.id };
    });
    return this.enqueue(created.storyId, created.chapterId, 1, 1);
  }

  /** Continue with choice `position` (1-based) of the head chapter. */
  async choose(storyId: string, revision: number, position: number, by?: Actor): Promise<WriteTicket> {
    return this.continueWith(storyId, revision, by, async (head) => {
      const choices = head.choices;
      if (choices.length === 0) throw new UserFacingError("error.noChoices");
      const choice = choices[position - 1];
      if (choice === undefined || !Number.isInteger(position)) {
        throw new UserFacingError("error.choiceOutOfRange", { input: position, max: choices.length });
      }
      return { action: choice.label, reaction: { kind: "choice", data: { position, label: choice.label } } };
    });
  }

  /** Continue with the winner of a closed ballot (see BallotService). */
  async chooseByVote(
    storyId: string,
    revision: number,
    position: number,
    result: { counts: number[]; turnout: number; tieBroken: boolean },
  ): Promise<WriteTicket> {
    return this.continueWith(storyId, revision, undefined, async (head) => {
      const choice = head.choices[position - 1];
      if (choice === undefined) throw new UserFacingError("error.choiceOutOfRange", { input: position, max: 0 });
      return { action: choice.label, reaction: { kind: "vote", data: { position, label: choice.label, ...result } } };
    });
  }

  /** Continue with the reader's own action. */
  async act(storyId: string, revision: number, text: string, by?: Actor): Promise<WriteTicket> {
    const action = text.trim();
    if (action === "") throw new UserFacingError("error.emptyAction");
    if (action.length > LIMITS.action) {
      throw new UserFacingError("error.actionTooLong", { length: action.length, max: LIMITS.action });
    }
    return this.continueWith(storyId, revision, by, async (head) => {
      // Planned the moment it arrives: the plan runs while it is checked and committed.
      await this.preplanner?.planAction(storyId, action);
      try {
        await this.moderator?.check(action, head.rating);
      } catch (error) {
        this.preplanner?.forget(storyId, action);
        throw error;
      }
      return { action, reaction: { kind: "action", data: { action } } };
    });
  }

  private async continueWith(
    storyId: string,
    revision: number,
    by: Actor | undefined,
    decide: (head: HeadChapter & { rating: string }) => Promise<{ action: string; reaction: ReactionInput }>,
  ): Promise<WriteTicket> {
    const { head } = await this.idleHead(storyId, revision);
    if (head.status !== "done") throw new UserFacingError("error.noChoices");
    const { action, reaction } = await decide(head);
    const requestedById = by === undefined ? undefined : (await upsertUser(this.db, by)).id;
    const chapterId = randomUUID();
    await this.commit(storyId, revision, chapterId, [
      this.db.chapter.create({
        data: {
          id: chapterId,
          storyId,
          parentId: head.id,
          number: head.number + 1,
          task: "continue",
          action,
          ...(requestedById === undefined ? {} : { requestedById }),
          requestKey: `${storyId}:r${revision}`,
          bibleUpdates: {},
          messageRefs: [],
        },
        select: { id: true },
      }),
      this.react(head.id, reaction),
    ]);
    return { ...(await this.enqueue(storyId, chapterId, head.number + 1, revision + 1)), action };
  }

  /** Regenerate the head chapter with a direction; the old one stays as a branch. */
  async rewrite(storyId: string, direction: string, by?: Actor): Promise<WriteTicket> {
    const dir = direction.trim();
    if (dir.length > LIMITS.direction) {
      throw new UserFacingError("error.directionTooLong", { length: dir.length, max: LIMITS.direction });
    }
    const { story, head } = await this.idleHead(storyId);
    if (head.status !== "done") throw new UserFacingError("error.noChoices");
    const chapterId = randomUUID();
    await this.commit(storyId, story.revision, chapterId, [
      this.db.chapter.create({
        data: {
          id: chapterId,
          storyId,
          parentId: head.parentId,
          number: head.number,
          task: head.number === 1 ? "open" : "rewrite",
          action: head.action,
          direction: dir,
          rewriteOfId: head.id,
          ...(by === undefined ? {} : { requestedById: (await upsertUser(this.db, by)).id }),
          requestKey: `${storyId}:r${story.revision}`,
          bibleUpdates: {},
          messageRefs: [],
        },
        select: { id: true },
      }),
      this.react(head.id, { kind: "rewrite", data: { direction: dir, rewriteId: chapterId } }),
    ]);
    return this.enqueue(storyId, chapterId, head.number, story.revision + 1);
  }

  /** Move the head back one chapter; the undone chapter stays as a branch. Returns the new head number. */
  async undo(storyId: string): Promise<number> {
    const { story, head } = await this.idleHead(storyId);
    if (head.parentId === null) throw new UserFacingError("error.undoFirst");
    await this.commit(storyId, story.revision, head.parentId, [this.react(head.id, { kind: "undo", data: {} })]);
    return head.number - 1;
  }

  /** Continue from chapter `number` of the current branch. */
  async branch(storyId: string, number: number): Promise<void> {
    const { story, head } = await this.idleHead(storyId);
    const chain = await loadChain(this.db, storyId, head.id);
    const target = chain.find((c) => c.number === number);
    if (!Number.isInteger(number) || target === undefined || target.status !== "done") {
      throw new UserFacingError("error.branchRange", { input: number, max: head.number });
    }
    if (target.id === head.id) throw new UserFacingError("error.branchSame", { number });
    await this.commit(storyId, story.revision, target.id, [
      this.react(head.id, { kind: "branch", data: { to: number } }),
    ]);
  }

  /** End the story: it leaves the lists, its open vote closes, and nothing more can be written. */
  async end(storyId: string): Promise<void> {
    const { story } = await this.idleHead(storyId);
    await this.db.$transaction([
      this.db.ballot.updateMany({
        where: { storyId, status: "open" },
        data: { status: "closed", closedAt: new Date() },
      }),
      this.db.story.update({
        where: { id: storyId, revision: story.revision },
        data: { status: "ended", revision: { increment: 1 } },
        select: { id: true },
      }),
    ]);
  }

  /** Write the failed head chapter again. */
  async retry(storyId: string): Promise<WriteTicket> {
    const { story, head } = await this.idleHead(storyId);
    if (head.status !== "failed") throw new UserFacingError("error.notFailed");
    await this.commit(storyId, story.revision, head.id, [
      this.db.chapter.update({
        where: { id: head.id, status: "failed" },
        data: { status: "pending", error: "" },
        select: { id: true },
      }),
    ]);
    return this.enqueue(storyId, head.id, head.number, story.revision + 1);
  }

  async state(storyId: string): Promise<StoryState> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        title: true,
        revision: true,
        head: {
          select: {
            id: true,
            number: true,
            status: true,
            text: true,
            title: true,
            choices: { select: { label: true }, orderBy: { position: "asc" } },
          },
        },
      },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    const { head } = story;
    return {
      storyId,
      title: story.title,
      revision: story.revision,
      head:
        head === null
          ? null
          : { id: head.id, number: head.number, status: head.status, text: head.text, title: head.title },
      choices: head === null || head.status !== "done" ? [] : head.choices.map((c) => c.label),
    };
  }

  /** Who offers a story's choices again where it is shown (the chapter writer; set at wiring). */
  presentChoicesWith(presenter: (storyId: string) => Promise<boolean>): void {
    this.presenter = presenter;
  }

  /**
   * Offer the head chapter's choices again (a vote in voting conversations).
   * False when no presenter is wired or there is nothing to offer.
   */
  async offerChoicesAgain(storyId: string): Promise<boolean> {
    return (await this.presenter?.(storyId)) ?? false;
  }

  /** Show the story in another conversation from now on (a Discord branch opens a new thread). */
  async moveConversation(storyId: string, to: Conversation): Promise<void> {
    await this.db.story.update({
      where: { id: storyId },
      data: { conversationId: conversationKey(to) },
      select: { id: true },
    });
  }

  /** Chapters `actor` asked for in this workspace since midnight UTC (for daily quotas). */
  async requestsToday(actor: Actor, conversation: Conversation): Promise<number> {
    const user = await this.db.user.findUnique({
      where: { platform_externalId: { platform: actor.platform, externalId: actor.id } },
      select: { id: true },
    });
    if (user === null) return 0;
    const since = new Date();
    since.setUTCHours(0, 0, 0, 0);
    return this.db.chapter.count({
      where: {
        createdAt: { gte: since },
        requestedById: user.id,
        story: { workspace: { platform: conversation.platform, externalId: conversation.workspaceId } },
      },
    });
  }

  /** The story a conversation is playing: its most recently played active story. */
  async latestIn(conversation: Conversation): Promise<string | undefined> {
    const story = await this.db.story.findFirst({
      where: { conversationId: conversationKey(conversation), status: "active" },
      orderBy: { updatedAt: "desc" },
      select: { id: true },
    });
    return story?.id;
  }

  /** Where a story is played and who started it (to refuse buttons from elsewhere). */
  async whereIs(storyId: string): Promise<{ conversationId: string; ownerId: string } | undefined> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: { conversationId: true, owner: { select: { platform: true, externalId: true } } },
    });
    return story === null
      ? undefined
      : { conversationId: story.conversationId, ownerId: `${story.owner.platform}:${story.owner.externalId}` };
  }

  /**
   * The stories played in this conversation, most recently played first. A
   * conversation only ever sees its own stories: resuming one from another chat
   * would let that chat's readers act on it.
   */
  async list(conversation: Conversation): Promise<StoryListItem[]> {
    const stories = await this.db.story.findMany({
      where: { conversationId: conversationKey(conversation), status: "active" },
      orderBy: { updatedAt: "desc" },
      take: 25,
      select: { id: true, title: true, updatedAt: true, head: { select: { number: true } } },
    });
    return stories.map((s) => ({
      storyId: s.id,
      title: s.title,
      chapter: s.head?.number ?? 0,
      updatedAt: s.updatedAt,
    }));
  }

  /**
   * A reader's thumbs up (1) or down (-1) on a finished chapter: an append-only
   * `rating` reaction; a reader's latest rating counts. Refused for a chapter of a
   * story shown elsewhere. Returns the chapter's tally.
   */
  async rate(input: {
    chapterId: string;
    actor: Actor;
    value: 1 | -1;
    conversation: Conversation;
  }): Promise<{ up: number; down: number }> {
    const chapter = await this.db.chapter.findUnique({
      where: { id: input.chapterId },
      select: { status: true, story: { select: { conversationId: true } } },
    });
    if (chapter === null || chapter.status !== "done") throw new UserFacingError("error.stalePick");
    if (chapter.story.conversationId !== conversationKey(input.conversation)) {
      throw new UserFacingError("error.notYourStory");
    }
    const user = await upsertUser(this.db, input.actor);
    await this.react(input.chapterId, { kind: "rating", data: { value: input.value, userId: user.id } });
    return ratingTally(
      await this.db.reaction.findMany({
        where: { chapterId: input.chapterId, kind: "rating" },
        orderBy: { createdAt: "asc" },
        select: { data: true },
      }),
    );
  }

  /** Chapter summaries of the current branch (no model call). */
  async recap(storyId: string): Promise<{ title: string; chapters: { number: number; summary: string }[] }> {
    const story = await this.requireStory(storyId);
    const chain = await loadChain(this.db, storyId, story.headChapterId);
    return {
      title: story.title,
      chapters: chain.filter((c) => c.status === "done").map((c) => ({ number: c.number, summary: c.summary })),
    };
  }

  /**
   * The current branch as a book (text, cast, art style), with the stored pictures
   * of its chapters from `imagesOf` placed after each chapter's text.
   */
  async exportBook(
    storyId: string,
    locale: Locale,
    imagesOf: (chapterIds: string[]) => Promise<StoredImage[]> = async () => [],
  ): Promise<Book> {
    const story = await this.requireStory(storyId);
    const chain = (await loadChain(this.db, storyId, story.headChapterId)).filter((c) => c.status === "done");
    const canon = await loadStoryWithCanon(this.db, storyId);
    if (canon === null) throw new UserFacingError("error.noStory");
    const images = await imagesOf(chain.map((c) => c.id));
    const usedNames = new Set<string>();
    return {
      id: story.id,
      title: story.title,
      premise: story.premise,
      language: story.language,
      cast: canon.characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
      artStyle: story.artStyle,
      modified: story.updatedAt,
      chapters: chain.map((c) => ({
        number: c.number,
        title: c.title,
        action: c.action,
        text: c.text,
        images: images
          .filter((i) => i.chapterId === c.id && !usedNames.has(i.fileName) && usedNames.add(i.fileName))
          .map(({ fileName, bytes, mime, caption }) => ({ fileName, bytes, mime, caption })),
      })),
      labels: {
        untitled: t(locale, "untitled"),
        chapter: (number) => t(locale, "chapter.headingUntitled", { number }),
        cast: t(locale, "export.cast"),
        illustration: t(locale, "export.illustration"),
      },
    };
  }

  /**
   * After a crash or restart: chapters left pending or half-written are written again,
   * with no reader action. A chapter that had begun continues from the messages it had
   * shown (its saved progress): no second copy, its choices offered once. Call once the
   * conversations can be reached (adapters registered). Returns how many.
   */
  async resumeInterrupted(): Promise<number> {
    const rows = await this.db.chapter.findMany({
      where: { status: { in: [...BUSY] } },
      select: { id: true, storyId: true, number: true, story: { select: { revision: true } } },
    });
    if (rows.length === 0) return 0;
    await this.db.chapter.updateMany({
      where: { id: { in: rows.map((r) => r.id) }, status: "writing" },
      data: { status: "pending" },
    });
    for (const row of rows) await this.enqueue(row.storyId, row.id, row.number, row.story.revision);
    return rows.length;
  }

  private async requireStory(storyId: string) {
    const story = await this.db.story.findUnique({ where: { id: storyId } });
    if (story === null) throw new UserFacingError("error.noStory");
    return story;
  }

  /**
   * The story's revision and head chapter (with its choices). A request based on
   * another revision is stale (checked first: a double click is "no longer open",
   * not "busy"); then the head must not be being written.
   */
  private async idleHead(
    storyId: string,
    expectedRevision?: number,
  ): Promise<{ story: { revision: number }; head: HeadChapter & { rating: string } }> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        revision: true,
        status: true,
        rating: true,
        head: {
          select: {
            id: true,
            parentId: true,
            number: true,
            status: true,
            action: true,
            choices: { select: { label: true }, orderBy: { position: "asc" } },
          },
        },
      },
    });
    if (story?.head == null) throw new UserFacingError("error.noStory");
    if (story.status === "ended") throw new UserFacingError("error.storyEnded");
    if (expectedRevision !== undefined && story.revision !== expectedRevision) throw new UserFacingError("error.stale");
    if (BUSY.has(story.head.status)) throw new UserFacingError("error.busy");
    return { story, head: { ...story.head, rating: story.rating } };
  }

  /**
   * One transaction: `writes`, then point the head at `headId` and bump the
   * revision. The head move is a compare-and-set on the revision, and new
   * chapters carry a unique request key, so a second request based on the same
   * revision fails and rolls back whole: nothing is written twice.
   */
  private async commit(storyId: string, revision: number, headId: string, writes: PrismaPromise<unknown>[]) {
    try {
      await this.db.$transaction([
        ...writes,
        // The head moves on: a ballot still open on the old head can no longer decide anything.
        this.db.ballot.updateMany({
          where: { storyId, status: "open" },
          data: { status: "closed", closedAt: new Date() },
        }),
        this.db.story.update({
          where: { id: storyId, revision },
          data: { revision: { increment: 1 }, headChapterId: headId },
          select: { id: true },
        }),
      ]);
    } catch (error) {
      // P2025: no story at that revision; P2002: that request key was already used.
      if (isPrismaError(error, "P2025") || isPrismaError(error, "P2002")) throw new UserFacingError("error.stale");
      throw error;
    }
  }

  /** Record what the reader did after a chapter (FireAct's reward signal for its runs). */
  private react(chapterId: string, reaction: ReactionInput) {
    return this.db.reaction.create({
      data: { chapterId, kind: reaction.kind, data: reaction.data as object },
      select: { id: true },
    });
  }

  private async enqueue(storyId: string, chapterId: string, number: number, revision: number): Promise<WriteTicket> {
    const job = await this.queue.enqueue<ChapterJobPayload>(
      CHAPTER_JOB,
      { chapterId },
      { key: `chapter:${chapterId}:r${revision}` },
    );
    return { storyId, chapterId, number, job };
  }
}

interface HeadChapter {
  id: string;
  parentId: string | null;
  number: number;
  status: string;
  action: string;
  choices: { label: string }[];
}

/** Each reader's latest rating, counted, from a chapter's `rating` reaction rows (oldest first). */
export function ratingTally(rows: { data: unknown }[]): { up: number; down: number } {
  return latestRatings(rows.map((r) => ({ kind: "rating", data: r.data })));
}

interface ReactionInput {
  kind: "choice" | "vote" | "action" | "undo" | "rewrite" | "branch" | "rating";
  data: Record<string, unknown>;
}
