/**
 * Character cards in and out of a story (/card import, /card export). A card's character
 * becomes a `Character` row (name, appearance from its description, notes from its
 * personality; `card` keeps the card's own fields, unknown `extensions` included), its
 * `character_book` becomes lore (`LoreEntry`, source "card"). Reading and writing the file
 * itself is src/story/character-card.ts.
 */
import { VISUAL_LIMITS } from "../art/visual-bible.ts";
import type { Db } from "../store/db.ts";
import type { CardBookEntry, CharacterCard } from "./character-card.ts";
import { UserFacingError } from "./errors.ts";
import { findCharacter } from "./illustration-planning.ts";
import { LIMITS } from "./limits.ts";
import { LORE_LIMITS, storyLoreCounter } from "./lore-service.ts";
import type { Moderator } from "./moderation.ts";

/** What a card may bring into a story; longer text is cut and the reader told. */
export const CARD_LIMITS = {
  /** A character's name (as /character takes it). */
  name: 80,
  /** Appearance, from the card's description (the visual bible's limit). */
  appearance: VISUAL_LIMITS.appearance,
  /** Notes, from the card's personality. */
  notes: 1000,
  /** A new story's premise, built from the scenario, the character and the first message. */
  premise: LIMITS.scenario,
  /** Of which the scenario, and the first message that guides the opening. */
  scenario: 1000,
  firstMessage: 500,
  /** Lore entries taken from one card's book, their text and keys. */
  loreEntries: 50,
  /** An entry's text and keys: the limits of every lore entry (`/lore`). */
  loreContent: LORE_LIMITS.content,
  keysPerEntry: LORE_LIMITS.keys,
  keyLength: LORE_LIMITS.keyLength,
} as const satisfies Record<string, number>;

/** The card kept on the character (`Character.card`): what export writes back. */
interface StoredCard {
  spec: string;
  /** The card's `data` without its book. */
  data: Record<string, unknown>;
  /** The book's own fields without its entries. */
  book: Record<string, unknown> | null;
  /** Lore entry id -> the entry's other fields (name, comment, extensions...). */
  entries: Record<string, Record<string, unknown>>;
  /** What the import set, so export knows whether the reader changed them since. */
  imported: { appearance: string; notes: string };
}

/** A field cut to fit, for the reader. */
export interface CutField {
  field: string;
  length: number;
  max: number;
}

/** What an import did. */
export interface CardImport {
  name: string;
  /** The story already had this character: the card replaced its appearance, notes and card lore. */
  replaced: boolean;
  lore: number;
  cut: CutField[];
  /** Book entries left out: disabled, empty, or beyond the entry limit. */
  skipped: number;
}

/** A card made ready for a story: every text within its limit. */
export interface PreparedCard {
  card: CharacterCard;
  name: string;
  appearance: string;
  notes: string;
  lore: (Omit<CardBookEntry, "keys"> & { keys: string })[];
  cut: CutField[];
  skipped: number;
}

type CardTx = Pick<Db, "character" | "loreEntry" | "counter">;

export class CardService {
  constructor(
    private readonly db: Db,
    private readonly moderator?: Moderator,
  ) {}

  /** Cut a card's texts to the story's limits; refuses a card without a name. */
  prepare(card: CharacterCard): PreparedCard {
    const cut: CutField[] = [];
    const cutTo = (field: string, value: string, max: number) => {
      const clean = value.replace(/\0/g, "").trim();
      if (clean.length <= max) return clean;
      cut.push({ field, length: clean.length, max });
      return clean.slice(0, max).trimEnd();
    };
    const name = cutTo("name", card.name.replace(/\s+/g, " "), CARD_LIMITS.name);
    if (name === "") throw new UserFacingError("card.noName");
    let skipped = 0;
    const usable = (card.book?.entries ?? []).filter((e) => {
      const ok = e.enabled && e.content.trim() !== "" && (e.constant || e.keys.some((k) => k.trim() !== ""));
      if (!ok) skipped++;
      return ok;
    });
    if (usable.length > CARD_LIMITS.loreEntries) skipped += usable.length - CARD_LIMITS.loreEntries;
    const lore = usable.slice(0, CARD_LIMITS.loreEntries).map((e, i) => ({
      ...e,
      keys: loreKeys(e),
      content: cutTo(`character_book entry ${i + 1}`, e.content, CARD_LIMITS.loreContent),
    }));
    return {
      card,
      name,
      appearance: cutTo("description", card.description, CARD_LIMITS.appearance),
      notes: cutTo("personality", card.personality, CARD_LIMITS.notes),
      lore,
      cut,
      skipped,
    };
  }

  /**
   * A new story's premise from a card: its scenario, who the character is, and its first
   * message as the opening's direction; `{{char}}` and `{{user}}` spelled out.
   */
  premiseOf(prepared: PreparedCard): string {
    const { card, name } = prepared;
    const macros = (s: string) =>
      s
        .replace(/\{\{char\}\}|<BOT>/gi, name)
        .replace(/\{\{user\}\}|<USER>/gi, "you")
        .replace(/\0/g, "")
        .trim();
    const part = (field: string, value: string, max: number) => {
      if (value.length <= max) return value;
      prepared.cut.push({ field, length: value.length, max });
      return value.slice(0, max).trimEnd();
    };
    const scenario = part("scenario", macros(card.scenario), CARD_LIMITS.scenario);
    const who = macros(prepared.notes || prepared.appearance).slice(0, 300);
    const opening = part("first_mes", macros(card.firstMessage), CARD_LIMITS.firstMessage);
    return [
      scenario === "" ? `A story with ${name}.` : scenario,
      who === "" ? `Main character: ${name}.` : `Main character: ${name}: ${who}`,
      opening === "" ? "" : `The story opens like this: ${opening}`,
    ]
      .filter((s) => s !== "")
      .join("\n\n")
      .slice(0, CARD_LIMITS.premise);
  }

  /** Refuse a card whose text may not enter a story of this rating (when moderation is on). */
  async check(prepared: PreparedCard, rating: string): Promise<void> {
    if (this.moderator === undefined) return;
    const text = [prepared.name, prepared.appearance, prepared.notes, ...prepared.lore.map((l) => l.content)].join(
      "\n",
    );
    await this.moderator.check(text.slice(0, 8000), rating);
  }

  /** Bring a card's character and book into an existing story, in one transaction. */
  async importInto(storyId: string, prepared: PreparedCard): Promise<CardImport> {
    const story = await this.db.story.findUnique({ where: { id: storyId }, select: { rating: true } });
    if (story === null) throw new UserFacingError("error.noStory");
    await this.check(prepared, story.rating);
    return this.db.$transaction((tx) => this.write(tx, storyId, prepared));
  }

  /**
   * Write the character and its lore (inside the caller's transaction: a new story's, so
   * the opening chapter already knows them). A character of the same name is replaced,
   * with the lore its earlier card brought.
   */
  async write(tx: CardTx, storyId: string, prepared: PreparedCard): Promise<CardImport> {
    const cast = await tx.character.findMany({ where: { storyId }, select: { id: true, name: true, card: true } });
    const exact = cast.find((c) => c.name.toLowerCase() === prepared.name.toLowerCase());
    let removed = 0;
    if (exact !== undefined) {
      const earlier = storedCard(exact.card);
      const ids = Object.keys(earlier?.entries ?? {});
      if (ids.length > 0) {
        removed = (await tx.loreEntry.deleteMany({ where: { storyId, id: { in: ids }, source: "card" } })).count;
      }
    }
    // The story's lore limit holds for a card's book too: what does not fit is left out.
    const room = Math.max(0, LORE_LIMITS.storyEntries - (await tx.loreEntry.count({ where: { storyId } })));
    const lore = prepared.lore.slice(0, room);
    const entries: StoredCard["entries"] = {};
    for (const entry of lore) {
      const row = await tx.loreEntry.create({
        data: {
          storyId,
          keys: entry.keys,
          content: entry.content,
          constant: entry.constant,
          order: entry.order,
          source: "card",
        },
        select: { id: true },
      });
      entries[row.id] = withoutNul(entry.rest);
    }
    const card: StoredCard = {
      spec: prepared.card.spec,
      data: withoutNul(prepared.card.data),
      book: prepared.card.book === undefined ? null : withoutNul(prepared.card.book.rest),
      entries,
      imported: { appearance: prepared.appearance, notes: prepared.notes },
    };
    const fields = { appearance: prepared.appearance, notes: prepared.notes, card: card as object };
    if (exact !== undefined) {
      // A new look: the old portrait no longer shows this character.
      await tx.character.update({ where: { id: exact.id }, data: { ...fields, portraitId: null } });
    } else {
      await tx.character.create({ data: { storyId, name: prepared.name, role: "main character", ...fields } });
    }
    // Counted once the story's lore counter exists (it starts from the rows otherwise).
    if (lore.length !== removed) {
      await tx.counter.updateMany({
        where: { key: storyLoreCounter(storyId) },
        data: { count: { increment: lore.length - removed } },
      });
    }
    return {
      name: exact?.name ?? prepared.name,
      replaced: exact !== undefined,
      lore: lore.length,
      cut: prepared.cut,
      skipped: prepared.skipped + prepared.lore.length - lore.length,
    };
  }

  /**
   * A V3 card's `data` for a character of the story: its card's own fields kept (unknown
   * ones and `extensions` included), appearance and notes as they are now, and its lore
   * (the entries its card brought, and those keyed by its name) as `character_book`.
   */
  async exportData(
    storyId: string,
    name: string,
  ): Promise<{ name: string; data: Record<string, unknown>; lore: number }> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        premise: true,
        characters: { orderBy: { createdAt: "asc" } },
        lore: { orderBy: [{ order: "asc" }, { createdAt: "asc" }] },
      },
    });
    if (story === null) throw new UserFacingError("error.noStory");
    const character = findCharacter(story.characters, name);
    if (character === undefined) {
      throw new UserFacingError("character.unknown", {
        name: name.trim(),
        cast: story.characters.map((c) => c.name).join(", ") || "—",
      });
    }
    const stored = storedCard(character.card);
    const own = stored?.data ?? {};
    const names = nameKeys(character.name);
    const lore = story.lore.filter(
      (l) => stored?.entries[l.id] !== undefined || splitKeys(l.keys).some((k) => names.includes(k.toLowerCase())),
    );
    const unchanged = (now: string, field: "appearance" | "notes", original: unknown) =>
      stored !== undefined && now === stored.imported[field] && typeof original === "string" ? original : now;
    const data: Record<string, unknown> = {
      mes_example: "",
      creator_notes: "",
      system_prompt: "",
      post_history_instructions: "",
      alternate_greetings: [],
      group_only_greetings: [],
      tags: [],
      creator: "",
      character_version: "",
      scenario: story.premise,
      first_mes: "",
      ...own,
      name: character.name,
      description: unchanged(character.appearance, "appearance", own.description),
      personality: unchanged(character.notes, "notes", own.personality),
      extensions: isRecord(own.extensions) ? own.extensions : {},
      character_book: {
        ...(stored?.book ?? {}),
        extensions: isRecord(stored?.book?.extensions) ? stored.book.extensions : {},
        entries: lore.map((l, i) => bookEntry(l, i, stored?.entries[l.id])),
      },
    };
    return { name: character.name, data, lore: lore.length };
  }
}

/** The story's comma-separated keys for a book entry: regex keys as `/pattern/`, commas dropped. */
function loreKeys(entry: CardBookEntry): string {
  return entry.keys
    .map((k) => k.trim())
    .filter((k) => k !== "" && !(entry.regex && k.includes(",")))
    .map((k) => (entry.regex && !/^\/.*\/$/.test(k) ? `/${k}/` : k.replace(/,/g, " ")))
    .map((k) => k.slice(0, CARD_LIMITS.keyLength))
    .slice(0, CARD_LIMITS.keysPerEntry)
    .join(", ");
}

function splitKeys(keys: string): string[] {
  return keys
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "");
}

/** Keys that name a character: the whole name and each part of it. */
function nameKeys(name: string): string[] {
  const lower = name.toLowerCase();
  return [lower, ...lower.split(/\s+/).filter((p) => p.length >= 3)];
}

function bookEntry(
  lore: { keys: string; content: string; constant: boolean; order: number },
  index: number,
  rest: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const keys = splitKeys(lore.keys);
  const regex = keys.some((k) => /^\/.+\/$/.test(k));
  return {
    id: index,
    name: "",
    comment: "",
    priority: 10,
    selective: false,
    secondary_keys: [],
    case_sensitive: false,
    position: "before_char",
    ...(rest ?? {}),
    keys: regex ? keys.map((k) => (/^\/.+\/$/.test(k) ? k.slice(1, -1) : escapeRegex(k))) : keys,
    content: lore.content,
    constant: lore.constant,
    insertion_order: lore.order,
    enabled: true,
    use_regex: regex,
    extensions: isRecord(rest?.extensions) ? rest.extensions : {},
  };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function storedCard(value: unknown): StoredCard | undefined {
  if (!isRecord(value) || !isRecord(value.data) || !isRecord(value.imported)) return undefined;
  return {
    spec: typeof value.spec === "string" ? value.spec : "chara_card_v2",
    data: value.data,
    book: isRecord(value.book) ? value.book : null,
    entries: isRecord(value.entries) ? (value.entries as StoredCard["entries"]) : {},
    imported: {
      appearance: typeof value.imported.appearance === "string" ? value.imported.appearance : "",
      notes: typeof value.imported.notes === "string" ? value.imported.notes : "",
    },
  };
}

/** A card's JSON without NUL characters, which PostgreSQL refuses in text. */
function withoutNul<T>(value: T): T {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) =>
    typeof v === "string" ? v.replace(/\0/g, "") : v,
  ) as T;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
