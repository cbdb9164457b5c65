/**
 * The guard every story command goes through: a request names the revision it was
 * based on, the head chapter must not be being written, and the change moves the head
 * with a compare-and-set on the revision, in one transaction.
 */
import { type Db, isPrismaError, type PrismaPromise } from "../store/db.ts";
import { BUSY } from "./chapter-job.ts";
import { UserFacingError } from "./errors.ts";

/** The story's head chapter as the commands see it, with its choices and the story's rating. */
export interface HeadChapter {
  id: string;
  parentId: string | null;
  number: number;
  status: string;
  action: string;
  /** The author's note in effect here (a chapter asked for from this head inherits it). */
  authorNote: string;
  choices: { label: string }[];
  /** The story's content rating (moderation checks a reader's action against it). */
  rating: string;
}

export class StoryRevisions {
  constructor(private readonly db: Db) {}

  /**
   * The story's revision and head chapter (with its choices). A request based on
   * another revision is stale (checked first: a double click is "no longer open",
   * not "busy"); then the head must not be being written.
   */
  async idleHead(
    storyId: string,
    expectedRevision?: number,
  ): Promise<{ story: { revision: number }; head: HeadChapter }> {
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
            authorNote: true,
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
  async commit(storyId: string, revision: number, headId: string, writes: PrismaPromise<unknown>[]): Promise<void> {
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
}
