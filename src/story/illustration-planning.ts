/**
 * Illustration planning: which pictures exist. The agent's key scenes become
 * Illustration rows with their chapter (src/story/ports/illustration-planner.ts),
 * readers' /illustrate requests become rows of their own, each within the
 * workspace's budgets; /character edits the cast's looks every later picture uses.
 * Each row is drawn by its own job after the text it belongs to
 * (src/story/illustration-job.ts): text is never held back by a picture.
 */
import { randomUUID } from "node:crypto";
import { artStyleFor, clip, VISUAL_LIMITS, type VisualCharacter } from "../art/visual-bible.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { ensureCounter, readCounter, takeCounter, takeUpTo } from "../store/counters.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import { COUNTER_KEYS, dayCountExpiry, startOfDayUtc } from "./counter-keys.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, upsertUser } from "./identity.ts";
import { enqueueIllustrations } from "./illustration-job.ts";
import type { Moderator } from "./moderation.ts";
import type { ChapterPictures, IllustrationPlanner, PlannedIllustration } from "./ports/illustration-planner.ts";
import type { WorkspaceSettingsStore } from "./workspace-settings.ts";

export interface IllustrationPlanningOptions {
  /** Whether an image model is configured (IMAGE_MODEL); without one nothing is illustrated. */
  available: boolean;
  /** Seconds a reader waits between two /illustrate requests. */
  cooldownSeconds: number;
}

export class IllustrationPlanning implements IllustrationPlanner {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    private readonly settings: WorkspaceSettingsStore,
    private readonly options: IllustrationPlanningOptions,
    private readonly moderator?: Moderator,
  ) {}

  /** Whether an image model is configured. */
  get available(): boolean {
    return this.options.available;
  }

  /**
   * The rows to create with a chapter being saved: the agent's proposals, within the
   * workspace's budgets (per chapter, per day). Chapter 1 always gets one (its first
   * proposal, else its opening), budgets allowing. Empty when illustrations are off.
   * The day's budget is taken here, before the chapter's transaction creates the rows:
   * a save that then fails costs the day a picture, and never adds one too many.
   */
  async planForChapter(input: ChapterPictures): Promise<PlannedIllustration[]> {
    if (!this.available) return [];
    const budget = await this.budgetOf(input.workspaceId);
    if (!budget.enabled) return [];
    const proposals = input.proposals.filter((p) => p.scene.trim() !== "");
    if (proposals.length === 0 && input.number === 1) {
      proposals.push({ scene: openingScene(input.text), characters: [] });
    }
    const wanted = Math.min(budget.perChapter, proposals.length);
    if (wanted <= 0) return [];
    const today = await this.imagesToday(input.workspaceId);
    const taken = await takeUpTo(this.db, today, wanted, budget.perDay);
    return proposals.slice(0, taken).map((p, i) => ({
      id: randomUUID(),
      storyId: input.storyId,
      chapterId: input.chapterId,
      source: "auto",
      scene: clip(p.scene, VISUAL_LIMITS.scene),
      characters: p.characters.slice(0, VISUAL_LIMITS.charactersPerImage),
      requestKey: `auto:${input.chapterId}:${i}`,
    }));
  }

  /** Start drawing (after the rows' transaction committed). */
  enqueue(ids: string[]): Promise<void> {
    return enqueueIllustrations(this.queue, ids);
  }

  /**
   * A reader's /illustrate: `what` to draw (default: the current chapter's key
   * moment). Refused with a reason when illustrations are off or not configured, the
   * reader asked too recently, or the day's budget is spent. `requestKey` makes a
   * repeated delivery of the same request a no-op.
   */
  async request(input: { storyId: string; actor: Actor; what?: string; requestKey: string }): Promise<void> {
    if (!this.available) throw new UserFacingError("illustrate.unavailable");
    const what = input.what?.trim() ?? "";
    if (what.length > VISUAL_LIMITS.scene) {
      throw new UserFacingError("error.sceneTooLong", { length: what.length, max: VISUAL_LIMITS.scene });
    }
    const story = await this.db.story.findUnique({
      where: { id: input.storyId },
      select: {
        workspaceId: true,
        rating: true,
        head: { select: { id: true, status: true, summary: true, text: true } },
      },
    });
    const head = story?.head;
    if (story == null || head == null) throw new UserFacingError("error.noStory");
    // The same request delivered again: it is being drawn already.
    if ((await this.db.illustration.count({ where: { requestKey: input.requestKey } })) > 0) return;
    if (head.status !== "done") throw new UserFacingError("error.busy");
    const budget = await this.budgetOf(story.workspaceId);
    if (!budget.enabled) throw new UserFacingError("illustrate.off");
    // Checked first for a quick answer, then taken in the transaction that creates the
    // row: two requests at once (two processes even) never both take the last picture.
    const today = await this.imagesToday(story.workspaceId);
    const user = await upsertUser(this.db, input.actor);
    const cooldownMs = this.options.cooldownSeconds * 1000;
    const cooldown = COUNTER_KEYS.illustrate(user.id);
    if (cooldownMs > 0) await ensureCounter(this.db, cooldown);
    const refusal = async (): Promise<UserFacingError | undefined> => {
      const drawn = await readCounter(this.db, today);
      if ((drawn?.count ?? 0) >= budget.perDay) {
        return new UserFacingError("illustrate.dailyLimit", { max: budget.perDay });
      }
      const last = cooldownMs > 0 ? await readCounter(this.db, cooldown) : null;
      const wait = last === null ? 0 : last.takenAt.getTime() + cooldownMs - Date.now();
      if (wait > 0) return new UserFacingError("illustrate.cooldown", { seconds: Math.ceil(wait / 1000) });
      return undefined;
    };
    const refused = await refusal();
    if (refused !== undefined) throw refused;
    if (what !== "") await this.moderator?.check(what, story.rating);
    const id = randomUUID();
    const now = new Date();
    try {
      await this.db.$transaction([
        takeCounter(this.db, today, { limit: budget.perDay, now }),
        ...(cooldownMs > 0 ? [takeCounter(this.db, cooldown, { cooldownMs, now })] : []),
        this.db.illustration.create({
          data: {
            id,
            storyId: input.storyId,
            chapterId: head.id,
            source: "request",
            scene: what !== "" ? what : clip(head.summary || openingScene(head.text), VISUAL_LIMITS.scene),
            characters: [],
            requestedById: user.id,
            requestKey: input.requestKey,
          },
          select: { id: true },
        }),
      ]);
    } catch (error) {
      // The same request delivered twice: the first one is being drawn.
      if (isPrismaError(error, "P2002")) return;
      // Another request took the last picture of the day, or started the cooldown, meanwhile.
      if (isPrismaError(error, "P2025")) throw (await refusal()) ?? error;
      throw error;
    }
    await this.enqueue([id]);
  }

  /** Resolves once no picture is being drawn or posted (the terminal waits before it says goodbye). */
  async settled(): Promise<void> {
    await this.queue.onIdle();
  }

  /** The story's art style and each character's fixed appearance. */
  async visualBible(storyId: string): Promise<{ artStyle: string; characters: VisualCharacter[] }> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        genre: true,
        artStyle: true,
        theme: { select: { artStyle: true } },
        characters: { orderBy: { createdAt: "asc" }, select: { name: true, appearance: true } },
      },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    return {
      artStyle: story.artStyle || artStyleFor(story.theme?.artStyle, story.genre),
      characters: story.characters,
    };
  }

  /**
   * /character: set a character's appearance (every later picture uses it). The name
   * matches a cast member (full name, else a unique part of one). Their old portrait
   * no longer matches, so the next picture becomes the new reference.
   */
  async setAppearance(storyId: string, name: string, appearance: string): Promise<VisualCharacter> {
    const text = appearance.trim();
    if (text === "") throw new UserFacingError("character.emptyAppearance");
    if (text.length > VISUAL_LIMITS.appearance) {
      throw new UserFacingError("character.tooLong", { length: text.length, max: VISUAL_LIMITS.appearance });
    }
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: { rating: true, characters: { select: { id: true, name: true, portraitId: true } } },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    const character = findCharacter(story.characters, name);
    if (character === undefined) {
      throw new UserFacingError("character.unknown", {
        name: name.trim(),
        cast: story.characters.map((c) => c.name).join(", ") || "—",
      });
    }
    await this.moderator?.check(text, story.rating);
    await this.db.$transaction([
      this.db.character.update({ where: { id: character.id }, data: { appearance: text }, select: { id: true } }),
      // Every picture showing the old look stops being a reference, for everyone in it.
      this.db.character.updateMany({
        where: character.portraitId === null ? { id: character.id } : { storyId, portraitId: character.portraitId },
        data: { portraitId: null },
      }),
    ]);
    return { name: character.name, appearance: text };
  }

  private async budgetOf(workspaceId: string): Promise<{ enabled: boolean; perChapter: number; perDay: number }> {
    const workspace = await this.db.workspace.findUnique({
      where: { id: workspaceId },
      select: { platform: true, externalId: true },
    });
    if (workspace === null) return { enabled: false, perChapter: 0, perDay: 0 };
    const s = await this.settings.get(workspace.platform, workspace.externalId);
    return { enabled: s.illustrations, perChapter: s.imagesPerChapter, perDay: s.imagesPerDay };
  }

  /**
   * The counter of the pictures asked for in this workspace today (failed ones are
   * given back: src/story/illustration-job.ts). A new one starts from the day's rows.
   */
  private async imagesToday(workspaceId: string): Promise<string> {
    const now = new Date();
    const key = COUNTER_KEYS.images(workspaceId, now);
    await ensureCounter(this.db, key, {
      seed: () =>
        this.db.illustration.count({
          where: { createdAt: { gte: startOfDayUtc(now) }, status: { not: "failed" }, story: { workspaceId } },
        }),
      expiresAt: dayCountExpiry(now),
    });
    return key;
  }
}

/** The chapter's first paragraph, as the scene of an opening picture. */
function openingScene(text: string): string {
  const first = text.split(/\n\s*\n/).find((p) => p.trim() !== "") ?? text;
  return clip(first.replace(/\s+/g, " "), VISUAL_LIMITS.scene);
}

/** A cast member by name: exact (case-insensitive), else the one partial match. */
export function findCharacter<T extends { name: string }>(cast: T[], name: string): T | undefined {
  const q = name.trim().toLowerCase();
  if (q === "") return undefined;
  const exact = cast.find((c) => c.name.toLowerCase() === q);
  if (exact !== undefined) return exact;
  const partial = cast.filter((c) => c.name.toLowerCase().split(/\s+/).includes(q) || c.name.toLowerCase().includes(q));
  return partial.length === 1 ? partial[0] : undefined;
}
