/**
 * Illustrations: the agent's key scenes and readers' /illustrate requests become
 * Illustration rows, each drawn by its own job after the text it belongs to (text is
 * never held back by a picture). The prompt comes from the visual bible (src/art):
 * the scene, each character's fixed appearance and the story's art style; a
 * character's first portrait is passed as the reference image where the endpoint
 * supports it.
 *
 * Nothing is lost or posted twice: the agent's rows are created in the same
 * transaction as their chapter; a job claims its row (pending -> drawing); the file
 * is saved before the row says done; the posted message id is recorded, and a row
 * that has one is never posted again. Rows left drawing by a crash are drawn again
 * on start-up.
 */
import { randomUUID } from "node:crypto";
import type { RunRecord, StoryAgent } from "../agent/types.ts";
import type { ImageClient } from "../art/image-client.ts";
import type { ImageStore } from "../art/image-store.ts";
import {
  artStyleFor,
  buildImagePrompt,
  captionFor,
  charactersInScene,
  clip,
  VISUAL_LIMITS,
  type VisualCharacter,
} from "../art/visual-bible.ts";
import type { Prisma } from "../generated/prisma/client.ts";
import { t } from "../i18n/messages.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { ModelError } from "../llm/types.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import type { AudienceResolver, ChapterPictures } from "./chapter-writer.ts";
import { UserFacingError } from "./errors.ts";
import type { Moderator } from "./moderation.ts";
import { runData } from "./run-data.ts";
import { type Actor, upsertUser } from "./story-service.ts";
import type { WorkspaceSettingsStore } from "./workspace-settings.ts";

export const ILLUSTRATION_JOB = "illustration";

export interface IllustrationJobPayload {
  illustrationId: string;
}

/** The story agent's `illustrate` task: a scene becomes the description of one picture. */
export type SceneDescriber = Pick<StoryAgent, "describeScene">;

export interface IllustrationOptions {
  /** Image size asked for (IMAGE_SIZE). */
  size: string;
  /** Seconds a reader waits between two /illustrate requests. */
  cooldownSeconds: number;
  log?: (message: string) => void;
}

/** A stored picture of a chapter, for exports. */
export interface StoredImage {
  chapterId: string;
  fileName: string;
  bytes: Uint8Array;
  mime: string;
  caption: string;
}

type NewIllustration = Prisma.IllustrationCreateManyInput;

function startOfDayUtc(now = new Date()): Date {
  const since = new Date(now);
  since.setUTCHours(0, 0, 0, 0);
  return since;
}

export class IllustrationService {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    /** Undefined when no IMAGE_MODEL is configured: nothing is illustrated. */
    private readonly images: ImageClient | undefined,
    private readonly store: ImageStore,
    private readonly settings: WorkspaceSettingsStore,
    private readonly audiences: AudienceResolver,
    private readonly options: IllustrationOptions,
    private readonly moderator?: Moderator,
    private readonly describer?: SceneDescriber,
  ) {}

  /** Whether an image model is configured. */
  get available(): boolean {
    return this.images !== undefined;
  }

  /**
   * The rows to create with a chapter being saved: the agent's proposals, within the
   * workspace's budgets (per chapter, per day). Chapter 1 always gets one (its first
   * proposal, else its opening), budgets allowing. Empty when illustrations are off.
   */
  async planForChapter(input: ChapterPictures): Promise<NewIllustration[]> {
    if (this.images === undefined) return [];
    const budget = await this.budgetOf(input.workspaceId);
    if (!budget.enabled) return [];
    const proposals = input.proposals.filter((p) => p.scene.trim() !== "");
    if (proposals.length === 0 && input.number === 1) {
      proposals.push({ scene: openingScene(input.text), characters: [] });
    }
    const left = Math.min(budget.perChapter, budget.perDay - (await this.drawnToday(input.workspaceId)));
    return proposals.slice(0, Math.max(0, left)).map((p, i) => ({
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
  async enqueue(ids: string[], attempt = ""): Promise<void> {
    for (const illustrationId of ids) {
      const key = `illustration:${illustrationId}${attempt === "" ? "" : `:${attempt}`}`;
      await this.queue.enqueue<IllustrationJobPayload>(ILLUSTRATION_JOB, { illustrationId }, { key });
    }
  }

  /**
   * A reader's /illustrate: `what` to draw (default: the current chapter's key
   * moment). Refused with a reason when illustrations are off or not configured, the
   * reader asked too recently, or the day's budget is spent. `requestKey` makes a
   * repeated delivery of the same request a no-op.
   */
  async request(input: { storyId: string; actor: Actor; what?: string; requestKey: string }): Promise<void> {
    if (this.images === undefined) throw new UserFacingError("illustrate.unavailable");
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
    if ((await this.drawnToday(story.workspaceId)) >= budget.perDay) {
      throw new UserFacingError("illustrate.dailyLimit", { max: budget.perDay });
    }
    const user = await upsertUser(this.db, input.actor);
    const cooldownMs = this.options.cooldownSeconds * 1000;
    if (cooldownMs > 0) {
      const last = await this.db.illustration.findFirst({
        where: { requestedById: user.id, source: "request" },
        orderBy: { createdAt: "desc" },
        select: { createdAt: true },
      });
      const wait = last === null ? 0 : last.createdAt.getTime() + cooldownMs - Date.now();
      if (wait > 0) throw new UserFacingError("illustrate.cooldown", { seconds: Math.ceil(wait / 1000) });
    }
    if (what !== "") await this.moderator?.check(what, story.rating);
    const id = randomUUID();
    try {
      await this.db.illustration.create({
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
      });
    } catch (error) {
      // The same request delivered twice: the first one is being drawn.
      if (isPrismaError(error, "P2002")) return;
      throw error;
    }
    await this.enqueue([id]);
  }

  /** The job: draw, store, then post once. Never throws for a model failure: the reader gets a note. */
  async run(payload: IllustrationJobPayload): Promise<void> {
    const { illustrationId } = payload;
    const claimed = await this.db.illustration.updateMany({
      where: { id: illustrationId, status: "pending" },
      data: { status: "drawing" },
    });
    const row = await this.db.illustration.findUnique({
      where: { id: illustrationId },
      include: {
        chapter: { select: { number: true, messageRefs: true } },
        story: {
          select: {
            id: true,
            title: true,
            premise: true,
            genre: true,
            rating: true,
            artStyle: true,
            conversationId: true,
            theme: { select: { artStyle: true } },
            characters: { orderBy: { createdAt: "asc" }, select: { name: true, appearance: true, portraitId: true } },
          },
        },
      },
    });
    if (row === null) return;
    // Drawn by an earlier delivery but not posted (a crash in between): post it now.
    if (claimed.count === 0) {
      if (row.status === "done" && row.messageRef === "") await this.post(row.id);
      return;
    }
    const { story } = row;
    const cast: VisualCharacter[] = story.characters;
    const named = Array.isArray(row.characters) ? row.characters.filter((c) => typeof c === "string") : [];
    const inScene = charactersInScene(row.scene, named, cast);
    const scene = await this.describe(row, story, inScene);
    const prompt = buildImagePrompt({
      scene,
      characters: inScene,
      artStyle: story.artStyle || artStyleFor(story.theme?.artStyle, story.genre),
      rating: story.rating,
    });
    const references = await this.references(story.characters.filter((c) => inScene.some((s) => s.name === c.name)));
    try {
      if (this.images === undefined) throw new ModelError("unreachable", "no image model is configured");
      const image = await this.images.generate({
        prompt,
        size: this.options.size,
        ...(references.length === 0 ? {} : { references }),
      });
      const file = this.store.save(story.id, `ch${row.chapter.number}-${row.id.slice(0, 8)}`, image.bytes, image.mime);
      await this.db.$transaction([
        this.db.illustration.update({
          where: { id: row.id },
          data: {
            status: "done",
            prompt,
            characters: inScene.map((c) => c.name),
            caption: captionFor(row.scene),
            model: image.model,
            baseUrl: image.baseUrl,
            size: this.options.size,
            file,
            mime: image.mime,
            referenced: image.usedReference,
          },
          select: { id: true },
        }),
        // A character's first picture becomes their portrait: the reference for every later one.
        this.db.character.updateMany({
          where: { storyId: story.id, name: { in: inScene.map((c) => c.name) }, portraitId: null },
          data: { portraitId: row.id },
        }),
      ]);
    } catch (error) {
      const kind = error instanceof ModelError ? error.kind : "internal";
      this.options.log?.(`illustration ${row.id} failed: ${error instanceof Error ? error.message : String(error)}`);
      await this.db.illustration.update({
        where: { id: row.id },
        data: { status: "failed", prompt, error: kind },
        select: { id: true },
      });
      const audience = await this.audiences(story.conversationId);
      if (audience !== undefined) {
        const reason = t(
          audience.locale,
          kind === "refused" ? "illustrate.refused" : kind === "timeout" ? "illustrate.slow" : "illustrate.down",
        );
        await audience.surface
          .notice(t(audience.locale, "illustrate.failed", { reason }))
          .catch((e: unknown) => this.options.log?.(`illustration note not shown: ${String(e)}`));
      }
      return;
    }
    await this.post(row.id);
  }

  /** Resolves once no picture is being drawn or posted (the terminal waits before it says goodbye). */
  async settled(): Promise<void> {
    await this.queue.onIdle();
  }

  /** Rows a crash left pending or drawing are drawn again; drawn but unposted ones are posted. */
  async recover(): Promise<number> {
    await this.db.illustration.updateMany({ where: { status: "drawing" }, data: { status: "pending" } });
    const rows = await this.db.illustration.findMany({
      where: { OR: [{ status: "pending" }, { status: "done", messageRef: "" }] },
      select: { id: true },
    });
    // A new key: the queue may remember the interrupted job's key (the row's state guards against doubles).
    await this.enqueue(
      rows.map((r) => r.id),
      `recovered-${Date.now()}`,
    );
    return rows.length;
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

  /** The stored pictures of these chapters, in drawing order (missing files are skipped). */
  async imagesOf(chapterIds: string[]): Promise<StoredImage[]> {
    const rows = await this.db.illustration.findMany({
      where: { chapterId: { in: chapterIds }, status: "done" },
      orderBy: { createdAt: "asc" },
      select: { chapterId: true, file: true, mime: true, caption: true },
    });
    const out: StoredImage[] = [];
    for (const row of rows) {
      const bytes = this.store.read(row.file);
      if (bytes === undefined) continue;
      out.push({
        chapterId: row.chapterId,
        fileName: row.file.split("/").at(-1) ?? row.file,
        bytes,
        mime: row.mime,
        caption: row.caption,
      });
    }
    return out;
  }

  /** Post a drawn picture where its story is shown, once. */
  private async post(illustrationId: string): Promise<void> {
    const row = await this.db.illustration.findUnique({
      where: { id: illustrationId },
      include: {
        chapter: { select: { number: true, messageRefs: true } },
        story: { select: { conversationId: true } },
      },
    });
    if (row === null || row.status !== "done" || row.messageRef !== "") return;
    const audience = await this.audiences(row.story.conversationId);
    const bytes = this.store.read(row.file);
    if (audience === undefined || bytes === undefined) return;
    const refs = Array.isArray(row.chapter.messageRefs)
      ? row.chapter.messageRefs.filter((r): r is string => typeof r === "string")
      : [];
    const last = refs.at(-1);
    const caption = t(audience.locale, "illustrate.caption", { number: row.chapter.number, caption: row.caption });
    try {
      const ref = await audience.surface.postImage({
        name: row.file.split("/").at(-1) ?? `${row.id}.png`,
        bytes,
        mime: row.mime,
        caption: clip(caption, VISUAL_LIMITS.caption),
        path: this.store.path(row.file),
        ...(last === undefined ? {} : { replyTo: { id: last } }),
      });
      await this.db.illustration.update({ where: { id: row.id }, data: { messageRef: ref.id }, select: { id: true } });
    } catch (error) {
      // Kept: the picture is stored and exported; the chat just did not take it.
      this.options.log?.(`illustration ${row.id}: could not post: ${String(error)}`);
    }
  }

  /**
   * The picture's scene line, written by the `illustrate` task (recorded as an agent run);
   * the scene as given when there is no describer or it fails: a picture never waits on it.
   */
  private async describe(
    row: { id: string; scene: string; chapterId: string },
    story: { id: string; title: string; premise: string },
    inScene: VisualCharacter[],
  ): Promise<string> {
    if (this.describer === undefined) return row.scene;
    let record: RunRecord | undefined;
    let description = row.scene;
    try {
      const described = await this.describer.describeScene({
        title: story.title,
        premise: story.premise,
        scene: row.scene,
        characters: inScene.map((c) => c.name),
      });
      record = described.run;
      description = described.description;
    } catch (error) {
      this.options.log?.(`illustration ${row.id}: scene kept as written (${String(error)})`);
    }
    if (record !== undefined) {
      await this.db.agentRun
        .createMany({ data: [runData(story.id, row.chapterId, record)] })
        .catch((error: unknown) => this.options.log?.(`illustration ${row.id}: run not recorded: ${String(error)}`));
    }
    return description;
  }

  private async references(characters: { portraitId: string | null }[]): Promise<Uint8Array[]> {
    const ids = [...new Set(characters.map((c) => c.portraitId).filter((id): id is string => id !== null))];
    if (ids.length === 0) return [];
    const rows = await this.db.illustration.findMany({
      where: { id: { in: ids }, status: "done" },
      select: { file: true },
    });
    return rows.map((r) => this.store.read(r.file)).filter((b): b is Uint8Array => b !== undefined);
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

  /** Pictures asked for in this workspace today (failed ones do not count). */
  private drawnToday(workspaceId: string): Promise<number> {
    return this.db.illustration.count({
      where: { createdAt: { gte: startOfDayUtc() }, status: { not: "failed" }, story: { workspaceId } },
    });
  }
}

/** The chapter's first paragraph, as the scene of an opening picture. */
function openingScene(text: string): string {
  const first = text.split(/\n\s*\n/).find((p) => p.trim() !== "") ?? text;
  return clip(first.replace(/\s+/g, " "), VISUAL_LIMITS.scene);
}

function findCharacter<T extends { name: string }>(cast: T[], name: string): T | undefined {
  const q = name.trim().toLowerCase();
  if (q === "") return undefined;
  const exact = cast.find((c) => c.name.toLowerCase() === q);
  if (exact !== undefined) return exact;
  const partial = cast.filter((c) => c.name.toLowerCase().split(/\s+/).includes(q) || c.name.toLowerCase().includes(q));
  return partial.length === 1 ? partial[0] : undefined;
}
