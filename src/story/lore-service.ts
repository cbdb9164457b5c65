/**
 * Lore (world info) of a story or of a theme: listing, adding, changing and removing
 * entries, with their limits; the agent's bible as lore (source "bible"); a theme's lore
 * copied into a story started with it. Entries are numbered from 1 in the order they were
 * made (`LORE_ORDER`), the numbers `/lore` shows and `/lore edit` and `/lore remove` take.
 *
 * The entry count is a shared counter (src/store/counters.ts), taken in the transaction
 * that creates the entry and given back by the one that removes it, so two requests at
 * once never pass the limit together.
 */
import { characterLore, isRegexKey, type LoreEntry, placeLore, regexProblem, splitKeys } from "../agent/lore.ts";
import { ensureCounter, takeCounter } from "../store/counters.ts";
import type { Db } from "../store/db.ts";
import { isPrismaError } from "../store/db.ts";
import { UserFacingError } from "./errors.ts";

export const LORE_LIMITS = {
  /** Entries of one story (bible entries count too). */
  storyEntries: 100,
  /** Entries of one theme. */
  themeEntries: 50,
  /** Characters of an entry's text. */
  content: 1000,
  /** Keys of one entry. */
  keys: 10,
  /** Characters of one key (a `/regex/` key's pattern: `MAX_REGEX_LENGTH`). */
  keyLength: 60,
  /** Largest order (lower goes in first). */
  order: 9999,
} as const;

/** The order entries are numbered and read in: the order they were made. */
export const LORE_ORDER = [{ createdAt: "asc" }, { id: "asc" }] as const satisfies object[];

/** Whose lore: a story's, or a theme's. */
export type LoreOwner = { storyId: string } | { themeId: string };

/** A new or changed entry, as a reader gives it (validated by `validateLore`). */
export interface LoreInput {
  keys: string[];
  content: string;
  constant: boolean;
  order: number;
}

export interface LoreView extends LoreInput {
  /** Its number in the list, from 1. */
  n: number;
  id: string;
  source: string;
}

const DEFAULT_ORDER = 100;

/**
 * An entry from the reader's words: `keys` comma-separated (a `/regex/` may hold commas),
 * where `*` marks it constant (always included, keys optional) and `#<n>` sets its order;
 * `content` its text. Refused with a reader-facing error that says why.
 */
export function validateLore(keysText: string, content: string): LoreInput {
  const text = content.trim();
  if (text === "") throw new UserFacingError("error.loreNoText");
  if (text.length > LORE_LIMITS.content) {
    throw new UserFacingError("error.loreTextTooLong", { length: text.length, max: LORE_LIMITS.content });
  }
  let constant = false;
  let order = DEFAULT_ORDER;
  const keys: string[] = [];
  for (const key of splitKeys(keysText)) {
    if (key === "*") {
      constant = true;
      continue;
    }
    const orderMark = /^#(\d{1,4})$/.exec(key);
    if (orderMark !== null) {
      order = Number(orderMark[1]);
      continue;
    }
    if (key.startsWith("#")) throw new UserFacingError("error.loreBadOrder", { max: LORE_LIMITS.order });
    if (isRegexKey(key)) {
      const problem = regexProblem(key.slice(1, -1));
      if (problem !== undefined) throw new UserFacingError(`error.loreRegex.${problem}`, { key });
    } else if (key.length > LORE_LIMITS.keyLength) {
      throw new UserFacingError("error.loreKeyTooLong", { key: key.slice(0, 20), max: LORE_LIMITS.keyLength });
    }
    if (!keys.some((k) => k.toLowerCase() === key.toLowerCase())) keys.push(key);
  }
  if (keys.length === 0 && !constant) throw new UserFacingError("error.loreNoKeys");
  if (keys.length > LORE_LIMITS.keys) {
    throw new UserFacingError("error.loreTooManyKeys", { count: keys.length, max: LORE_LIMITS.keys });
  }
  return { keys, content: text, constant, order };
}

/** Keys as stored: comma-separated. */
function storedKeys(keys: string[]): string {
  return keys.join(", ");
}

function ownerWhere(owner: LoreOwner) {
  return "storyId" in owner ? { storyId: owner.storyId } : { themeId: owner.themeId, storyId: null };
}

function counterKey(owner: LoreOwner): string {
  return "storyId" in owner ? `lore:story:${owner.storyId}` : `lore:theme:${owner.themeId}`;
}

function limitOf(owner: LoreOwner): number {
  return "storyId" in owner ? LORE_LIMITS.storyEntries : LORE_LIMITS.themeEntries;
}

export class LoreService {
  constructor(private readonly db: Db) {}

  /** The entries, numbered from 1. */
  async list(owner: LoreOwner): Promise<LoreView[]> {
    const rows = await this.db.loreEntry.findMany({ where: ownerWhere(owner), orderBy: [...LORE_ORDER] });
    return rows.map((r, i) => ({
      n: i + 1,
      id: r.id,
      keys: splitKeys(r.keys),
      content: r.content,
      constant: r.constant,
      order: r.order,
      source: r.source,
    }));
  }

  /** Entry `n`, or a reader-facing error naming the range. */
  async entry(owner: LoreOwner, n: number): Promise<LoreView> {
    const entries = await this.list(owner);
    const found = entries[n - 1];
    if (found === undefined || n < 1) throw new UserFacingError("error.loreNoEntry", { n, max: entries.length });
    return found;
  }

  /** Add an entry within the owner's limit; returns it with its number. */
  async add(owner: LoreOwner, input: LoreInput, source = "reader"): Promise<LoreView> {
    const key = counterKey(owner);
    await this.ensureCount(owner);
    const limit = limitOf(owner);
    try {
      const [, row] = await this.db.$transaction([
        takeCounter(this.db, key, { limit }),
        this.db.loreEntry.create({
          data: {
            ...ownerWhere(owner),
            keys: storedKeys(input.keys),
            content: input.content,
            constant: input.constant,
            order: input.order,
            source,
          },
        }),
      ]);
      const entries = await this.list(owner);
      return entries.find((e) => e.id === row.id) ?? { ...input, n: entries.length, id: row.id, source };
    } catch (error) {
      if (isPrismaError(error, "P2025")) throw new UserFacingError("error.loreFull", { max: limit });
      throw error;
    }
  }

  /** Change entry `n` (its source stays: an edited bible entry is still the bible's). */
  async edit(owner: LoreOwner, n: number, input: LoreInput): Promise<LoreView> {
    const entry = await this.entry(owner, n);
    await this.db.loreEntry.update({
      where: { id: entry.id },
      data: { keys: storedKeys(input.keys), content: input.content, constant: input.constant, order: input.order },
    });
    return { ...entry, ...input };
  }

  /** Remove entry `n`; its place in the limit is given back. */
  async remove(owner: LoreOwner, n: number): Promise<LoreView> {
    const entry = await this.entry(owner, n);
    await this.ensureCount(owner);
    try {
      await this.db.$transaction([
        this.db.loreEntry.delete({ where: { id: entry.id }, select: { id: true } }),
        this.db.counter.update({ where: { key: counterKey(owner) }, data: { count: { decrement: 1 } } }),
      ]);
    } catch (error) {
      // Removed meanwhile (another reader, another process): the list has moved on.
      if (isPrismaError(error, "P2025")) throw new UserFacingError("error.loreNoEntry", { n, max: n - 1 });
      throw error;
    }
    return entry;
  }

  private ensureCount(owner: LoreOwner): Promise<void> {
    return ensureCounter(this.db, counterKey(owner), {
      seed: () => this.db.loreEntry.count({ where: ownerWhere(owner) }),
    });
  }
}

/**
 * The writes that copy a theme's lore into a story started with it (source "theme"), for
 * the transaction that creates the story. Entries made later in the theme stay the theme's.
 */
export async function copyThemeLore(tx: Pick<Db, "loreEntry">, themeId: string, storyId: string): Promise<number> {
  const rows = await tx.loreEntry.findMany({ where: { themeId, storyId: null }, orderBy: [...LORE_ORDER] });
  if (rows.length === 0) return 0;
  const base = Date.now();
  await tx.loreEntry.createMany({
    // createdAt keeps the theme's order in the story's numbering.
    data: rows.slice(0, LORE_LIMITS.storyEntries).map((r, i) => ({
      storyId,
      keys: r.keys,
      content: r.content,
      constant: r.constant,
      order: r.order,
      source: "theme",
      createdAt: new Date(base + i),
    })),
  });
  return rows.length;
}

/**
 * The agent's bible as lore rows (source "bible"): the characters met for the first time
 * and an opening's places, each keyed by its name. For the chapter's save.
 */
export function bibleLoreRows(
  storyId: string,
  characters: { name: string; role: string; appearance: string }[],
  places: { name: string; description: string }[],
  at = new Date(),
) {
  const entries: LoreEntry[] = [
    ...characters.map(characterLore),
    ...places.filter((p) => p.description.trim() !== "").map(placeLore),
  ];
  return entries.map((e, i) => ({
    storyId,
    keys: storedKeys(e.keys),
    content: e.content.slice(0, LORE_LIMITS.content),
    source: "bible",
    createdAt: new Date(at.getTime() + i),
  }));
}

/** The counter a story's lore entries are counted by (the chapter's save adds its bible entries to it). */
export function storyLoreCounter(storyId: string): string {
  return counterKey({ storyId });
}
