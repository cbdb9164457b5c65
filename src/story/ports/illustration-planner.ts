/**
 * Port: the chapter job asks it which pictures to draw for a chapter being saved, creates
 * those rows in the chapter's own transaction, then asks it to start drawing them
 * (IllustrationPlanning implements it). Free of Prisma types: the writer converts the
 * plain rows when it saves them.
 */
import type { IllustrationProposal } from "../../agent/types.ts";

/** A chapter being saved, with the scenes its agent proposed to illustrate. */
export interface ChapterPictures {
  /** The chapter's story. */
  storyId: string;
  /** The story's workspace row id, whose budgets apply. */
  workspaceId: string;
  /** The chapter being saved. */
  chapterId: string;
  /** Its number: chapter 1 always gets a picture, budgets allowing. */
  number: number;
  /** Its prose (an opening picture without a proposal shows its first paragraph). */
  text: string;
  /** The scenes the agent proposed, best first. */
  proposals: IllustrationProposal[];
}

/** An `Illustration` row to create, `pending`, with the chapter. */
export interface PlannedIllustration {
  /** The row's id, chosen up front so its job can be enqueued once the chapter is saved. */
  id: string;
  /** The story it illustrates. */
  storyId: string;
  /** The chapter it is posted under. */
  chapterId: string;
  /** Always `auto`: the agent proposed it (a reader's /illustrate is `request`). */
  source: "auto";
  /** The scene to draw, clipped to the visual bible's limit. */
  scene: string;
  /** Names of the characters the agent placed in the scene. */
  characters: string[];
  /** Unique per chapter and position: planning the same chapter twice cannot create a row twice. */
  requestKey: string;
}

/** Plans a chapter's illustrations with it and starts drawing them once it is saved. */
export interface IllustrationPlanner {
  /**
   * The rows to create with the chapter: its proposals within the workspace's budgets.
   * Empty when illustrations are off or no image model is configured.
   */
  planForChapter(input: ChapterPictures): Promise<PlannedIllustration[]>;
  /** Enqueue one drawing job per row id, after the rows' transaction committed. */
  enqueue(ids: string[]): Promise<void>;
}
