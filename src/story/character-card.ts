/**
 * SillyTavern character cards, pure: reading a card out of a JSON file or a PNG (a `tEXt`
 * chunk `ccv3` (V3) or `chara` (V2), base64 of the card's JSON), and writing one. No
 * database here; src/story/cards.ts brings a card into a story and back out.
 *
 * Specs: Character Card V2 (`chara_card_v2`) and V3 (`chara_card_v3`). A V1 card (the
 * fields at the top level, no `spec`) is read as a V2 card: it has the same fields, and a
 * reader exporting it back gets a V3 card. Anything else is refused with the reason.
 */
import type { MessageId } from "../i18n/messages.ts";
import { UserFacingError } from "./errors.ts";

/** A card file larger than this is refused before it is read. */
export const CARD_MAX_BYTES = 5 * 1024 * 1024;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One entry of a card's `character_book`, with the fields the story uses. */
export interface CardBookEntry {
  keys: string[];
  content: string;
  constant: boolean;
  /** `insertion_order`: lower goes first. */
  order: number;
  enabled: boolean;
  /** `use_regex` (V3): the keys are regular expressions. */
  regex: boolean;
  /** Everything else the entry carried (name, comment, extensions...), kept for export. */
  rest: Record<string, unknown>;
}

/** A card as read: the fields the story uses, and the card's own data kept whole. */
export interface CharacterCard {
  spec: "chara_card_v2" | "chara_card_v3";
  /** A V1 card read as V2. */
  v1: boolean;
  name: string;
  description: string;
  personality: string;
  scenario: string;
  firstMessage: string;
  book: { entries: CardBookEntry[]; rest: Record<string, unknown> } | undefined;
  /** The card's `data` without `character_book` (unknown fields and `extensions` included). */
  data: Record<string, unknown>;
}

/** Why a file is not a card we take (the message says it to the reader). */
export type CardProblem = "tooLarge" | "noCard" | "notPng" | "badJson" | "unknownSpec" | "notCard" | "damaged";

function refuse(problem: CardProblem, params: Record<string, string | number> = {}): never {
  throw new UserFacingError(`card.${problem}` satisfies MessageId, params);
}

/** Read a card from a file's bytes: a PNG (by its signature) or JSON. */
export function readCard(bytes: Uint8Array): CharacterCard {
  if (bytes.byteLength > CARD_MAX_BYTES) {
    refuse("tooLarge", { size: megabytes(bytes.byteLength), max: megabytes(CARD_MAX_BYTES) });
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isPng(buffer)) {
    const chunks = pngTextChunks(buffer);
    // A V3 PNG carries both; the V3 chunk is the card, `chara` only a fallback for older readers.
    const text = chunks.get("ccv3") ?? chunks.get("chara");
    if (text === undefined) refuse("noCard");
    return parseCard(Buffer.from(text.trim(), "base64").toString("utf8"));
  }
  // A JPEG, GIF or WebP (a Telegram photo is re-encoded as JPEG) carries no card.
  if (isOtherImage(buffer)) refuse("notPng");
  return parseCard(buffer.toString("utf8"));
}

function isOtherImage(buffer: Buffer): boolean {
  const head = buffer.subarray(0, 12);
  return (
    (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) ||
    head.subarray(0, 4).toString("latin1") === "GIF8" ||
    (head.subarray(0, 4).toString("latin1") === "RIFF" && head.subarray(8, 12).toString("latin1") === "WEBP")
  );
}

/** A card from its JSON text. */
export function parseCard(json: string): CharacterCard {
  let value: unknown;
  try {
    value = JSON.parse(json.replace(/^\uFEFF/, ""));
  } catch {
    refuse("badJson");
  }
  if (!isRecord(value)) refuse("notCard");
  const spec = value.spec;
  if (spec === undefined) {
    // V1: the fields at the top level.
    if (typeof value.name !== "string" || typeof value.description !== "string") refuse("notCard");
    return fromData("chara_card_v2", value, true);
  }
  if (spec !== "chara_card_v2" && spec !== "chara_card_v3") refuse("unknownSpec", { spec: String(spec).slice(0, 40) });
  if (!isRecord(value.data) || typeof value.data.name !== "string") refuse("notCard");
  return fromData(spec, value.data, false);
}

function fromData(spec: CharacterCard["spec"], raw: Record<string, unknown>, v1: boolean): CharacterCard {
  const { character_book: book, ...data } = raw;
  return {
    spec,
    v1,
    name: text(raw.name).trim(),
    description: text(raw.description),
    personality: text(raw.personality),
    scenario: text(raw.scenario),
    firstMessage: text(raw.first_mes),
    book: isRecord(book) ? readBook(book) : undefined,
    data,
  };
}

function readBook(book: Record<string, unknown>): CharacterCard["book"] {
  const { entries, ...rest } = book;
  const list = Array.isArray(entries) ? entries : isRecord(entries) ? Object.values(entries) : [];
  return {
    rest,
    entries: list.filter(isRecord).map((e) => {
      const {
        keys,
        content,
        constant,
        insertion_order: order,
        enabled,
        use_regex: regex,
        ...others
      } = e as Record<string, unknown>;
      return {
        keys: Array.isArray(keys) ? keys.filter((k): k is string => typeof k === "string") : [],
        content: text(content),
        constant: constant === true,
        order: typeof order === "number" && Number.isFinite(order) ? Math.round(order) : 100,
        enabled: enabled !== false,
        regex: regex === true,
        rest: others,
      };
    }),
  };
}

/** A V3 card as JSON text. */
export function writeCardJson(card: { data: Record<string, unknown> }): string {
  return `${JSON.stringify({ spec: "chara_card_v3", spec_version: "3.0", data: card.data }, null, 2)}\n`;
}

/**
 * A PNG carrying `json` as a card: the `tEXt` chunks `ccv3` (V3) and, for readers of V2,
 * `chara`, before `IEND`; earlier card chunks are replaced.
 */
export function writeCardPng(png: Uint8Array, json: string, spec: "chara_card_v2" | "chara_card_v3"): Buffer {
  const buffer = Buffer.from(png);
  if (!isPng(buffer)) throw new Error("not a PNG");
  const base64 = Buffer.from(json, "utf8").toString("base64");
  const added =
    spec === "chara_card_v3" ? [textChunk("ccv3", base64), textChunk("chara", base64)] : [textChunk("chara", base64)];
  const parts: Buffer[] = [PNG_SIGNATURE];
  for (const chunk of pngChunks(buffer)) {
    if (chunk.type === "tEXt") {
      const keyword = chunk.data.subarray(0, Math.max(0, chunk.data.indexOf(0))).toString("latin1");
      if (keyword === "chara" || keyword === "ccv3") continue;
    }
    if (chunk.type === "IEND") parts.push(...added);
    parts.push(buffer.subarray(chunk.start, chunk.end));
  }
  return Buffer.concat(parts);
}

function isPng(buffer: Buffer): boolean {
  return buffer.byteLength >= 8 && buffer.subarray(0, 8).equals(PNG_SIGNATURE);
}

interface PngChunk {
  type: string;
  data: Buffer;
  /** The whole chunk (length, type, data, CRC) in the file. */
  start: number;
  end: number;
}

function* pngChunks(buffer: Buffer): Generator<PngChunk> {
  let at = 8;
  while (at + 12 <= buffer.byteLength) {
    const length = buffer.readUInt32BE(at);
    const end = at + 12 + length;
    if (end > buffer.byteLength) refuse("damaged");
    const type = buffer.subarray(at + 4, at + 8).toString("latin1");
    const data = buffer.subarray(at + 8, at + 8 + length);
    if (crc32(buffer.subarray(at + 4, at + 8 + length)) !== buffer.readUInt32BE(at + 8 + length)) refuse("damaged");
    yield { type, data, start: at, end };
    if (type === "IEND") return;
    at = end;
  }
}

/** The `tEXt` chunks of a PNG by keyword (the first of each). */
function pngTextChunks(buffer: Buffer): Map<string, string> {
  const found = new Map<string, string>();
  for (const chunk of pngChunks(buffer)) {
    if (chunk.type !== "tEXt") continue;
    const nul = chunk.data.indexOf(0);
    if (nul <= 0) continue;
    const keyword = chunk.data.subarray(0, nul).toString("latin1");
    if (!found.has(keyword)) found.set(keyword, chunk.data.subarray(nul + 1).toString("latin1"));
  }
  return found;
}

function textChunk(keyword: string, text: string): Buffer {
  const data = Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0]), Buffer.from(text, "latin1")]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.byteLength, 0);
  head.write("tEXt", 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 as PNG computes it over a chunk's type and data. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A size as the reader reads it: "5", "6.2". */
export function megabytes(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "");
}
