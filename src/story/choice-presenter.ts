/**
 * Offers a chapter's choices where its story is shown: a vote (with its ballot) where
 * members vote, buttons to pick elsewhere; then plans each choice ahead (PREPLAN).
 * One instance, built at wiring and given to the chapter writer (a chapter just
 * written) and the story queries (choices offered again after an undo, a branch or
 * a resume).
 */
import type { ChoiceOffer } from "../render/surface.ts";
import type { Db } from "../store/db.ts";
import type { Audience, AudienceResolver } from "./ports/audience.ts";
import type { BallotOpener } from "./ports/ballot-opener.ts";
import type { Preplanner } from "./preplanner.ts";
import { SILENT_AUDIENCE } from "./silent-audience.ts";

export interface ChoicePresenterOptions {
  /** Logs operator-facing problems (never secrets). */
  log?: (message: string) => void;
  /** Speculative planning of offered choices (PREPLAN on). */
  preplanner?: Pick<Preplanner, "planChoices">;
}

export class ChoicePresenter {
  constructor(
    private readonly db: Db,
    private readonly audiences: AudienceResolver,
    private readonly options: ChoicePresenterOptions = {},
    /** Opens the ballot where members vote; without it a vote is offered but never counted. */
    private readonly ballots?: BallotOpener,
  ) {}

  /**
   * Offer the head chapter's choices again where the story is shown (after an
   * undo, a branch or a resume): a new ballot where members vote, buttons to pick
   * elsewhere. Returns false when there is nothing to offer.
   */
  async reoffer(storyId: string): Promise<boolean> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        id: true,
        revision: true,
        ownerId: true,
        conversationId: true,
        head: {
          select: { id: true, status: true, choices: { orderBy: { position: "asc" }, select: { label: true } } },
        },
      },
    });
    const head = story?.head;
    if (story == null || head == null || head.status !== "done" || head.choices.length === 0) return false;
    const audience = (await this.audiences(story.conversationId)) ?? SILENT_AUDIENCE;
    await this.present(
      audience,
      story,
      head.id,
      head.choices.map((c) => c.label),
    );
    this.planAhead(story.id);
    return true;
  }

  /** While the readers read (or vote), plan each offered choice ahead (PREPLAN). */
  planAhead(storyId: string): void {
    this.options.preplanner
      ?.planChoices(storyId)
      .catch((error: unknown) => this.options.log?.(`story ${storyId}: planning ahead failed: ${String(error)}`));
  }

  /**
   * Offer a chapter's choices: a vote (with its ballot) where members vote, a pick
   * elsewhere. Never throws: the chapter is saved, and resuming the story shows its
   * choices again.
   */
  async present(
    audience: Audience,
    story: { id: string; revision: number; ownerId: string },
    chapterId: string,
    labels: string[],
  ): Promise<void> {
    const voting = audience.voting;
    const offer: ChoiceOffer = {
      storyId: story.id,
      revision: story.revision,
      chapterId,
      choices: labels,
      allowWriteIn: true,
      mode: voting === undefined ? "pick" : "vote",
      ...(voting === undefined
        ? {}
        : { counts: labels.map(() => 0), closesAt: new Date(Date.now() + voting.windowSeconds * 1000) }),
    };
    try {
      // The ballot is open before its buttons can be pressed; the offer then names its message.
      const opened =
        voting === undefined || this.ballots === undefined
          ? undefined
          : await this.ballots.open({
              storyId: story.id,
              chapterId,
              revision: story.revision,
              starterId: story.ownerId,
              windowSeconds: voting.windowSeconds,
            });
      const ref = await audience.surface.offerChoices(
        opened === undefined ? offer : { ...offer, closesAt: opened.closesAt },
      );
      if (opened !== undefined) await this.ballots?.shown(opened.ballotId, ref.id);
    } catch (error) {
      // The chapter is saved; resuming the story shows its choices again.
      this.options.log?.(`chapter ${chapterId}: could not offer the choices: ${String(error)}`);
    }
  }
}
