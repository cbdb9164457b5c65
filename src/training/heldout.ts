/**
 * The held-out set: real story states frozen for evaluation (`npm run train:heldout`).
 * Each is the input one chapter was written from (its branch's snapshot, the reader's
 * action or direction). A held-out story is never exported for training, so the
 * evaluation never scores a model on what it was trained on.
 */
import type { WritingTask } from "../agent/types.ts";
import type { Db } from "../store/db.ts";
import { loadStoryWithCanon, type WritingInput, writingInputFor } from "../story/snapshot.ts";
import { seededRandom, shuffled } from "./random.ts";

export interface HeldoutCase {
  id: string;
  storyId: string;
  chapterId: string;
  input: WritingInput;
}

const WRITING_TASKS: WritingTask[] = ["open", "continue", "rewrite"];

/**
 * Freeze up to `count` more states, at most one per story, from stories not held out yet
 * (chosen with `seed`). Only finished chapters that were written by the agent qualify.
 */
export async function freezeHeldout(
  db: Db,
  options: { count: number; seed: number; tasks?: WritingTask[] },
): Promise<{ added: number; total: number }> {
  const tasks = options.tasks ?? WRITING_TASKS;
  const held = await heldoutStoryIds(db);
  const candidates = await db.chapter.findMany({
    where: { status: "done", task: { in: tasks }, runs: { some: {} }, storyId: { notIn: [...held] } },
    orderBy: { id: "asc" },
    select: {
      id: true,
      storyId: true,
      parentId: true,
      number: true,
      task: true,
      action: true,
      direction: true,
      rewriteOfId: true,
      authorNote: true,
    },
  });
  const byStory = new Map<string, (typeof candidates)[number][]>();
  for (const c of candidates) byStory.set(c.storyId, [...(byStory.get(c.storyId) ?? []), c]);
  const random = seededRandom(options.seed);
  let added = 0;
  for (const storyId of shuffled([...byStory.keys()].sort(), random)) {
    if (added >= options.count) break;
    const chapters = byStory.get(storyId) ?? [];
    const chapter = chapters[Math.floor(random() * chapters.length)];
    const story = await loadStoryWithCanon(db, storyId);
    if (chapter === undefined || story === null) continue;
    const { input } = await writingInputFor(db, story, chapter);
    await db.heldoutState.create({
      data: { storyId, chapterId: chapter.id, task: chapter.task, input: input as unknown as object },
    });
    added++;
  }
  return { added, total: await db.heldoutState.count() };
}

export async function loadHeldout(db: Db): Promise<HeldoutCase[]> {
  const rows = await db.heldoutState.findMany({ orderBy: { createdAt: "asc" } });
  return rows.map((r) => ({
    id: r.id,
    storyId: r.storyId,
    chapterId: r.chapterId,
    input: r.input as unknown as WritingInput,
  }));
}

/** Stories whose runs must never be exported for training. */
export async function heldoutStoryIds(db: Db): Promise<Set<string>> {
  const rows = await db.heldoutState.findMany({ select: { storyId: true }, distinct: ["storyId"] });
  return new Set(rows.map((r) => r.storyId));
}
