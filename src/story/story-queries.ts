/**
 * Reading where stories stand, without changing them: a story's state, which story
 * a conversation plays, where a story is played, a conversation's list, a recap. And
 * showing a story's choices again (`offerChoicesAgain`), through the choice presenter.
 */

import type { StoryState as BranchState } from "../agent/types.ts";
import type { Db } from "../store/db.ts";
import type { ChoicePresenter } from "./choice-presenter.ts";
import { UserFacingError } from "./errors.ts";
import { type Conversation, conversationKey } from "./identity.ts";
import { loadChain, stateOf } from "./snapshot.ts";

export interface StoryState {
  storyId: string;
  title: string;
  revision: number;
  head: { id: string; number: number; status: string; text: string; title: string } | null;
  choices: string[];
}

export interface StoryListItem {
  storyId: string;
  title: string;
  chapter: number;
  updatedAt: Date;
  /** The story it remixes (/remix): its title, and the chapter its chapters were taken up to. */
  remixOf?: { title: string; chapter: number | null };
}

/** The story row, or the reader-facing "no story" error. */
export async function requireStory(db: Db, storyId: string) {
  const story = await db.story.findUnique({ where: { id: storyId } });
  if (story === null) throw new UserFacingError("error.noStory");
  return story;
}

export class StoryQueries {
  constructor(
    private readonly db: Db,
    /** Offers a head chapter's choices again where the story is shown. */
    private readonly presenter: Pick<ChoicePresenter, "reoffer">,
  ) {}

  async state(storyId: string): Promise<StoryState> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        title: true,
        revision: true,
        head: {
          select: {
            id: true,
            number: true,
            status: true,
            text: true,
            title: true,
            choices: { select: { label: true }, orderBy: { position: "asc" } },
          },
        },
      },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    const { head } = story;
    return {
      storyId,
      title: story.title,
      revision: story.revision,
      head:
        head === null
          ? null
          : { id: head.id, number: head.number, status: head.status, text: head.text, title: head.title },
      choices: head === null || head.status !== "done" ? [] : head.choices.map((c) => c.label),
    };
  }

  /**
   * Offer the head chapter's choices again (a vote in voting conversations).
   * False when there is nothing to offer.
   */
  offerChoicesAgain(storyId: string): Promise<boolean> {
    return this.presenter.reoffer(storyId);
  }

  /** The story a conversation is playing: its most recently played active story. */
  async latestIn(conversation: Conversation): Promise<string | undefined> {
    const story = await this.db.story.findFirst({
      where: { conversationId: conversationKey(conversation), status: "active" },
      orderBy: { updatedAt: "desc" },
      select: { id: true },
    });
    return story?.id;
  }

  /** Where a story is played and who started it (to refuse buttons from elsewhere). */
  async whereIs(storyId: string): Promise<{ conversationId: string; ownerId: string } | undefined> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: { conversationId: true, owner: { select: { platform: true, externalId: true } } },
    });
    return story === null
      ? undefined
      : { conversationId: story.conversationId, ownerId: `${story.owner.platform}:${story.owner.externalId}` };
  }

  /**
   * The stories played in this conversation, most recently played first. A
   * conversation only ever sees its own stories: resuming one from another chat
   * would let that chat's readers act on it.
   */
  async list(conversation: Conversation): Promise<StoryListItem[]> {
    const stories = await this.db.story.findMany({
      where: { conversationId: conversationKey(conversation), status: "active" },
      orderBy: { updatedAt: "desc" },
      take: 25,
      select: {
        id: true,
        title: true,
        updatedAt: true,
        head: { select: { number: true } },
        remixOfChapter: true,
        remixOf: { select: { title: true } },
      },
    });
    return stories.map((s) => ({
      storyId: s.id,
      title: s.title,
      chapter: s.head?.number ?? 0,
      updatedAt: s.updatedAt,
      ...(s.remixOf === null ? {} : { remixOf: { title: s.remixOf.title, chapter: s.remixOfChapter } }),
    }));
  }

  /** Chapter summaries of the current branch (no model call). */
  async recap(storyId: string): Promise<{ title: string; chapters: { number: number; summary: string }[] }> {
    const story = await requireStory(this.db, storyId);
    const chain = await loadChain(this.db, storyId, story.headChapterId);
    return {
      title: story.title,
      chapters: chain.filter((c) => c.status === "done").map((c) => ({ number: c.number, summary: c.summary })),
    };
  }

  /** The author's note in effect at the story's head ("" when none). */
  async note(storyId: string): Promise<string> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: { head: { select: { authorNote: true } } },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    return story.head?.authorNote ?? "";
  }

  /** The story state of the current branch (/status): after its last chapter that set one. */
  async status(storyId: string): Promise<{ title: string; chapter: number; state: BranchState | undefined }> {
    const story = await requireStory(this.db, storyId);
    const chain = await loadChain(this.db, storyId, story.headChapterId);
    const done = chain.filter((c) => c.status === "done");
    return { title: story.title, chapter: done[done.length - 1]?.number ?? 0, state: stateOf(chain) };
  }
}
