/**
 * Button and modal `custom_id`s. Discord allows 1-100 characters, so a component
 * carries compact ids only (story, revision, position); everything else is
 * looked up (and checked) in the database when it is pressed. Ids survive a
 * restart: a button pressed tomorrow still names its story and revision.
 *
 *   ink:p:<storyId>:<rev>:<pos>   pick a choice (one reader decides)
 *   ink:v:<storyId>:<rev>:<pos>   vote for a choice
 *   ink:x:<storyId>:<rev>         close the vote
 *   ink:w:<storyId>:<rev>         "suggest your own" / "write your own": opens a modal
 *   ink:m:<storyId>:<rev>         that modal's submit (the text is in `SUGGESTION_INPUT_ID`)
 *   ink:r:<storyId>               retry a failed chapter
 *   ink:u:<chapterId>             thumbs up on a finished chapter
 *   ink:d:<chapterId>             thumbs down on it
 *
 * Anything else (another bot feature's ids, a forged or mangled id) decodes to undefined.
 */

export type CustomIdAction =
  | { kind: "pick"; storyId: string; revision: number; position: number }
  | { kind: "vote"; storyId: string; revision: number; position: number }
  | { kind: "close"; storyId: string; revision: number }
  | { kind: "suggest"; storyId: string; revision: number }
  | { kind: "suggestion"; storyId: string; revision: number }
  | { kind: "retry"; storyId: string }
  | { kind: "rate"; chapterId: string; value: 1 | -1 };

export const CUSTOM_ID_MAX_LENGTH = 100;
export const CUSTOM_ID_PREFIX = "ink";

/** The custom id of the text input inside the suggestion modal. */
export const SUGGESTION_INPUT_ID = "text";

const TAG = {
  pick: "p",
  vote: "v",
  close: "x",
  suggest: "w",
  suggestion: "m",
  retry: "r",
  up: "u",
  down: "d",
} as const;

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const NUMBER = /^(0|[1-9]\d{0,8})$/;

export function encodeCustomId(action: CustomIdAction): string {
  const [tag, target] =
    action.kind === "rate"
      ? [action.value === 1 ? TAG.up : TAG.down, action.chapterId]
      : [TAG[action.kind], action.storyId];
  if (!ID.test(target)) throw new RangeError(`id not encodable in a custom id: ${target}`);
  const parts: (string | number)[] = [CUSTOM_ID_PREFIX, tag, target];
  if ("revision" in action) parts.push(checkNumber(action.revision));
  if ("position" in action) parts.push(checkNumber(action.position));
  const id = parts.join(":");
  if (id.length > CUSTOM_ID_MAX_LENGTH) throw new RangeError(`custom id over ${CUSTOM_ID_MAX_LENGTH} chars: ${id}`);
  return id;
}

function checkNumber(n: number): number {
  if (!Number.isInteger(n) || n < 0 || !NUMBER.test(String(n))) throw new RangeError(`not encodable: ${n}`);
  return n;
}

export function decodeCustomId(id: string | undefined | null): CustomIdAction | undefined {
  if (typeof id !== "string" || id.length === 0 || id.length > CUSTOM_ID_MAX_LENGTH) return undefined;
  const [prefix, tag, target = "", a, b, ...extra] = id.split(":");
  if (prefix !== CUSTOM_ID_PREFIX || extra.length > 0 || !ID.test(target)) return undefined;
  const n = (v: string | undefined) => (v !== undefined && NUMBER.test(v) ? Number(v) : undefined);
  const revision = n(a);
  const position = n(b);
  switch (tag) {
    case TAG.retry:
      return a === undefined ? { kind: "retry", storyId: target } : undefined;
    case TAG.up:
    case TAG.down:
      return a === undefined ? { kind: "rate", chapterId: target, value: tag === TAG.up ? 1 : -1 } : undefined;
    case TAG.close:
    case TAG.suggest:
    case TAG.suggestion: {
      if (revision === undefined || b !== undefined) return undefined;
      const kind = tag === TAG.close ? "close" : tag === TAG.suggest ? "suggest" : "suggestion";
      return { kind, storyId: target, revision };
    }
    case TAG.pick:
    case TAG.vote:
      if (revision === undefined || position === undefined || position < 1) return undefined;
      return { kind: tag === TAG.pick ? "pick" : "vote", storyId: target, revision, position };
    default:
      return undefined;
  }
}
