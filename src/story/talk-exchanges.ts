/**
 * /talk exchanges and their ratings as reaction rows (see ./talk.ts): read by the chapter
 * input (a reader's next action may cite their latest exchange) and by the training export
 * (a talk run's outcome is its ratings).
 */
import type { TalkExchange } from "../agent/types.ts";
import type { Db } from "../store/db.ts";

/** A reply's ratings, as `rating` reactions for the shared tally (each reader's latest). */
export function talkRatingsOf(rows: { kind: string; data: unknown }[], runId: string) {
  return rows
    .filter((r) => r.kind === "talk-rating" && (r.data as { runId?: unknown } | null)?.runId === runId)
    .map((r) => ({ kind: "rating", data: r.data }));
}

/**
 * The reader's latest /talk exchange after `chapterId`, if any: what their next action may
 * cite (the chapter written from that action gets it, marked as not canon).
 */
export async function latestTalk(
  db: Pick<Db, "reaction">,
  chapterId: string,
  userId: string,
): Promise<TalkExchange | undefined> {
  const rows = await db.reaction.findMany({
    where: { chapterId, kind: "talk" },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    select: { data: true },
  });
  for (const { data } of rows) {
    const d = data as Partial<Record<"userId" | "character" | "message" | "reply", unknown>> | null;
    if (d?.userId !== userId) continue;
    if (typeof d.character === "string" && typeof d.message === "string" && typeof d.reply === "string") {
      return { character: d.character, message: d.message, reply: d.reply };
    }
  }
  return undefined;
}
