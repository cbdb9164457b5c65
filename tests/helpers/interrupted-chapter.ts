/**
 * The state a process leaves when it dies mid-chapter: the story's next chapter claimed
 * (`writing`), its first words shown in one message and saved as its progress; and the
 * check that it was resumed in place, as a restart or another worker must.
 */
import { expect } from "vitest";
import type { Db } from "../../src/store/db.ts";
import type { FakeStoryAgent } from "../fakes/fake-story-agent.ts";
import type { FakeSurface } from "../fakes/fake-surface.ts";

export interface InterruptedChapter {
  chapterId: string;
  messageId: string;
  /** The chapter is done, continued from its shown words in the same message (no new post), its choices offered once. */
  expectContinuedInPlace(agent: FakeStoryAgent): Promise<void>;
}

export async function chapterLeftWriting(
  db: Db,
  surface: FakeSurface,
  storyId: string,
  action: string,
): Promise<InterruptedChapter> {
  const story = await db.story.findUniqueOrThrow({ where: { id: storyId }, include: { head: true } });
  const number = (story.head?.number ?? 0) + 1;
  const prose = `Chapter ${number} text about `;
  const shown = await surface.post(`Chapter ${number}\n\n${prose}`);
  const chapter = await db.chapter.create({
    data: {
      storyId,
      parentId: story.head?.id ?? null,
      number,
      task: "continue",
      action,
      status: "writing",
      requestKey: `interrupted-${number}`,
      bibleUpdates: {},
      messageRefs: [],
      progress: { messages: [{ id: shown.id, text: `Chapter ${number}\n\n${prose}` }], complete: false },
    },
  });
  await db.story.update({ where: { id: storyId }, data: { headChapterId: chapter.id } });
  const count = (kind: string) => surface.calls.filter((c) => c.kind === kind).length;
  const posts = count("post");
  const offers = count("offerChoices");
  return {
    chapterId: chapter.id,
    messageId: shown.id,
    async expectContinuedInPlace(agent) {
      const text = `${prose.trimEnd()} ${action}.\n\nIt goes on.`;
      const done = await db.chapter.findUniqueOrThrow({ where: { id: chapter.id } });
      expect(done.status).toBe("done");
      expect(done.text).toBe(text);
      expect(done.progress).toBeNull();
      expect(agent.inputs.at(-1)?.resume).toEqual({ prose, complete: false });
      expect(count("post")).toBe(posts);
      expect(surface.messages.get(shown.id)?.text).toBe(`Chapter ${number}\n\n${text}`);
      expect(count("offerChoices")).toBe(offers + 1);
    },
  };
}
