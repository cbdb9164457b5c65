/**
 * The illustration job: draws one planned picture, stores it, then posts it once
 * where its story is shown; and, on start-up, redraws or posts what a crash
 * interrupted. The prompt comes from the visual bible (src/art): the scene, each
 * character's fixed appearance and the story's art style; a character's first
 * portrait is passed as the reference image where the endpoint supports it.
 *
 * Nothing is lost or posted twice: a job claims its row (pending -> drawing); the file
 * is saved before the row says done; the posted message id is recorded, and a row
 * that has one is never posted again. Planning (which rows exist) is
 * src/story/illustration-planning.ts.
 */
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
import { t } from "../i18n/messages.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { ModelError } from "../llm/types.ts";
import { giveBackCounter } from "../store/counters.ts";
import type { Db } from "../store/db.ts";
import { COUNTER_KEYS } from "./counter-keys.ts";
import type { AudienceResolver } from "./ports/audience.ts";
import { runData } from "./run-data.ts";

export const ILLUSTRATION_JOB = "illustration";

export interface IllustrationJobPayload {
  illustrationId: string;
}

/** The story agent's `illustrate` task: a scene becomes the description of one picture. */
export type SceneDescriber = Pick<StoryAgent, "describeScene">;

export interface IllustrationJobOptions {
  /** Image size asked for (IMAGE_SIZE). */
  size: string;
  log?: (message: string) => void;
}

/**
 * Enqueue one drawing job per row (after the rows' transaction committed). `attempt`
 * makes a new key, for rows whose earlier job the queue may still remember.
 */
export async function enqueueIllustrations(queue: JobQueue, ids: string[], attempt = ""): Promise<void> {
  for (const illustrationId of ids) {
    const key = `illustration:${illustrationId}${attempt === "" ? "" : `:${attempt}`}`;
    await queue.enqueue<IllustrationJobPayload>(ILLUSTRATION_JOB, { illustrationId }, { key });
  }
}

export class IllustrationJob {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    /** Undefined when no IMAGE_MODEL is configured: a job that runs anyway fails its row. */
    private readonly images: ImageClient | undefined,
    private readonly store: ImageStore,
    private readonly audiences: AudienceResolver,
    private readonly options: IllustrationJobOptions,
    private readonly describer?: SceneDescriber,
  ) {}

  /**
   * The job: draw, store, then post once. Never throws for a model failure: the reader gets
   * a note. `attempt` > 1: the queue started this job again after its worker stopped (a
   * crash, a lost lock), so a picture left `drawing` is this job's own and is taken over.
   */
  async run(payload: IllustrationJobPayload, attempt = 1): Promise<void> {
    const { illustrationId } = payload;
    const claimed = await this.db.illustration.updateMany({
      where: { id: illustrationId, status: attempt > 1 ? { in: ["pending", "drawing"] } : "pending" },
      data: { status: "drawing" },
    });
    const row = await this.db.illustration.findUnique({
      where: { id: illustrationId },
      include: {
        chapter: { select: { number: true, messageRefs: true } },
        story: {
          select: {
            id: true,
            workspaceId: true,
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
      await this.fail(row.id, { prompt, kind });
      return;
    }
    await this.post(row.id);
  }

  /**
   * The `failed` hook of the picture job: the queue gave it up for good (its worker died
   * more often than the stalled check allows, or its retries ran out). A picture still
   * `pending` or `drawing` is marked failed, its day's budget given back and its readers
   * told once, as when the image endpoint fails; a picture drawn (or failed) meanwhile is
   * left alone. Without it, the row would wait for ever: recovery next to live workers
   * leaves a `drawing` picture to its job.
   */
  async abandon(payload: IllustrationJobPayload, reason: string): Promise<void> {
    if (await this.fail(payload.illustrationId, { kind: "internal", from: ["pending", "drawing"] })) {
      this.options.log?.(`illustration ${payload.illustrationId} failed: its job was given up (${reason})`);
    }
  }

  /**
   * Mark a picture failed (from `from`, default `drawing`), give its budget back and tell
   * its readers; false when it was no longer there to fail (done, or failed already).
   */
  private async fail(
    illustrationId: string,
    failure: { kind: string; prompt?: string; from?: string[] },
  ): Promise<boolean> {
    const row = await this.db.illustration.findUnique({
      where: { id: illustrationId },
      select: { id: true, createdAt: true, story: { select: { workspaceId: true, conversationId: true } } },
    });
    if (row === null) return false;
    // Failed and its budget given back together: a failed picture does not count against its day's budget.
    const marked = await this.db.$transaction(async (tx) => {
      const { count } = await tx.illustration.updateMany({
        where: { id: row.id, status: { in: failure.from ?? ["drawing"] } },
        data: {
          status: "failed",
          error: failure.kind,
          ...(failure.prompt === undefined ? {} : { prompt: failure.prompt }),
        },
      });
      if (count > 0) await giveBackCounter(tx, COUNTER_KEYS.images(row.story.workspaceId, row.createdAt));
      return count > 0;
    });
    if (!marked) return false;
    const audience = await this.audiences(row.story.conversationId);
    if (audience !== undefined) {
      const reason = t(
        audience.locale,
        failure.kind === "refused"
          ? "illustrate.refused"
          : failure.kind === "timeout"
            ? "illustrate.slow"
            : "illustrate.down",
      );
      await audience.surface
        .notice(t(audience.locale, "illustrate.failed", { reason }))
        .catch((e: unknown) => this.options.log?.(`illustration note not shown: ${String(e)}`));
    }
    return true;
  }

  /**
   * After a crash or restart: rows left pending or drawing are drawn again; drawn but
   * unposted ones are posted. Returns how many.
   */
  async recover(options: { shared?: boolean } = {}): Promise<number> {
    if (options.shared === true) {
      // Other workers may be drawing right now: a picture left `drawing` belongs to its job,
      // which the queue hands to another worker if its own stopped. Only pictures whose job
      // may never have been queued are queued again, under their first key (a no-op when
      // that job exists).
      const rows = await this.db.illustration.findMany({ where: { status: "pending" }, select: { id: true } });
      await enqueueIllustrations(
        this.queue,
        rows.map((r) => r.id),
      );
      return rows.length;
    }
    // One process, restarted: whatever was drawing was this process's, and is drawn again.
    await this.db.illustration.updateMany({ where: { status: "drawing" }, data: { status: "pending" } });
    const rows = await this.db.illustration.findMany({
      where: { OR: [{ status: "pending" }, { status: "done", messageRef: "" }] },
      select: { id: true },
    });
    // A new key: the queue may remember the interrupted job's key (the row's state guards against doubles).
    await enqueueIllustrations(
      this.queue,
      rows.map((r) => r.id),
      `recovered-${Date.now()}`,
    );
    return rows.length;
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
}
