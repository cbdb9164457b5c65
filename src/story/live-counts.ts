/**
 * What a ballot's message shows, and when it is edited. A ballot's look (its offer with live
 * counts, or decided with its result) is built from its row here, once. Live counts are
 * drawn in one trailing edit per ballot at most every `intervalMs` (3 s), however many votes
 * came in meanwhile, and not at all when the message already shows them: a caller that drew
 * the look in its answer to a press (Discord's update callback, outside the bot's request
 * budget) says so (`drawn`), and the edit finds nothing to do.
 *
 * The edits are due in memory: a process that stops drops them, and the next vote or the
 * close draws the ballot again. What this process drew is remembered per ballot (at most
 * 10 000 ballots), so another process's edit may be drawn once more, never a wrong count.
 */
import type { ChoiceOffer, ChoiceResult, OfferRedraw } from "../render/surface.ts";
import type { Db } from "../store/db.ts";
import type { AudienceResolver } from "./ports/audience.ts";

/** A ballot's chapter: where it is shown, its choices and its votes (include it to read a `BallotView`). */
export const BALLOT_INCLUDE = {
  chapter: {
    select: {
      story: { select: { conversationId: true } },
      choices: { orderBy: { position: "asc" as const }, select: { id: true, label: true } },
      votes: { select: { choiceId: true } },
    },
  },
};

/** A ballot row with `BALLOT_INCLUDE`. */
export interface BallotView {
  id: string;
  storyId: string;
  chapterId: string;
  revision: number;
  /** open | closed */
  status: string;
  closesAt: Date | null;
  messageRef: string;
  winner: number | null;
  tieBroken: boolean;
  chapter: {
    story: { conversationId: string };
    choices: { id: string; label: string }[];
    votes: { choiceId: string }[];
  };
}

export interface Tally {
  labels: string[];
  counts: number[];
  total: number;
}

export function tallyOf(ballot: Pick<BallotView, "chapter">): Tally {
  const { choices, votes } = ballot.chapter;
  const counts = choices.map((c) => votes.filter((v) => v.choiceId === c.id).length);
  return { labels: choices.map((c) => c.label), counts, total: votes.length };
}

/** The ballot's offer with its live counts and deadline. */
export function ballotOffer(ballot: BallotView, tally: Tally): ChoiceOffer {
  return {
    storyId: ballot.storyId,
    revision: ballot.revision,
    chapterId: ballot.chapterId,
    choices: tally.labels,
    allowWriteIn: true,
    mode: "vote",
    counts: tally.counts,
    closesAt: ballot.closesAt,
  };
}

/** The decided look of a closed ballot, rebuilt from its row and votes (undefined without a winner or a message). */
export function decidedRedraw(ballot: BallotView): OfferRedraw | undefined {
  if (ballot.winner === null || ballot.messageRef === "") return undefined;
  const tally = tallyOf(ballot);
  const best = Math.max(...tally.counts);
  const result: ChoiceResult = {
    chosen: ballot.winner,
    label: tally.labels[ballot.winner - 1] ?? "",
    counts: tally.counts,
    ...(ballot.tieBroken ? { tiedWith: tally.counts.flatMap((c, i) => (c === best ? [i + 1] : [])) } : {}),
  };
  return { ref: { id: ballot.messageRef }, offer: ballotOffer(ballot, tally), result };
}

/** Ballots whose last drawn look is remembered (the oldest are forgotten first). */
const MAX_REMEMBERED = 10_000;

export interface LiveCountOptions {
  /** At most one live-count edit per ballot this often (default 3000 ms). */
  intervalMs?: number;
  log?: (message: string) => void;
}

export class LiveCounts {
  /** Trailing edits due, per ballot. */
  private readonly due = new Map<string, ReturnType<typeof setTimeout>>();
  /** What each ballot's message shows, as far as this process drew it (`signature`). */
  private readonly shown = new Map<string, string>();
  private readonly intervalMs: number;

  constructor(
    private readonly db: Db,
    private readonly audiences: AudienceResolver,
    private readonly options: LiveCountOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 3000;
  }

  /** The counts changed (a vote, a write-in): one trailing edit per interval shows them, with later votes. */
  changed(ballotId: string, storyId: string): void {
    if (this.due.has(ballotId)) return;
    const timer = setTimeout(() => {
      this.due.delete(ballotId);
      void this.draw(ballotId, storyId).catch((error: unknown) => {
        this.options.log?.(`ballot ${ballotId}: live count not shown: ${String(error)}`);
      });
    }, this.intervalMs);
    timer.unref?.();
    this.due.set(ballotId, timer);
  }

  /** The ballot's message shows `offer` (drawn by the caller, in its answer to a press). */
  drawn(ballotId: string, offer: ChoiceOffer): void {
    this.shown.delete(ballotId);
    this.shown.set(ballotId, signature(offer));
    for (const key of this.shown.keys()) {
      if (this.shown.size <= MAX_REMEMBERED) break;
      this.shown.delete(key);
    }
  }

  /** The ballot closed: its closing edit shows the result, no live count is due. */
  forget(ballotId: string): void {
    const timer = this.due.get(ballotId);
    if (timer !== undefined) clearTimeout(timer);
    this.due.delete(ballotId);
    this.shown.delete(ballotId);
  }

  /** Drop the edits due (shutdown). */
  dispose(): void {
    for (const timer of this.due.values()) clearTimeout(timer);
    this.due.clear();
  }

  /**
   * Draw the open ballot's current counts unless its message shows them already. A close
   * that raced this edit (in this process or another) is drawn again over it.
   */
  private async draw(ballotId: string, storyId: string): Promise<void> {
    const ballot: BallotView | null = await this.db.ballot.findFirst({
      where: { id: ballotId, storyId, status: "open", chapter: { headOf: { id: storyId } } },
      include: BALLOT_INCLUDE,
    });
    if (ballot === null || ballot.messageRef === "") return;
    const offer = ballotOffer(ballot, tallyOf(ballot));
    if (this.shown.get(ballotId) === signature(offer)) return;
    const audience = await this.audiences(ballot.chapter.story.conversationId);
    if (audience === undefined) return;
    await audience.surface.updateChoices({ id: ballot.messageRef }, offer);
    this.drawn(ballotId, offer);
    const now: BallotView | null = await this.db.ballot.findUnique({
      where: { id: ballotId },
      include: BALLOT_INCLUDE,
    });
    if (now === null || now.status !== "closed") return;
    const closed = decidedRedraw(now);
    if (closed?.result !== undefined) await audience.surface.closeChoices(closed.ref, closed.offer, closed.result);
  }
}

/** What an open offer shows: two offers with the same signature look the same. */
function signature(offer: ChoiceOffer): string {
  return JSON.stringify([offer.choices, offer.counts, offer.closesAt?.getTime() ?? null]);
}
