/**
 * Story memory: a bounded context built from a story snapshot. The prompt at chapter 200
 * must be about the size of the prompt at chapter 20, so every section has a cap:
 * the bible (relevant characters first), the hidden arc, the rolling summary, one-line
 * summaries of not-yet-folded chapters, the last chapters verbatim and up to three
 * earlier passages recalled by keyword.
 */

import { characterLoreText, formatLoreLine, type LoreEntry, loreLabel, selectLore } from "./lore.ts";
import { stateLines } from "./story-state.ts";
import { estimateTokens, hasCjk } from "./tokens.ts";
import type { BibleCharacter, BiblePlace, ChapterSnapshot, StorySnapshot } from "./types.ts";

export interface MemoryOptions {
  /** Chapters quoted verbatim (the last N). */
  recentChapters: number;
  /** Characters listed in the bible section (most relevant first). Default 8. */
  maxBibleCharacters?: number;
  /** Places listed. Default 6. */
  maxPlaces?: number;
  /** Canon facts listed. Default 12. */
  maxFacts?: number;
  /** One-line summaries of unfolded chapters outside the window. Default 8 (the latest). */
  maxOutlineChapters?: number;
  /** Characters of the rolling summary kept (its tail). Default 3000. */
  maxSummaryChars?: number;
  /** Characters of each verbatim chapter kept (its tail). Default 8000. */
  maxChapterChars?: number;
  /** The reader's action or direction; drives recall and relevance. */
  query?: string;
  /** Tokens the lore entries may take. Default `LORE_DEFAULTS.budgetTokens`. */
  loreBudgetTokens?: number;
  /** How deep an added entry's text may trigger others. Default `LORE_DEFAULTS.maxDepth`. */
  loreDepth?: number;
}

/** How much lore a prompt takes, and how far entries trigger entries. */
export const LORE_DEFAULTS = { budgetTokens: 800, maxDepth: 2 } as const;

/** Which lore entries came up for a prompt (the run records it): their keys, by what happened. */
export interface LoreUse {
  /** Entries in the prompt. */
  included: string[];
  /** Entries that came up but the token budget left out. */
  leftOut: string[];
  /** Indexes into `story.lore` of the included entries (the planning step adds to them). */
  indexes: number[];
  /** Tokens the included entries take. */
  tokens: number;
  /** Indexes no later round may add again: included, left out, or skipped. */
  considered: number[];
}

export interface RecalledPassage {
  chapter: number;
  text: string;
  score: number;
}

export interface MemorySections {
  bible: string;
  lore: string;
  arc: string;
  /** The story state (relationships, milestones, arc progress). */
  state: string;
  summary: string;
  outline: string;
  recent: string;
  recalled: string;
}

export interface Memory {
  text: string;
  /** The lore selection (what went in, what the budget left out). */
  lore: LoreUse;
  sections: MemorySections;
  estimatedTokens: number;
  recalled: RecalledPassage[];
}

const HAN_RUN = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+/gu;

export { estimateTokens, hasCjk };

const STOP_WORDS = new Set(
  (
    "the and for are but not you all any can her was one our out day get has him his how man new now old see two way who " +
    "its did yes she they them then than this that with from have into your what when where which will would could should " +
    "there their about after again also back been being before down each even just like make more most much only over some " +
    "such take through very well were while here want ask asks said says tell tells chapter story reader go goes let lets"
  ).split(" "),
);

/**
 * Keywords of a text: Latin words of 3+ letters minus stop words, and character bigrams
 * of Han runs (Chinese has no spaces; bigrams match names and words well enough).
 */
export function keywords(text: string): string[] {
  const out = new Set<string>();
  const lower = text.toLowerCase();
  for (const word of lower.match(/[\p{L}\p{N}']+/gu) ?? []) {
    if (hasCjk(word)) continue;
    const w = word.replace(/'s$/, "").replace(/'/g, "");
    if (w.length >= 3 && !STOP_WORDS.has(w)) out.add(w);
  }
  for (const run of lower.match(HAN_RUN) ?? []) {
    if (run.length === 1) continue;
    for (let i = 0; i + 2 <= run.length; i++) out.add(run.slice(i, i + 2));
  }
  return [...out];
}

function countOccurrences(haystack: string, needle: string): number {
  if (needle === "") return 0;
  let count = 0;
  let at = haystack.indexOf(needle);
  while (at !== -1) {
    count++;
    at = haystack.indexOf(needle, at + needle.length);
  }
  return count;
}

/** Relevance of a text to keywords: distinct matches weigh most, repeats a little. */
function score(text: string, keys: string[]): number {
  const lower = text.toLowerCase();
  let s = 0;
  for (const k of keys) {
    const n = countOccurrences(lower, k);
    if (n > 0) s += 2 + Math.min(n - 1, 3) * 0.25;
  }
  return s;
}

const PASSAGE_CHARS = 320;

/** Split a chapter into passages (paragraphs, long ones cut at a character bound). */
function passagesOf(text: string): string[] {
  const out: string[] = [];
  for (const para of text.split(/\n\s*\n|\n/)) {
    const p = para.trim();
    if (p === "") continue;
    for (let i = 0; i < p.length; i += PASSAGE_CHARS) out.push(p.slice(i, i + PASSAGE_CHARS));
  }
  return out;
}

/** Chapters outside the verbatim window (the earlier ones), oldest first. */
export function chaptersOutsideWindow(story: StorySnapshot, recentChapters: number): ChapterSnapshot[] {
  const keep = Math.max(0, recentChapters);
  return keep === 0 ? [...story.chapters] : story.chapters.slice(0, Math.max(0, story.chapters.length - keep));
}

/**
 * Up to `limit` earlier passages best matching the query's keywords, searched in the
 * given chapters. Best first; ties go to the later chapter.
 */
export function recallPassages(chapters: ChapterSnapshot[], query: string, limit = 3): RecalledPassage[] {
  const keys = keywords(query);
  if (keys.length === 0) return [];
  const found: RecalledPassage[] = [];
  for (const ch of chapters) {
    for (const passage of passagesOf(ch.text)) {
      const s = score(passage, keys);
      if (s > 0) found.push({ chapter: ch.number, text: passage, score: s });
    }
  }
  found.sort((a, b) => b.score - a.score || b.chapter - a.chapter);
  const out: RecalledPassage[] = [];
  const seen = new Set<string>();
  for (const p of found) {
    if (seen.has(p.text)) continue;
    seen.add(p.text);
    out.push(p);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * Chapters the story service should fold into the rolling summary now: those after
 * `summaryUpTo` and outside the verbatim window, once there are at least `foldEvery`
 * of them (folding in batches keeps summarize calls rare). Empty when nothing is due.
 */
export function chaptersToFold(story: StorySnapshot, recentChapters: number, foldEvery = 5): ChapterSnapshot[] {
  const pending = chaptersOutsideWindow(story, recentChapters).filter((c) => c.number > story.summaryUpTo);
  return pending.length >= Math.max(1, foldEvery) ? pending : [];
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}

function oneLine(text: string, max = 240): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** Take the `max` items with the highest relevance, keeping their original order. */
function topByRelevance<T>(items: T[], max: number, relevance: (item: T) => number): T[] {
  if (items.length <= max) return items;
  const ranked = items.map((item, index) => ({ item, index, r: relevance(item) }));
  // Ties go to the later entry: newer canon is more likely to matter now.
  ranked.sort((a, b) => b.r - a.r || b.index - a.index);
  return ranked
    .slice(0, max)
    .sort((a, b) => a.index - b.index)
    .map((x) => x.item);
}

function characterRelevance(c: BibleCharacter, context: string): number {
  const lower = context.toLowerCase();
  const name = c.name.toLowerCase();
  let n = countOccurrences(lower, name);
  // Also count a first name ("Mei" for "Mei Lin") so short references count.
  const first = name.split(/\s+/)[0];
  if (first && first !== name && first.length >= 3) n += countOccurrences(lower, first) * 0.5;
  return n;
}

/**
 * Characters ordered by mentions in the reader's action, then by mentions in the
 * context (recent chapters), then bible order; capped.
 */
export function relevantCharacters(
  characters: BibleCharacter[],
  context: string,
  max: number,
  action = "",
): BibleCharacter[] {
  return characters
    .map((c, index) => ({ c, index, r: characterRelevance(c, action) * 1000 + characterRelevance(c, context) }))
    .sort((a, b) => b.r - a.r || a.index - b.index)
    .slice(0, max)
    .map((x) => x.c);
}

function formatCharacter(c: BibleCharacter): string {
  const notes = c.notes ? ` Notes: ${oneLine(c.notes, 200)}` : "";
  return `- ${c.name} (${oneLine(c.role, 120)}). Appearance: ${oneLine(c.appearance, 200)}.${notes}`;
}

function formatPlace(p: BiblePlace): string {
  return `- ${p.name}: ${oneLine(p.description, 200)}`;
}

/** Build the bounded memory of a story for the next chapter. */
export function buildMemory(story: StorySnapshot, options: MemoryOptions): Memory {
  const maxChars = options.maxBibleCharacters ?? 8;
  const maxPlaces = options.maxPlaces ?? 6;
  const maxFacts = options.maxFacts ?? 12;
  const maxOutline = options.maxOutlineChapters ?? 8;
  const maxSummary = options.maxSummaryChars ?? 3000;
  const maxChapter = options.maxChapterChars ?? 8000;
  const query = options.query ?? "";

  const window = Math.max(0, options.recentChapters);
  const recentChapters = window === 0 ? [] : story.chapters.slice(-window);
  const earlier = chaptersOutsideWindow(story, window);

  const context = [query, ...recentChapters.map((c) => `${c.title}\n${c.text}`)].join("\n");
  const contextKeys = keywords(context);

  const characters = relevantCharacters(story.bible.characters, context, maxChars, query);
  const places = topByRelevance(story.bible.places, maxPlaces, (p) => score(p.name, contextKeys) * 2);
  const facts = topByRelevance(story.bible.facts, maxFacts, (f) => score(f, contextKeys));
  const bibleLines: string[] = [];
  if (characters.length > 0) bibleLines.push("Characters:", ...characters.map(formatCharacter));
  const omitted = story.bible.characters.length - characters.length;
  if (omitted > 0) bibleLines.push(`(${omitted} more characters not listed; use lookup for any of them.)`);
  if (places.length > 0) bibleLines.push("Places:", ...places.map(formatPlace));
  if (facts.length > 0) bibleLines.push("Canon facts:", ...facts.map((f) => `- ${oneLine(f, 240)}`));
  const bible = bibleLines.join("\n");

  // A bible entry nobody edited says what the bible section already says: not twice.
  const listed = new Set([...characters.map(characterLoreText), ...places.map((p) => p.description.trim())]);
  const selection = chooseLore(story.lore, [query, ...recentChapters.map((c) => `${c.title}\n${c.text}`)], {
    budgetTokens: options.loreBudgetTokens ?? LORE_DEFAULTS.budgetTokens,
    maxDepth: options.loreDepth ?? LORE_DEFAULTS.maxDepth,
    skip: (entry) => entry.source === "bible" && listed.has(entry.content.trim()),
  });
  const lore = selection.indexes.map((i) => formatLoreLine(story.lore[i] as LoreEntry)).join("\n");

  const arcLines: string[] = [];
  if (story.arc.beats.length > 0) arcLines.push("Planned beats:", ...story.arc.beats.slice(0, 8).map((b) => `- ${b}`));
  if (story.arc.openThreads.length > 0)
    arcLines.push("Open threads:", ...story.arc.openThreads.slice(0, 10).map((t) => `- ${t}`));
  const arc = arcLines.join("\n");

  const summary =
    story.summary.trim() === "" ? "" : `(Chapters 1-${story.summaryUpTo}) ${tail(story.summary.trim(), maxSummary)}`;

  const unfolded = earlier.filter((c) => c.number > story.summaryUpTo);
  const outlineChapters = unfolded.slice(-maxOutline);
  const outline = outlineChapters.map((c) => `- Chapter ${c.number}, ${c.title}: ${oneLine(c.summary)}`).join("\n");

  const recent = recentChapters
    .map((c) => {
      const led = c.action.trim() === "" ? "" : `(The reader chose: ${oneLine(c.action, 200)})\n`;
      return `### Chapter ${c.number}: ${c.title}\n${led}${tail(c.text.trim(), maxChapter)}`;
    })
    .join("\n\n");

  const recalledPassages = query.trim() === "" ? [] : recallPassages(earlier, query, 3);
  const recalled = recalledPassages.map((p) => `- (Chapter ${p.chapter}) ${oneLine(p.text, PASSAGE_CHARS)}`).join("\n");

  const state = stateLines(story.state);
  const sections: MemorySections = { bible, lore, arc, state, summary, outline, recent, recalled };
  const parts: [string, string][] = [
    ["Story bible", bible],
    ["Lore", lore],
    ["Hidden arc (never reveal it to the reader)", arc],
    ["Story state (keep these emotional threads consistent)", state],
    ["Story so far", summary],
    ["Chapters since the summary", outline],
    ["Earlier passages recalled", recalled],
    ["Latest chapters, verbatim", recent],
  ];
  const text = parts
    .filter(([, body]) => body.trim() !== "")
    .map(([heading, body]) => `## ${heading}\n${body}`)
    .join("\n\n");
  return { text, sections, estimatedTokens: estimateTokens(text), recalled: recalledPassages, lore: selection };
}

/**
 * Lore for a prompt from what came up in `texts` (see `selectLore`), as the run records
 * it. `already`: entries already in the prompt, and the budget they took.
 */
export function chooseLore(
  entries: readonly LoreEntry[],
  texts: readonly string[],
  options: {
    budgetTokens: number;
    maxDepth?: number;
    already?: LoreUse;
    skip?: (entry: LoreEntry) => boolean;
  },
): LoreUse {
  const exclude = new Set(options.already?.considered ?? []);
  entries.forEach((entry, index) => {
    if (options.skip?.(entry) === true) exclude.add(index);
  });
  const picked = selectLore(entries, texts, {
    budgetTokens: options.budgetTokens - (options.already?.tokens ?? 0),
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    exclude,
  });
  const label = (i: number) => loreLabel(entries[i] as LoreEntry);
  return {
    included: picked.included.map(label),
    leftOut: picked.leftOut.map(label),
    indexes: picked.included,
    tokens: picked.tokens,
    considered: [...exclude, ...picked.included, ...picked.leftOut],
  };
}
