/**
 * Inline-button payloads. Telegram allows 1-64 bytes of `callback_data`, so a
 * button carries compact ids only; everything else is looked up (and checked)
 * in the database when it is pressed. A forged or mangled payload decodes to
 * undefined.
 *
 *   g|<genre>                  a genre at /start
 *   p|<storyId>|<rev>|<pos>    pick a choice
 *   v|<storyId>|<rev>|<pos>    vote for a choice
 *   x|<storyId>|<rev>          close the vote
 *   w|<storyId>|<rev>          suggest your own
 *   r|<storyId>                retry a failed chapter
 *   u|<chapterId>              thumbs up on a finished chapter
 *   d|<chapterId>              thumbs down on it
 */
import { GENRES, type Genre } from "../../src/agent/types.ts";

export type CallbackAction =
  | { kind: "genre"; genre: Genre }
  | { kind: "pick"; storyId: string; revision: number; position: number }
  | { kind: "vote"; storyId: string; revision: number; position: number }
  | { kind: "close"; storyId: string; revision: number }
  | { kind: "suggest"; storyId: string; revision: number }
  | { kind: "retry"; storyId: string }
  | { kind: "rate"; chapterId: string; value: 1 | -1 };

export const CALLBACK_DATA_MAX_BYTES = 64;

const TAG = {
  genre: "g",
  pick: "p",
  vote: "v",
  close: "x",
  suggest: "w",
  retry: "r",
  up: "u",
  down: "d",
} as const;

const ID = /^[A-Za-z0-9_-]{1,40}$/;
const NUMBER = /^\d{1,9}$/;

export function encodeCallback(action: CallbackAction): string {
  const parts: (string | number)[] = [];
  if (action.kind === "genre") parts.push(TAG.genre, action.genre);
  else if (action.kind === "rate") parts.push(action.value === 1 ? TAG.up : TAG.down, checkId(action.chapterId));
  else parts.push(TAG[action.kind], checkId(action.storyId));
  if ("revision" in action) parts.push(action.revision);
  if ("position" in action) parts.push(action.position);
  const data = parts.join("|");
  if (Buffer.byteLength(data, "utf8") > CALLBACK_DATA_MAX_BYTES) {
    throw new RangeError(`callback data over ${CALLBACK_DATA_MAX_BYTES} bytes: ${data}`);
  }
  return data;
}

/** An id that would not decode back (too long, a separator in it) is refused at once. */
function checkId(id: string): string {
  if (!ID.test(id)) throw new RangeError(`id not encodable in callback data: ${id}`);
  return id;
}

export function decodeCallback(data: string | undefined): CallbackAction | undefined {
  if (data === undefined || Buffer.byteLength(data, "utf8") > CALLBACK_DATA_MAX_BYTES) return undefined;
  const [tag, id = "", a, b, ...extra] = data.split("|");
  if (extra.length > 0) return undefined;
  const n = (v: string | undefined) => (v !== undefined && NUMBER.test(v) ? Number(v) : undefined);
  if (tag === TAG.genre) {
    const genre = GENRES.find((g) => g === id);
    return genre === undefined || a !== undefined ? undefined : { kind: "genre", genre };
  }
  if (!ID.test(id)) return undefined;
  const revision = n(a);
  const position = n(b);
  switch (tag) {
    case TAG.retry:
      return a === undefined ? { kind: "retry", storyId: id } : undefined;
    case TAG.up:
    case TAG.down:
      return a === undefined ? { kind: "rate", chapterId: id, value: tag === TAG.up ? 1 : -1 } : undefined;
    case TAG.close:
    case TAG.suggest:
      if (revision === undefined || b !== undefined) return undefined;
      return { kind: tag === TAG.close ? "close" : "suggest", storyId: id, revision };
    case TAG.pick:
    case TAG.vote:
      if (revision === undefined || position === undefined || position < 1) return undefined;
      return { kind: tag === TAG.pick ? "pick" : "vote", storyId: id, revision, position };
    default:
      return undefined;
  }
}
