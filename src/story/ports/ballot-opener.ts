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
  /** Platform id of the message that shows the ballot (its buttons and counts). */
  messageRef: string;
}

/** Opens ballots; the choice presenter calls it right after offering choices for a vote. */
export interface BallotOpener {
  /**
   * Open a new round of voting on the chapter (closing any round left open on it and
   * clearing its votes) and start its timer.
   */
  open(input: BallotOpening): Promise<void>;
}
