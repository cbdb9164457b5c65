/**
 * The one transaction that stores a finished chapter: its text and parts, its
 * choices, the characters met for the first time, the story's bible and arc (after
 * an opening), the agent runs, and the pictures planned with it. Tried twice.
 */

import { splitKeys } from "../agent/lore.ts";
import type { ChapterResult, StoryState } from "../agent/types.ts";
import { Prisma } from "../generated/prisma/client.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import { bibleLoreRows, storyLoreCounter } from "./lore-service.ts";
import type { PlannedIllustration } from "./ports/illustration-planner.ts";
import { runData } from "./run-data.ts";

const SAVE_RETRY_MS = 250;

export interface FinishedChapter {
  chapterId: string;
  /** The story, with the characters it already knows. */
  /** The story with its characters and lore rows (keys comma-separated, as stored). */
  story: { id: string; characters: { name: string }[]; lore: { keys: string }[] };
  result: ChapterResult;
  /** Ids of the messages the chapter was shown in. */
  messageRefs: string[];
  /** Illustration rows planned with the chapter (src/story/ports/illustration-planner.ts). */
  pictures: PlannedIllustration[];
  /** The story state after the chapter (its parts' update merged into its branch's), when they set one. */
  state?: StoryState;
}

/**
 * Save the chapter as `done`, in one transaction. Only a chapter still being written
 * becomes done: a second delivery, or a recovery that marked it failed meanwhile,
 * makes this throw P2025 (not retried). `retrying` hears of a first failure.
 */
export async function saveChapter(db: Db, chapter: FinishedChapter, retrying: (error: unknown) => void): Promise<void> {
  const { chapterId, story, result: done, messageRefs, pictures, state } = chapter;
  // Appearance is fixed at first mention (illustrations depend on it staying the same),
  // so only characters the story does not know yet are added.
  const known = new Set(story.characters.map((c) => c.name));
  const fresh = [...(done.story?.bible.characters ?? []), ...done.bibleUpdates.characters].filter(
    (c) => !known.has(c.name) && known.add(c.name),
  );
  // The bible becomes lore readers can see and edit: new characters, an opening's places.
  // A place the story's lore already has an entry for (a remix copied it, a reader wrote
  // one) is not added again.
  const keyed = new Set(story.lore.flatMap((entry) => splitKeys(entry.keys).map((k) => k.toLowerCase())));
  const places = (done.story?.bible.places ?? []).filter((p) => !keyed.has(p.name.trim().toLowerCase()));
  const bibleLore = bibleLoreRows(story.id, fresh, places);
  // Built anew for each try: a batch transaction's queries run once.
  const save = () =>
    db.$transaction([
      db.chapter.update({
        where: { id: chapterId, status: "writing" },
        data: {
          status: "done",
          title: done.chapterTitle,
          text: done.text,
          summary: done.summary,
          bibleUpdates: { facts: done.bibleUpdates.facts },
          ...(done.arc === undefined ? {} : { arc: { beats: done.arc.beats, openThreads: done.arc.openThreads } }),
          ...(state === undefined ? {} : { state: state as object }),
          messageRefs,
          progress: Prisma.DbNull,
          needsRepair: done.needsRepair === true,
        },
        select: { id: true },
      }),
      db.choice.createMany({
        data: done.choices.map((c, i) => ({ chapterId, position: i + 1, label: c.label, direction: c.direction })),
      }),
      ...(fresh.length === 0
        ? []
        : [
            db.character.createMany({
              data: fresh.map((c) => ({ storyId: story.id, name: c.name, role: c.role, appearance: c.appearance })),
            }),
          ]),
      ...(bibleLore.length === 0
        ? []
        : [
            db.loreEntry.createMany({ data: bibleLore }),
            // Counted once the story's lore counter exists (it starts from the rows otherwise).
            db.counter.updateMany({
              where: { key: storyLoreCounter(story.id) },
              data: { count: { increment: bibleLore.length } },
            }),
          ]),
      // The story's updatedAt already moved when the reader's request moved its head.
      ...(done.story === undefined
        ? []
        : [
            db.story.update({
              where: { id: story.id },
              data: {
                title: done.story.title,
                language: done.story.language,
                bible: { places: done.story.bible.places, facts: done.story.bible.facts } as object,
                arc: { beats: done.story.arc.beats, openThreads: done.story.arc.openThreads },
              },
              select: { id: true },
            }),
          ]),
      // createMany returns no rows: the trajectories' JSON is not read back.
      db.agentRun.createMany({ data: done.runs.map((run) => runData(story.id, chapterId, run)) }),
      ...(pictures.length === 0 ? [] : [db.illustration.createMany({ data: pictures.map(illustrationRow) })]),
    ]);
  await saveWithRetry(save, retrying);
}

/**
 * The chapter's save, tried twice: the reader has read it, so a passing database hiccup
 * (a locked SQLite file, a dropped connection) must not lose it. A chapter that is no
 * longer being written (P2025) is not retried.
 */
async function saveWithRetry(save: () => Promise<unknown>, log: (error: unknown) => void): Promise<void> {
  try {
    await save();
  } catch (error) {
    if (isPrismaError(error, "P2025")) throw error;
    log(error);
    await new Promise((resolve) => setTimeout(resolve, SAVE_RETRY_MS));
    await save();
  }
}

/** A planned picture as the row the chapter's transaction creates. */
function illustrationRow(p: PlannedIllustration): Prisma.IllustrationCreateManyInput {
  return {
    id: p.id,
    storyId: p.storyId,
    chapterId: p.chapterId,
    source: p.source,
    scene: p.scene,
    characters: p.characters,
    requestKey: p.requestKey,
  };
}
