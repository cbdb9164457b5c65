/**
 * The commands that change a story: each goes through here in one transaction,
 * guarded by the story's revision so a stale or doubled request changes nothing.
 * Chapter writing is enqueued as a job (src/story/chapter-job.ts).
 */
import { randomUUID } from "node:crypto";
import type { Genre } from "../agent/types.ts";
import { artStyleFor } from "../art/visual-bible.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { ensureCounter, readCounter, takeCounter, tryTakeCounter } from "../store/counters.ts";
import type { Db, PrismaPromise } from "../store/db.ts";
import { enqueueChapter, type WriteTicket } from "./chapter-job.ts";
import { COUNTER_KEYS, dayCountExpiry, startOfDayUtc } from "./counter-keys.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, type Conversation, conversationKey, findUserId, upsertUser, upsertWorkspace } from "./identity.ts";
import { LIMITS } from "./limits.ts";
import { copyThemeLore } from "./lore-service.ts";
import type { Moderator } from "./moderation.ts";
import type { Preplanner } from "./preplanner.ts";
import { type ReactionInput, recordReaction } from "./reactions.ts";
import {
  type CreatedRemix,
  createRemix,
  findShared,
  type RemixTarget,
  type SharedStory,
  shareStory,
  unshareStory,
} from "./sharing.ts";
import { loadChain } from "./snapshot.ts";
import { type HeadChapter, StoryRevisions } from "./story-revisions.ts";

/**
 * A member's daily chapter quota, where one applies (commands/story-context.ts says
 * where): taken in the transaction that creates the chapter, so two requests at
 * once, in two processes even, cannot both take the last one.
 */
export interface ChapterQuota {
  limit: number;
  /** Where it counts: the quota is per member and workspace. */
  conversation: Conversation;
}

export class StoryCommands {
  private readonly revisions: StoryRevisions;

  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    /** Checks what readers write in (scenarios, own actions) when a moderation model is configured. */
    private readonly moderator?: Moderator,
    /** Plans a reader's own action as soon as it arrives, alongside moderation and the commit (PREPLAN on). */
    private readonly preplanner?: Pick<Preplanner, "planAction" | "forget">,
  ) {
    this.revisions = new StoryRevisions(db);
  }

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
    quota?: ChapterQuota;
    /**
     * Rows the story starts with, written in its transaction so the opening chapter sees them
     * (an imported card's character and lore; src/story/cards.ts).
     */
    seed?: (tx: Pick<Db, "character" | "loreEntry" | "counter">, storyId: string) => Promise<unknown>;
  }): Promise<WriteTicket> {
    const premise = input.premise.trim();
    if (premise === "") throw new UserFacingError("error.emptyScenario");
    if (premise.length > LIMITS.scenario) {
      throw new UserFacingError("error.scenarioTooLong", { length: premise.length, max: LIMITS.scenario });
    }
    const { actor, conversation } = input;
    const rating = input.theme?.rating ?? input.rating ?? "general";
    await this.moderator?.check(premise, rating);
    const quota = await this.quotaCounter(actor, input.quota);
    const created = await this.db.$transaction(async (tx) => {
      if (quota !== undefined && !(await tryTakeCounter(tx, quota.key, { limit: quota.limit }))) {
        throw new UserFacingError("error.quota", { quota: quota.limit });
      }
      const user = await upsertUser(tx, actor);
      const workspace = await upsertWorkspace(tx, {
        platform: conversation.platform,
        externalId: conversation.workspaceId,
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
      if (input.theme !== undefined) await copyThemeLore(tx, input.theme.id, story.id);
      await input.seed?.(tx, story.id);
      return { storyId: story.id, chapterId: chapter.id };
    });
    return this.enqueue(created.storyId, created.chapterId, 1, 1);
  }

  /** Continue with choice `position` (1-based) of the head chapter. */
  async choose(
    storyId: string,
    revision: number,
    position: number,
    by?: Actor,
    quota?: ChapterQuota,
  ): Promise<WriteTicket> {
    return this.continueWith(storyId, revision, by, quota, async (head) => {
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
    return this.continueWith(storyId, revision, undefined, undefined, async (head) => {
      const choice = head.choices[position - 1];
      if (choice === undefined) throw new UserFacingError("error.choiceOutOfRange", { input: position, max: 0 });
      return { action: choice.label, reaction: { kind: "vote", data: { position, label: choice.label, ...result } } };
    });
  }

  /** Continue with the reader's own action. */
  async act(storyId: string, revision: number, text: string, by?: Actor, quota?: ChapterQuota): Promise<WriteTicket> {
    const action = text.trim();
    if (action === "") throw new UserFacingError("error.emptyAction");
    if (action.length > LIMITS.action) {
      throw new UserFacingError("error.actionTooLong", { length: action.length, max: LIMITS.action });
    }
    return this.continueWith(storyId, revision, by, quota, async (head) => {
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
    quotaOf: ChapterQuota | undefined,
    decide: (head: HeadChapter) => Promise<{ action: string; reaction: ReactionInput }>,
  ): Promise<WriteTicket> {
    const { head } = await this.revisions.idleHead(storyId, revision);
    if (head.status !== "done") throw new UserFacingError("error.noChoices");
    const { action, reaction } = await decide(head);
    const requestedById = by === undefined ? undefined : (await upsertUser(this.db, by)).id;
    const quota = await this.quotaCounter(by, quotaOf);
    const chapterId = randomUUID();
    await this.commit(storyId, revision, chapterId, quota, [
      this.db.chapter.create({
        data: {
          id: chapterId,
          storyId,
          parentId: head.id,
          number: head.number + 1,
          task: "continue",
          action,
          authorNote: head.authorNote,
          ...(requestedById === undefined ? {} : { requestedById }),
          requestKey: `${storyId}:r${revision}`,
          bibleUpdates: {},
          messageRefs: [],
        },
        select: { id: true },
      }),
      this.noteUnchanged(head),
      recordReaction(this.db, head.id, reaction),
    ]);
    return { ...(await this.enqueue(storyId, chapterId, head.number + 1, revision + 1)), action };
  }

  /** Regenerate the head chapter with a direction; the old one stays as a branch. */
  async rewrite(storyId: string, direction: string, by?: Actor, quotaOf?: ChapterQuota): Promise<WriteTicket> {
    const dir = direction.trim();
    if (dir.length > LIMITS.direction) {
      throw new UserFacingError("error.directionTooLong", { length: dir.length, max: LIMITS.direction });
    }
    const { story, head } = await this.revisions.idleHead(storyId);
    if (head.status !== "done") throw new UserFacingError("error.noChoices");
    const quota = await this.quotaCounter(by, quotaOf);
    const chapterId = randomUUID();
    await this.commit(storyId, story.revision, chapterId, quota, [
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
          // The note in effect at the chapter rewritten, not at its parent: a note set just
          // before a rewrite shapes it.
          authorNote: head.authorNote,
          ...(by === undefined ? {} : { requestedById: (await upsertUser(this.db, by)).id }),
          requestKey: `${storyId}:r${story.revision}`,
          bibleUpdates: {},
          messageRefs: [],
        },
        select: { id: true },
      }),
      this.noteUnchanged(head),
      recordReaction(this.db, head.id, { kind: "rewrite", data: { direction: dir, rewriteId: chapterId } }),
    ]);
    return this.enqueue(storyId, chapterId, head.number, story.revision + 1);
  }

  /** Move the head back one chapter; the undone chapter stays as a branch. Returns the new head number. */
  async undo(storyId: string): Promise<number> {
    const { story, head } = await this.revisions.idleHead(storyId);
    if (head.parentId === null) throw new UserFacingError("error.undoFirst");
    await this.revisions.commit(storyId, story.revision, head.parentId, [
      recordReaction(this.db, head.id, { kind: "undo", data: {} }),
    ]);
    return head.number - 1;
  }

  /** Continue from chapter `number` of the current branch. */
  async branch(storyId: string, number: number): Promise<void> {
    const { story, head } = await this.revisions.idleHead(storyId);
    const chain = await loadChain(this.db, storyId, head.id);
    const target = chain.find((c) => c.number === number);
    if (!Number.isInteger(number) || target === undefined || target.status !== "done") {
      throw new UserFacingError("error.branchRange", { input: number, max: head.number });
    }
    if (target.id === head.id) throw new UserFacingError("error.branchSame", { number });
    await this.revisions.commit(storyId, story.revision, target.id, [
      recordReaction(this.db, head.id, { kind: "branch", data: { to: number } }),
    ]);
  }

  /** End the story: it leaves the lists, its open vote closes, and nothing more can be written. */
  async end(storyId: string): Promise<void> {
    const { story } = await this.revisions.idleHead(storyId);
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
    const { story, head } = await this.revisions.idleHead(storyId);
    if (head.status !== "failed") throw new UserFacingError("error.notFailed");
    await this.revisions.commit(storyId, story.revision, head.id, [
      this.db.chapter.update({
        where: { id: head.id, status: "failed" },
        data: { status: "pending", error: "" },
        select: { id: true },
      }),
    ]);
    return this.enqueue(storyId, head.id, head.number, story.revision + 1);
  }

  /** Share the story (its starter only): its code, the same until revoked. */
  share(storyId: string, by: Actor): Promise<string> {
    return shareStory(this.db, storyId, by);
  }

  /** Revoke the story's share code (its starter only). */
  unshare(storyId: string, by: Actor): Promise<void> {
    return unshareStory(this.db, storyId, by);
  }

  /** The story a share code names (refused when unknown or revoked). */
  findShared(code: string): Promise<SharedStory> {
    return findShared(this.db, code);
  }

  /**
   * Start a remix of `original` for `target` (src/story/sharing.ts): with `upTo`, its
   * chapters up to that one are copied and nothing is written; else its opening is
   * enqueued, taking one from the quota like /start.
   */
  async remix(
    original: SharedStory,
    target: RemixTarget,
    upTo?: number,
    quotaOf?: ChapterQuota,
  ): Promise<CreatedRemix & { ticket?: WriteTicket }> {
    const quota = upTo === undefined ? await this.quotaCounter(target.actor, quotaOf) : undefined;
    const created = await createRemix(this.db, original, target, upTo, quota);
    if (created.pendingChapterId === undefined) return created;
    return { ...created, ticket: await this.enqueue(created.storyId, created.pendingChapterId, 1, 1) };
  }

  /**
   * Set the author's note (/note) on the story's head chapter, "" to clear it. Chapters
   * asked for from there inherit it, so it is branch-local: undo and branch land on a
   * chapter with the note it had. Checked by the moderator like a reader's action. Not a
   * story revision (offered choices stay valid); the write is guarded by the chapter still
   * being the head.
   */
  async setNote(storyId: string, note: string): Promise<void> {
    const text = note.replace(/\s+/g, " ").trim();
    if (text.length > LIMITS.authorNote) {
      throw new UserFacingError("note.tooLong", { length: text.length, max: LIMITS.authorNote });
    }
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: { headChapterId: true, status: true, rating: true },
    });
    if (story?.headChapterId == null) throw new UserFacingError("error.noStory");
    if (story.status === "ended") throw new UserFacingError("error.storyEnded");
    if (text !== "") await this.moderator?.check(text, story.rating);
    // The head may move meanwhile (a choice, an undo): the note goes on the new head.
    let headId: string | null = story.headChapterId;
    for (let attempt = 0; attempt < 3 && headId !== null; attempt++) {
      const { count } = await this.db.chapter.updateMany({
        where: { id: headId, headOf: { is: { id: storyId } } },
        data: { authorNote: text },
      });
      if (count > 0) return;
      headId =
        (await this.db.story.findUnique({ where: { id: storyId }, select: { headChapterId: true } }))?.headChapterId ??
        null;
    }
    throw new UserFacingError("error.stale");
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
    const userId = await findUserId(this.db, actor);
    if (userId === undefined) return 0;
    return this.db.chapter.count({
      where: {
        createdAt: { gte: startOfDayUtc() },
        requestedById: userId,
        story: { workspace: { platform: conversation.platform, externalId: conversation.workspaceId } },
      },
    });
  }

  /** The quota's counter for today, ready to be taken with the chapter; undefined when no quota applies. */
  private async quotaCounter(
    by: Actor | undefined,
    quota: ChapterQuota | undefined,
  ): Promise<{ key: string; limit: number } | undefined> {
    if (by === undefined || quota === undefined || quota.limit <= 0) return undefined;
    const now = new Date();
    const key = COUNTER_KEYS.chapters(quota.conversation, by, now);
    await ensureCounter(this.db, key, {
      seed: () => this.requestsToday(by, quota.conversation),
      expiresAt: dayCountExpiry(now),
    });
    return { key, limit: quota.limit };
  }

  /** `StoryRevisions.commit`, taking one from the quota with the writes when one applies. */
  private async commit(
    storyId: string,
    revision: number,
    headId: string,
    quota: { key: string; limit: number } | undefined,
    writes: PrismaPromise<unknown>[],
  ): Promise<void> {
    if (quota === undefined) return this.revisions.commit(storyId, revision, headId, writes);
    try {
      await this.revisions.commit(storyId, revision, headId, [
        takeCounter(this.db, quota.key, { limit: quota.limit }),
        ...writes,
      ]);
    } catch (error) {
      // The quota's take fails the transaction as a stale revision would: tell them apart.
      if (error instanceof UserFacingError && error.id === "error.stale") {
        const taken = await readCounter(this.db, quota.key);
        if (taken !== null && taken.count >= quota.limit) {
          throw new UserFacingError("error.quota", { quota: quota.limit });
        }
      }
      throw error;
    }
  }

  /**
   * A write that fails (P2025, so the whole commit is stale) when the head's author's note
   * changed since it was read: the new chapter copies the note it read, and a /note that
   * came in between must not be lost.
   */
  private noteUnchanged(head: HeadChapter): PrismaPromise<unknown> {
    return this.db.chapter.update({
      where: { id: head.id, authorNote: head.authorNote },
      data: { authorNote: head.authorNote },
      select: { id: true },
    });
  }

  private enqueue(storyId: string, chapterId: string, number: number, revision: number): Promise<WriteTicket> {
    return enqueueChapter(this.queue, { storyId, chapterId, number, revision });
  }
}
