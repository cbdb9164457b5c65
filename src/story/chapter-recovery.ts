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
   * can be reached (adapters registered). Returns how many jobs it queued.
   *
   * Never steals a chapter: statuses are left as they are, and the job is enqueued
   * under the chapter's own key, so the job takes a `writing` chapter over only when
   * this enqueue created it. On a shared queue, a chapter another process is writing
   * (or whose job waits there) still has its job, and enqueueing it again changes
   * nothing; a job given up for good has marked its chapter failed (its `failed` hook).
   */
  async resumeInterrupted(): Promise<number> {
    const rows = await this.db.chapter.findMany({
      where: { status: { in: [...BUSY] } },
      select: { id: true, storyId: true, number: true, story: { select: { revision: true } } },
    });
    let queued = 0;
    for (const row of rows) {
      const { job } = await enqueueChapter(this.queue, {
        storyId: row.storyId,
        chapterId: row.id,
        number: row.number,
        revision: row.story.revision,
        resume: true,
      });
      if (job.created) queued++;
    }
    return queued;
  }
}
