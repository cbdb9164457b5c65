/**
 * A chapter's progress while it is written, saved as it is shown, so that a restart
 * resumes it: the messages posted so far (ids and text), whether the prose is complete,
 * and an opening's story plan. A resumed chapter continues those messages (no second
 * copy) from the prose they hold.
 */
import type { AgentInput, PlannedStory } from "../agent/types.ts";
import type { Prisma } from "../generated/prisma/client.ts";
import type { RenderedMessage } from "../render/stream-renderer.ts";
import type { Db } from "../store/db.ts";

export interface ChapterProgress {
  messages: { id: string; text: string }[];
  /** The prose was finished; only the structured parts remained. */
  complete: boolean;
  story?: PlannedStory;
}

/** The saved progress, or undefined when there is none (or it is unreadable). */
export function parseProgress(value: unknown): ChapterProgress | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const o = value as Record<string, unknown>;
  const messages = Array.isArray(o.messages)
    ? o.messages.filter(
        (m): m is { id: string; text: string } =>
          typeof m === "object" && m !== null && typeof m.id === "string" && typeof m.text === "string",
      )
    : [];
  const story = typeof o.story === "object" && o.story !== null ? (o.story as PlannedStory) : undefined;
  if (messages.length === 0 && story === undefined) return undefined;
  return { messages, complete: o.complete === true && messages.length > 0, ...(story === undefined ? {} : { story }) };
}

/**
 * What the agent continues from: the prose the messages show (without the chapter's
 * heading). Messages were split at paragraph breaks, so they join with one.
 */
export function resumeFrom(progress: ChapterProgress, heading: string): NonNullable<AgentInput["resume"]> {
  const shown = progress.messages.map((m) => m.text).join("\n\n");
  const prose = shown.startsWith(heading) ? shown.slice(heading.length) : shown;
  return {
    prose,
    complete: progress.complete,
    ...(progress.story === undefined ? {} : { story: progress.story }),
  };
}

/**
 * Saves progress as the chapter is shown: one write at a time, the latest state wins,
 * and only while the chapter is being written (a chapter saved or failed meanwhile is
 * never overwritten).
 */
export class ProgressSaver {
  #state: ChapterProgress;
  #dirty = false;
  #running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly chapterId: string,
    initial: ChapterProgress | undefined,
    private readonly log?: (message: string) => void,
  ) {
    this.#state = initial ?? { messages: [], complete: false };
  }

  /** The messages as the surface shows them now. */
  shown(messages: RenderedMessage[]): void {
    this.#state = { ...this.#state, messages: messages.map((m) => ({ id: m.ref.id, text: m.text })) };
    this.save();
  }

  /** An opening's plan: a restart writes from the same plan. */
  planned(story: PlannedStory): void {
    this.#state = { ...this.#state, story };
    this.save();
  }

  /** The prose is finished. */
  complete(): void {
    if (this.#state.complete) return;
    this.#state = { ...this.#state, complete: true };
    this.save();
  }

  /** Wait for the last write. */
  async settle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  private save(): void {
    this.#dirty = true;
    this.#running ??= this.loop();
  }

  private async loop(): Promise<void> {
    while (this.#dirty) {
      this.#dirty = false;
      const state = this.#state;
      try {
        await this.db.chapter.updateMany({
          where: { id: this.chapterId, status: "writing" },
          data: { progress: state as unknown as Prisma.InputJsonValue },
        });
      } catch (error) {
        // A restart then resumes from an earlier point: a little text is shown again.
        this.log?.(`chapter ${this.chapterId}: progress not saved: ${String(error)}`);
      }
    }
    this.#running = undefined;
  }
}
