/**
 * Pure text splitting for platform length limits.
 *
 * Lengths are measured in UTF-16 code units (`string.length`). Telegram counts
 * UTF-16 code units; Discord counts characters, and a UTF-16 count is never
 * smaller than a code point count, so staying under the limit in code units is
 * safe on both (an emoji outside the BMP costs 2 here, 1 on Discord).
 */

/**
 * Where to cut `text`: the head is `text.slice(0, end)`, the rest starts at
 * `text.slice(next)`. The characters in between are whitespace dropped at the cut.
 */
export interface Cut {
  end: number;
  next: number;
}

const WHITESPACE = /\s/;
/** Latin sentence end: punctuation, optional closing quotes/brackets, then whitespace. */
const LATIN_SENTENCE_END = /[.!?…]+["'”’»)\]]*(?=\s)/g;
/** CJK sentence end: full-width punctuation and closing quotes; no space follows in CJK text. */
const CJK_SENTENCE_END = /[。！？]+[」』”’）】》]*/g;

/**
 * A head shorter than this fraction of `max` is only taken from a boundary kind
 * when no later boundary kind gives a fuller head: a 10-character message
 * followed by a full one reads worse than a cut at a sentence end.
 */
const MIN_FILL = 0.5;

/**
 * The best place to cut `text` so that the head is at most `max` code units,
 * or `undefined` when the whole text fits. Preference: blank line, newline,
 * sentence end (. ! ? 。！？), space, then a hard cut at a grapheme boundary
 * (never inside a surrogate pair).
 */
export function findCut(text: string, max: number): Cut | undefined {
  assertMax(max);
  if (text.length <= max) return undefined;
  const finders = [
    (t: string) => lastSeparator(t, "\n\n", max),
    (t: string) => lastSeparator(t, "\n", max),
    (t: string) => lastSentenceEnd(t, max),
    (t: string) => lastSpace(t, max),
  ];
  const candidates = finders.map((find) => find(text));
  const fullEnough = candidates.find((c) => c !== undefined && c >= max * MIN_FILL);
  const end = fullEnough ?? candidates.find((c) => c !== undefined) ?? hardCut(text, max);
  return { end, next: skipWhitespace(text, end) };
}

/**
 * Split `text` into parts of at most `max` code units each (see `findCut` for
 * where). Parts keep their text exactly; only whitespace at a cut is dropped, so
 * joining the parts with the cut separators gives back the original.
 * An empty text gives no parts.
 */
export function splitForLimit(text: string, max: number): string[] {
  assertMax(max);
  const parts: string[] = [];
  let rest = text;
  for (let cut = findCut(rest, max); cut !== undefined; cut = findCut(rest, max)) {
    parts.push(rest.slice(0, cut.end));
    rest = rest.slice(cut.next);
  }
  if (rest.length > 0) parts.push(rest);
  return parts;
}

function assertMax(max: number): void {
  // 2 is the smallest limit that can always hold a surrogate pair.
  if (!Number.isInteger(max) || max < 2) throw new RangeError(`split limit must be an integer >= 2, got ${max}`);
}

/** End of the head before the last `separator` starting at or before `max`, trailing whitespace trimmed. */
function lastSeparator(text: string, separator: string, max: number): number | undefined {
  for (let at = text.lastIndexOf(separator, max); at > 0; at = text.lastIndexOf(separator, at - 1)) {
    const end = trimEndIndex(text, at);
    if (end > 0) return end;
  }
  return undefined;
}

function lastSentenceEnd(text: string, max: number): number | undefined {
  // Look one past max: the whitespace after a sentence that ends exactly at max.
  const window = text.slice(0, max + 1);
  let best: number | undefined;
  for (const pattern of [LATIN_SENTENCE_END, CJK_SENTENCE_END]) {
    for (const match of window.matchAll(pattern)) {
      const end = match.index + match[0].length;
      if (end <= max && (best === undefined || end > best)) best = end;
    }
  }
  return best;
}

function lastSpace(text: string, max: number): number | undefined {
  for (let at = max; at > 0; at--) {
    if (WHITESPACE.test(text.charAt(at))) {
      const end = trimEndIndex(text, at);
      if (end > 0) return end;
    }
  }
  return undefined;
}

/** Last grapheme boundary at or before `max`; falls back to a code point boundary for huge graphemes. */
function hardCut(text: string, max: number): number {
  const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  let end = 0;
  for (const { index } of segmenter.segment(text.slice(0, max + 2))) {
    if (index > max) break;
    end = index;
  }
  if (end > 0) return end;
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
}

function trimEndIndex(text: string, end: number): number {
  let i = end;
  while (i > 0 && WHITESPACE.test(text.charAt(i - 1))) i--;
  return i;
}

function skipWhitespace(text: string, start: number): number {
  let i = start;
  while (i < text.length && WHITESPACE.test(text.charAt(i))) i++;
  return i;
}

/** Cut `text` to `max` code units with an ellipsis, never inside a surrogate pair (captions, labels). */
export function clamp(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}
