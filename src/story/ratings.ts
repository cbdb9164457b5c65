/**
 * Readers' 👍 / 👎 on finished chapters: append-only `rating` reactions (a reader's
 * latest counts), a training signal for the runs that wrote the chapter.
 */
import type { Db } from "../store/db.ts";
import { latestRatings } from "../training/score.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, type Conversation, conversationKey, upsertUser } from "./identity.ts";
import { recordReaction } from "./reactions.ts";

export class ChapterRatings {
  constructor(private readonly db: Db) {}

  /**
   * A reader's thumbs up (1) or down (-1) on a finished chapter: an append-only
   * `rating` reaction; a reader's latest rating counts. Refused for a chapter of a
   * story shown elsewhere. Returns the chapter's tally.
   */
  async rate(input: {
    chapterId: string;
    actor: Actor;
    value: 1 | -1;
    conversation: Conversation;
  }): Promise<{ up: number; down: number }> {
    const chapter = await this.db.chapter.findUnique({
      where: { id: input.chapterId },
      select: { status: true, story: { select: { conversationId: true } } },
    });
    if (chapter === null || chapter.status !== "done") throw new UserFacingError("error.stalePick");
    if (chapter.story.conversationId !== conversationKey(input.conversation)) {
      throw new UserFacingError("error.notYourStory");
    }
    const user = await upsertUser(this.db, input.actor);
    await recordReaction(this.db, input.chapterId, { kind: "rating", data: { value: input.value, userId: user.id } });
    return ratingTally(
      await this.db.reaction.findMany({
        where: { chapterId: input.chapterId, kind: "rating" },
        orderBy: { createdAt: "asc" },
        select: { data: true },
      }),
    );
  }
}

/** Each reader's latest rating, counted, from a chapter's `rating` reaction rows (oldest first). */
export function ratingTally(rows: { data: unknown }[]): { up: number; down: number } {
  return latestRatings(rows.map((r) => ({ kind: "rating", data: r.data })));
}
