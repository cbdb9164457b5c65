/**
 * Reactions: what readers did after a chapter (chose, voted, acted, undid, rewrote,
 * branched, rated). Append-only rows, the outcome of the agent runs that wrote the
 * chapter (FireAct's reward signal).
 */
import type { Db } from "../store/db.ts";

export interface ReactionInput {
  /**
   * `talk`: a reader's /talk exchange after this chapter (`{ runId, userId, character,
   * message, reply }`); `talk-rating`: a reader's 👍/👎 on one (`{ runId, userId, value }`),
   * the outcome of that talk run, not of the chapter.
   */
  kind: "choice" | "vote" | "action" | "undo" | "rewrite" | "branch" | "rating" | "talk" | "talk-rating";
  data: Record<string, unknown>;
}

/** The insert of one reaction, to run alone or inside a batch transaction. */
export function recordReaction(db: Pick<Db, "reaction">, chapterId: string, reaction: ReactionInput) {
  return db.reaction.create({
    data: { chapterId, kind: reaction.kind, data: reaction.data as object },
    select: { id: true },
  });
}
