/** Port: opens a ballot once a voting conversation was offered a chapter's choices (BallotService). */

/** The round of voting to open on a chapter's offered choices. */
export interface BallotOpening {
  /** The story whose head chapter's choices were offered. */
  storyId: string;
  /** The chapter whose choices are voted on. */
  chapterId: string;
  /** The story's revision when the choices were offered: a vote on another revision is stale. */
  revision: number;
  /** User row id of the story's starter (who may close the ballot early). */
  starterId: string;
  /** How long the ballot stays open, in seconds. */
  windowSeconds: number;
}

/** A ballot just opened. */
export interface OpenedBallot {
  ballotId: string;
  /** When its window ends (the offer shows it). */
  closesAt: Date;
}

/**
 * Opens ballots; the choice presenter opens one just before it offers the choices for a
 * vote, so no press on the offer can arrive before its ballot exists, then names the
 * offer's message.
 */
export interface BallotOpener {
  /**
   * Open a new round of voting on the chapter (closing any round left open on it and
   * clearing its votes) and start its timer.
   */
  open(input: BallotOpening): Promise<OpenedBallot>;
  /** The offer showing the ballot was posted: live counts and the result are drawn on this message. */
  shown(ballotId: string, messageRef: string): Promise<void>;
}
