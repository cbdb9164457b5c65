/**
 * The background repair of a chapter kept without its structured parts (the model's
 * structured output failed on every strategy after the prose was written). The reader
 * keeps reading and choosing; this asks for the title, summary and bible updates again
 * and fills them in. The choices the readers were offered stay as they are.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { mergeState } from "../agent/story-state.ts";
import type { Method, StoryAgent } from "../agent/types.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { retryDelayMs } from "../llm/retry.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import { runData } from "./run-data.ts";
import { buildSnapshot, loadChain, loadStoryWithCanon, stateOf } from "./snapshot.ts";

export const REPAIR_JOB = "chapter-repair";

export interface RepairJobPayload {
  chapterId: string;
}

export interface PartsRepairerOptions {
  method: Method;
  /** Tries per job before it waits for the next start (default 3). */
  attempts?: number;
  /** First backoff step between tries (default 1 s). */
  baseMs?: number;
  log?: (message: string) => void;
}

export class PartsRepairer {
  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly queue: JobQueue,
    private readonly options: PartsRepairerOptions,
  ) {}

  /** Queue the repair of a chapter (idempotent per chapter). */
  async enqueue(chapterId: string): Promise<void> {
    await this.queue.enqueue<RepairJobPayload>(REPAIR_JOB, { chapterId }, { key: `repair:${chapterId}` });
  }

  /** At start-up: queue every chapter still waiting for its parts. Returns how many. */
  async recover(): Promise<number> {
    const rows = await this.db.chapter.findMany({ where: { needsRepair: true, status: "done" }, select: { id: true } });
    for (const row of rows) await this.enqueue(row.id);
    return rows.length;
  }

  /** The job handler. */
  async run({ chapterId }: RepairJobPayload): Promise<void> {
    const attempts = Math.max(1, this.options.attempts ?? 3);
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        await this.repair(chapterId);
        return;
      } catch (error) {
        this.options.log?.(`chapter ${chapterId}: repairing its parts failed (try ${attempt + 1}): ${String(error)}`);
        if (attempt + 1 < attempts) await sleep(retryDelayMs(attempt, { baseMs: this.options.baseMs ?? 1000 }));
      }
    }
  }

  private async repair(chapterId: string): Promise<void> {
    const chapter = await this.db.chapter.findUnique({ where: { id: chapterId } });
    if (chapter === null || !chapter.needsRepair || chapter.status !== "done") return;
    const story = await loadStoryWithCanon(this.db, chapter.storyId);
    if (story === null) return;
    const chain = await loadChain(this.db, story.id, chapter.parentId);
    const { parts, runs } = await this.agent.repairParts({
      story: buildSnapshot(story, chain),
      chapterNumber: chapter.number,
      text: chapter.text,
      method: this.options.method,
    });
    const known = new Set(story.characters.map((c) => c.name));
    const fresh = parts.bibleUpdates.characters.filter((c) => !known.has(c.name) && known.add(c.name));
    try {
      await this.db.$transaction([
        // Only once: a second delivery finds the flag cleared and changes nothing.
        this.db.chapter.update({
          where: { id: chapterId, needsRepair: true },
          data: {
            title: parts.chapterTitle,
            summary: parts.summary,
            bibleUpdates: { facts: parts.bibleUpdates.facts },
            ...(parts.arc === undefined ? {} : { arc: { beats: parts.arc.beats, openThreads: parts.arc.openThreads } }),
            ...(parts.state === undefined ? {} : { state: mergeState(stateOf(chain), parts.state) as object }),
            needsRepair: false,
          },
          select: { id: true },
        }),
        ...(fresh.length === 0
          ? []
          : [
              this.db.character.createMany({
                data: fresh.map((c) => ({ storyId: story.id, name: c.name, role: c.role, appearance: c.appearance })),
              }),
            ]),
        this.db.agentRun.createMany({ data: runs.map((run) => runData(story.id, chapterId, run)) }),
      ]);
    } catch (error) {
      // Repaired meanwhile (a second delivery): nothing to do.
      if (isPrismaError(error, "P2025")) return;
      throw error;
    }
  }
}
