/**
 * The chapter job as the story commands and start-up recovery enqueue it: its name,
 * payload and idempotency key, and the ticket a request gets back. The job itself is
 * src/story/chapter-writer.ts.
 */
import type { EnqueuedJob, JobQueue } from "../jobs/job-queue.ts";

export const CHAPTER_JOB = "chapter";

export interface ChapterJobPayload {
  chapterId: string;
  /**
   * The story's revision the job was queued at (the `r<revision>` of its key). Nothing
   * changes a story while its head chapter is busy, so the chapter is this job's only
   * while its story is still at this revision. Absent in jobs queued by older versions.
   */
  revision?: number;
  /** Queued by start-up recovery: the chapter may be left `writing` by a process that died. */
  resume?: boolean;
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

/** Chapter statuses of a chapter still to be written: nothing else may change its story meanwhile. */
export const BUSY: ReadonlySet<string> = new Set(["pending", "writing"]);

/**
 * Enqueue the chapter job under the key `chapter:<id>:r<revision>`: a doubled request
 * (same revision) enqueues it once, and so does recovery for a chapter whose job a
 * shared queue still holds (waiting, or running in another process).
 */
export async function enqueueChapter(
  queue: JobQueue,
  chapter: { storyId: string; chapterId: string; number: number; revision: number; resume?: boolean },
): Promise<WriteTicket> {
  const { storyId, chapterId, number, revision } = chapter;
  const job = await queue.enqueue<ChapterJobPayload>(
    CHAPTER_JOB,
    { chapterId, revision, ...(chapter.resume === true ? { resume: true } : {}) },
    { key: `chapter:${chapterId}:r${revision}` },
  );
  return { storyId, chapterId, number, job };
}
