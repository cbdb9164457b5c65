/**
 * One codec for the reader actions a button (or a modal) carries, shared by every
 * platform: the same actions, the same id and number rules, the same refusal of anything
 * forged, mangled or foreign. Only the framing differs, to keep every button already
 * posted working:
 *
 *   Telegram callback data (1-64 bytes):   p|<storyId>|<rev>|<pos>
 *   Discord custom id (1-100 characters):  ink:p:<storyId>:<rev>:<pos>
 *
 * A button carries compact ids only; everything else is looked up (and checked) when it
 * is pressed, so a button pressed tomorrow still names its story and revision.
 *
 *   g <genre>                  a genre at /start
 *   t <themeId>                a theme at /start (checked against the chat's themes when pressed)
 *   p <storyId> <rev> <pos>    pick a choice (one reader decides)
 *   v <storyId> <rev> <pos>    vote for a choice
 *   x <storyId> <rev>          close the vote
 *   w <storyId> <rev>          suggest your own (a prompt for text, or a modal)
 *   m <storyId> <rev>          that modal's submit
 *   r <storyId>                retry a failed chapter
 *   u <chapterId>              thumbs up on a finished chapter
 *   d <chapterId>              thumbs down on it
 *   k <code>                   make my version of a shared story (its share code)
 *   tu <runId>                 thumbs up on a character's /talk reply
 *   td <runId>                 thumbs down on it
 */
import { GENRES, type Genre } from "../src/agent/types.ts";

export type ButtonAction =
  | { kind: "genre"; genre: Genre }
  | { kind: "theme"; themeId: string }
  | { kind: "pick"; storyId: string; revision: number; position: number }
  | { kind: "vote"; storyId: string; revision: number; position: number }
  | { kind: "close"; storyId: string; revision: number }
  | { kind: "suggest"; storyId: string; revision: number }
  | { kind: "suggestion"; storyId: string; revision: number }
  | { kind: "retry"; storyId: string }
  | { kind: "rate"; chapterId: string; value: 1 | -1 }
  | { kind: "remix"; code: string }
  | { kind: "rate-talk"; runId: string; value: 1 | -1 };

export type ButtonActionKind = ButtonAction["kind"];

/** How a platform frames an action. */
export interface ActionFormat {
  /** Named in errors. */
  name: string;
  /** First field, marking the ids as ours (Discord shares custom ids with other features). */
  prefix?: string;
  separator: string;
  /** The platform's limit, in UTF-8 bytes (Telegram) or characters (Discord). */
  max: { bytes: number } | { chars: number };
  /** Actions this platform's buttons carry; others neither encode nor decode. */
  kinds: readonly ButtonActionKind[];
}

export const TELEGRAM_CALLBACK_FORMAT = {
  name: "callback data",
  separator: "|",
  max: { bytes: 64 },
  kinds: ["genre", "theme", "pick", "vote", "close", "suggest", "retry", "rate", "remix", "rate-talk"],
} as const satisfies ActionFormat;

export const DISCORD_CUSTOM_ID_FORMAT = {
  name: "custom id",
  prefix: "ink",
  separator: ":",
  max: { chars: 100 },
  kinds: ["pick", "vote", "close", "suggest", "suggestion", "retry", "rate", "remix", "rate-talk"],
} as const satisfies ActionFormat;

/** Story and chapter ids (cuid, uuid): what fits every platform's limit with room to spare. */
const ID = /^[A-Za-z0-9_-]{1,40}$/;
/** Revisions and positions: no sign, no leading zero, at most nine digits. */
const NUMBER = /^(0|[1-9]\d{0,8})$/;

const TAG = {
  genre: "g",
  theme: "t",
  pick: "p",
  vote: "v",
  close: "x",
  suggest: "w",
  suggestion: "m",
  retry: "r",
  up: "u",
  down: "d",
  remix: "k",
  talkUp: "tu",
  talkDown: "td",
} as const;

function length(data: string, format: ActionFormat): number {
  return "bytes" in format.max ? Buffer.byteLength(data, "utf8") : data.length;
}

function limit(format: ActionFormat): number {
  return "bytes" in format.max ? format.max.bytes : format.max.chars;
}

/** The action as the platform's payload. Throws RangeError for what would not decode back. */
export function encodeAction(action: ButtonAction, format: ActionFormat): string {
  if (!format.kinds.includes(action.kind)) throw new RangeError(`${action.kind} has no ${format.name}`);
  const parts: (string | number)[] = format.prefix === undefined ? [] : [format.prefix];
  if (action.kind === "genre") parts.push(TAG.genre, action.genre);
  else if (action.kind === "theme") parts.push(TAG.theme, checkId(action.themeId));
  else if (action.kind === "rate") parts.push(action.value === 1 ? TAG.up : TAG.down, checkId(action.chapterId));
  else if (action.kind === "remix") parts.push(TAG.remix, checkId(action.code));
  else if (action.kind === "rate-talk")
    parts.push(action.value === 1 ? TAG.talkUp : TAG.talkDown, checkId(action.runId));
  else parts.push(TAG[action.kind], checkId(action.storyId));
  if ("revision" in action) parts.push(checkNumber(action.revision));
  if ("position" in action) parts.push(checkNumber(action.position));
  const data = parts.join(format.separator);
  if (length(data, format) > limit(format)) throw new RangeError(`${format.name} over ${limit(format)}: ${data}`);
  return data;
}

function checkId(id: string): string {
  if (!ID.test(id)) throw new RangeError(`id not encodable in a button: ${id}`);
  return id;
}

function checkNumber(n: number): number {
  if (!Number.isInteger(n) || !NUMBER.test(String(n))) throw new RangeError(`number not encodable: ${n}`);
  return n;
}

/** The action a payload carries; undefined for anything forged, mangled, foreign or oversized. */
export function decodeAction(data: string | null | undefined, format: ActionFormat): ButtonAction | undefined {
  if (typeof data !== "string" || data === "" || length(data, format) > limit(format)) return undefined;
  const fields = data.split(format.separator);
  if (format.prefix !== undefined && fields.shift() !== format.prefix) return undefined;
  const action = decodeFields(fields);
  return action !== undefined && format.kinds.includes(action.kind) ? action : undefined;
}

function decodeFields([tag, id = "", a, b, ...extra]: string[]): ButtonAction | undefined {
  if (extra.length > 0) return undefined;
  if (tag === TAG.genre) {
    const genre = GENRES.find((g) => g === id);
    return genre === undefined || a !== undefined ? undefined : { kind: "genre", genre };
  }
  if (!ID.test(id)) return undefined;
  if (tag === TAG.theme) return a === undefined ? { kind: "theme", themeId: id } : undefined;
  const n = (v: string | undefined) => (v !== undefined && NUMBER.test(v) ? Number(v) : undefined);
  const revision = n(a);
  const position = n(b);
  switch (tag) {
    case TAG.retry:
      return a === undefined ? { kind: "retry", storyId: id } : undefined;
    case TAG.remix:
      return a === undefined ? { kind: "remix", code: id } : undefined;
    case TAG.up:
    case TAG.down:
      return a === undefined ? { kind: "rate", chapterId: id, value: tag === TAG.up ? 1 : -1 } : undefined;
    case TAG.talkUp:
    case TAG.talkDown:
      return a === undefined ? { kind: "rate-talk", runId: id, value: tag === TAG.talkUp ? 1 : -1 } : undefined;
    case TAG.close:
    case TAG.suggest:
    case TAG.suggestion: {
      if (revision === undefined || b !== undefined) return undefined;
      const kind = tag === TAG.close ? "close" : tag === TAG.suggest ? "suggest" : "suggestion";
      return { kind, storyId: id, revision };
    }
    case TAG.pick:
    case TAG.vote:
      if (revision === undefined || position === undefined || position < 1) return undefined;
      return { kind: tag === TAG.pick ? "pick" : "vote", storyId: id, revision, position };
    default:
      return undefined;
  }
}

/** The actions a format's buttons carry. */
export type ActionOf<F extends ActionFormat> = Extract<ButtonAction, { kind: F["kinds"][number] }>;

/** Encode and decode in one platform's framing, typed to the actions it carries. */
export function codecFor<F extends ActionFormat>(format: F) {
  return {
    encode: (action: ActionOf<F>): string => encodeAction(action, format),
    decode: (data: string | null | undefined): ActionOf<F> | undefined =>
      decodeAction(data, format) as ActionOf<F> | undefined,
  };
}
