/**
 * Loads what the agent may read about a story: the head branch (walked up the
 * chapter tree from a chapter), the bible and the lore, as a `StorySnapshot`.
 */

import { splitKeys } from "../agent/lore.ts";
import { parseState } from "../agent/story-state.ts";
import type {
  AgentInput,
  Arc,
  Bible,
  BibleCharacter,
  ChapterSnapshot,
  Genre,
  StorySnapshot,
  StoryState,
  WritingTask,
} from "../agent/types.ts";
import type { Db } from "../store/db.ts";
import { LORE_ORDER } from "./lore-service.ts";
import { latestTalk } from "./talk-exchanges.ts";

export interface ChainChapter extends ChapterSnapshot {
  id: string;
  parentId: string | null;
  status: string;
  rollingSummary: string;
  facts: string[];
  arc: Arc | null;
  /** The story state after this chapter, when its parts set it. */
  state?: StoryState;
}

const EMPTY_ARC: Arc = { beats: [], openThreads: [] };

function asStringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

export function parseArc(v: unknown): Arc | null {
  if (v === null || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  return { beats: asStringArray(o.beats), openThreads: asStringArray(o.openThreads) };
}

function withState(state: StoryState | undefined): { state?: StoryState } {
  return state === undefined ? {} : { state };
}

/** The story state after the last done chapter of `chain` that has one. */
export function stateOf(chain: ChainChapter[]): StoryState | undefined {
  return chain.findLast((c) => c.status === "done" && c.state !== undefined)?.state;
}

/** Chapters from chapter 1 to `fromId` (inclusive), oldest first. */
export async function loadChain(db: Db, storyId: string, fromId: string | null): Promise<ChainChapter[]> {
  if (fromId === null) return [];
  const rows = await db.chapter.findMany({
    where: { storyId },
    select: {
      id: true,
      parentId: true,
      number: true,
      status: true,
      title: true,
      text: true,
      summary: true,
      action: true,
      rollingSummary: true,
      bibleUpdates: true,
      arc: true,
      state: true,
    },
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const chain: ChainChapter[] = [];
  for (let id: string | null = fromId; id !== null; ) {
    const r = byId.get(id);
    if (r === undefined) break;
    chain.push({
      id: r.id,
      parentId: r.parentId,
      number: r.number,
      status: r.status,
      title: r.title,
      text: r.text,
      summary: r.summary,
      action: r.action,
      rollingSummary: r.rollingSummary,
      facts: asStringArray((r.bibleUpdates as { facts?: unknown } | null)?.facts),
      arc: parseArc(r.arc),
      ...withState(parseState(r.state)),
    });
    id = r.parentId;
  }
  return chain.reverse();
}

/** A story row with what the snapshot needs (see `CANON`). */
export type StoryWithCanon = NonNullable<Awaited<ReturnType<typeof loadStoryWithCanon>>>;

/** What a story is loaded with for a snapshot: its characters (oldest first) and lore. */
export const CANON = {
  characters: { orderBy: { createdAt: "asc" } },
  lore: { orderBy: LORE_ORDER },
  theme: true,
} as const;

/** The story with its characters and lore, in one call. */
export function loadStoryWithCanon(db: Db, storyId: string) {
  return db.story.findUnique({ where: { id: storyId }, include: CANON });
}

/** The snapshot the agent sees when writing after `chain` (done chapters only). */
export function buildSnapshot(story: StoryWithCanon, chain: ChainChapter[]): StorySnapshot {
  const done = chain.filter((c) => c.status === "done");
  const base = (story.bible ?? {}) as { places?: Bible["places"]; facts?: unknown };
  const characters: BibleCharacter[] = story.characters.map((c) => ({
    name: c.name,
    role: c.role,
    appearance: c.appearance,
    ...(c.notes === "" ? {} : { notes: c.notes }),
  }));
  let summary = "";
  let summaryUpTo = 0;
  let arc = parseArc(story.arc) ?? EMPTY_ARC;
  const facts = asStringArray(base.facts);
  for (const c of done) {
    if (c.rollingSummary !== "") {
      summary = c.rollingSummary;
      summaryUpTo = c.number;
    }
    if (c.arc !== null) arc = c.arc;
    facts.push(...c.facts);
  }
  return {
    premise: story.premise,
    genre: story.genre as Genre,
    language: story.language,
    title: story.title,
    bible: { characters, places: Array.isArray(base.places) ? base.places : [], facts },
    arc,
    summary,
    summaryUpTo,
    chapters: done.map(({ number, title, text, summary: s, action }) => ({ number, title, text, summary: s, action })),
    ...withState(stateOf(chain)),
    rating: story.rating,
    chapterLength: story.chapterLength,
    ...(story.theme === null
      ? {}
      : {
          theme: {
            name: story.theme.name,
            description: story.theme.description,
            rules: story.theme.rules,
            rating: story.theme.rating,
          },
        }),
    lore: story.lore.map((l) => ({
      keys: splitKeys(l.keys),
      content: l.content,
      constant: l.constant,
      order: l.order,
      source: l.source,
    })),
  };
}

/** What the agent is given to write a chapter, without the method (chosen by configuration). */
export type WritingInput = Omit<AgentInput, "method">;

/**
 * The input a chapter is written from: the snapshot of its branch up to its parent,
 * the reader's action or direction, for a rewrite the chapter it replaces, and for a
 * reader's continue their latest /talk exchange after the parent chapter. Used by
 * the chapter job, and to freeze held-out states for evaluation.
 */
export async function writingInputFor(
  db: Db,
  story: StoryWithCanon,
  chapter: {
    parentId: string | null;
    number: number;
    task: string;
    action: string;
    direction: string;
    rewriteOfId: string | null;
    /** The reader who asked for the chapter (their /talk exchange may be cited). */
    requestedById?: string | null;
    /** The note the chapter inherited when it was asked for (Chapter.authorNote). */
    authorNote?: string;
  },
): Promise<{ chain: ChainChapter[]; input: WritingInput }> {
  const chain = await loadChain(db, story.id, chapter.parentId);
  const replaced =
    chapter.rewriteOfId === null ? null : await db.chapter.findUnique({ where: { id: chapter.rewriteOfId } });
  const talk =
    chapter.task === "continue" && chapter.parentId !== null && typeof chapter.requestedById === "string"
      ? await latestTalk(db, chapter.parentId, chapter.requestedById)
      : undefined;
  const input: WritingInput = {
    task: chapter.task as WritingTask,
    story: buildSnapshot(story, chain),
    chapterNumber: chapter.number,
    ...(chapter.action === "" ? {} : { action: chapter.action }),
    ...(chapter.direction === "" ? {} : { direction: chapter.direction }),
    ...(talk === undefined ? {} : { talk }),
    ...(chapter.authorNote === undefined || chapter.authorNote.trim() === "" ? {} : { authorNote: chapter.authorNote }),
    ...(replaced === null
      ? {}
      : {
          replacing: {
            number: replaced.number,
            title: replaced.title,
            text: replaced.text,
            summary: replaced.summary,
            action: replaced.action,
          },
        }),
  };
  return { chain, input };
}
