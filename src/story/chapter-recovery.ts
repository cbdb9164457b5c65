/**
 * Start-up recovery of chapters: after a crash or restart, chapters left pending or
 * half-written are enqueued again (pictures: IllustrationJob.recover; parts to
 * repair: PartsRepairer.recover).
 */
import type { JobQueue } from "../jobs/job-queue.ts";
import type { Db } from "../store/db.ts";
import { BUSY, enqueueChapter } from "./chapter-job.ts";

export class ChapterRecovery {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
  ) {}

  /**
   * Chapters left pending or half-written are written again, with no reader action. A
   * chapter that had begun continues from the messages it had shown (its saved
   * progress): no second copy, its choices offered once. Call once the conversations
   * can be reached (adapters registered). Returns how many.
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
    for (const row of rows) {
      await enqueueChapter(this.queue, {
        storyId: row.storyId,
        chapterId: row.id,
        number: row.number,
        revision: row.story.revision,
      });
    }
    return rows.length;
  }
}
