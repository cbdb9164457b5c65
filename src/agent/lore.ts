/**
 * Lore (world info): entries that enter the prompt when one of their keys comes up.
 * Pure: key parsing, the safety check of `/regex/` keys, key matching, and the
 * selection of entries for a prompt (recursive, bounded, within a token budget).
 *
 * A key is a keyword matched case-insensitively as a whole word (as a substring when it
 * has CJK characters, which have no spaces), or a `/regex/` matched case-insensitively.
 * A regex key is refused when it is long or could backtrack catastrophically (nested or
 * alternated quantified groups, backreferences, lookarounds); and every text a key is
 * matched against is bounded (the prompt's own sections), so matching stays linear-ish.
 */
import { type Context, createContext, Script } from "node:vm";
import { estimateTokens, hasCjk } from "./tokens.ts";

/** A lore entry as the agent reads it. */
export interface LoreEntry {
  keys: string[];
  content: string;
  /** Always in the prompt, whatever comes up. */
  constant?: boolean;
  /** Lower goes in first after the constant entries (default 100). */
  order?: number;
  /** reader | bible | card | theme */
  source?: string;
}

/** Longest `/regex/` key (its pattern, between the slashes). */
export const MAX_REGEX_LENGTH = 60;

/**
 * Split a comma-separated key list; a `/regex/` key may hold commas (`/a{1,3}/`): it runs
 * from its opening slash to a closing slash followed by a comma or the end.
 */
export function splitKeys(text: string): string[] {
  const keys: string[] = [];
  let rest = text.trim();
  while (rest !== "") {
    let key: string;
    const close = rest.startsWith("/") ? closingSlash(rest) : -1;
    if (close > 0) {
      key = rest.slice(0, close + 1);
      rest = rest.slice(close + 1).replace(/^\s*,?/, "");
    } else {
      const comma = rest.indexOf(",");
      key = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? "" : rest.slice(comma + 1);
    }
    key = key.trim();
    if (key !== "") keys.push(key);
    rest = rest.trim();
  }
  return keys;
}

/** Index of the slash closing a regex key that starts at 0: one followed by a comma or the end. */
function closingSlash(text: string): number {
  for (let i = 1; i < text.length; i++) {
    if (text[i] === "\\") {
      i++;
      continue;
    }
    if (text[i] === "/" && /^\s*(,|$)/.test(text.slice(i + 1))) return i;
  }
  return -1;
}

/** Whether a key is a `/regex/`. */
export function isRegexKey(key: string): boolean {
  return key.length >= 3 && key.startsWith("/") && key.endsWith("/");
}

export type RegexProblem = "tooLong" | "invalid" | "unsafe";

/**
 * Why a regex pattern is refused, or undefined when it is accepted. Unsafe: backreferences
 * and lookarounds, and any quantified group that itself holds a quantifier or an
 * alternation (`(a+)+`, `(a|aa)*`, `(\w+\s?)*`): the shapes that backtrack exponentially.
 */
export function regexProblem(pattern: string): RegexProblem | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return "tooLong";
  try {
    new RegExp(pattern, "iu");
  } catch {
    return "invalid";
  }
  if (/\\[1-9]|\\k<|\(\?<?[=!]/.test(pattern)) return "unsafe";
  // Walk the groups: a group whose body holds a quantifier or `|`, quantified itself, is unsafe.
  const stack: { risky: boolean }[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "(") stack.push({ risky: false });
    else if (c === ")") {
      const group = stack.pop();
      const quantified = /^([*+]|\{\d*,\d*\}|\{\d+\})/.exec(pattern.slice(i + 1));
      const repeats = quantified !== null && !/^\{[01]\}|^\{0?,1\}/.test(quantified[0]);
      if (group?.risky === true && repeats) return "unsafe";
      // A group with a quantifier inside makes its enclosing group risky too.
      const top = stack[stack.length - 1];
      if (top !== undefined && (group?.risky === true || repeats)) top.risky = true;
    } else if (c === "|" || c === "*" || c === "+" || c === "{" || c === "?") {
      const top = stack[stack.length - 1];
      // `(?:` is a group's opening, not a quantifier.
      if (top !== undefined && !(c === "?" && pattern[i - 1] === "(")) top.risky = true;
    }
  }
  return undefined;
}

const WORD_EDGE = "[\\p{L}\\p{N}_]";

/** Milliseconds one `/regex/` key may take on one text before it counts as no match. */
export const REGEX_TIME_BOX_MS = 25;
/** Milliseconds all `/regex/` keys may take in one selection (many slow keys must not add up). */
export const REGEX_SELECTION_MS = 250;

/** Time the regex keys of one selection may still spend (shared by its tests). */
export class RegexBudget {
  constructor(public remainingMs = REGEX_SELECTION_MS) {}
}

const regexScript = new Script("re.test(s)");
let regexContext: Context | undefined;

/**
 * A regex test that cannot hang the process: run in a VM context with a timeout, which
 * interrupts the regex engine. A time-out counts as no match (tried twice while the
 * budget lasts: the watchdog can fire early on a busy machine). Every try is charged to
 * `budget`; once it is spent, regex keys match nothing.
 */
function timeBoxedTest(re: RegExp, text: string, budget: RegexBudget): boolean {
  regexContext ??= createContext({});
  regexContext.re = re;
  regexContext.s = text;
  for (let attempt = 0; attempt < 2; attempt++) {
    const timeout = Math.min(REGEX_TIME_BOX_MS, Math.floor(budget.remainingMs));
    if (timeout < 1) return false;
    const started = performance.now();
    try {
      return regexScript.runInContext(regexContext, { timeout }) === true;
    } catch {
      // Timed out: once more if the budget allows, then no match.
    } finally {
      budget.remainingMs -= performance.now() - started;
    }
  }
  return false;
}

/**
 * A key as a test of a text; undefined for a key that never matches (empty, or a refused
 * regex). Regex keys spend `budget` (a fresh one when none is given).
 */
export function keyMatcher(key: string, budget = new RegexBudget()): ((text: string) => boolean) | undefined {
  if (isRegexKey(key)) {
    const pattern = key.slice(1, -1);
    if (regexProblem(pattern) !== undefined) return undefined;
    const re = new RegExp(pattern, "iu");
    return (text) => timeBoxedTest(re, text, budget);
  }
  const trimmed = key.trim();
  if (trimmed === "") return undefined;
  const escaped = trimmed.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const re = hasCjk(trimmed)
    ? new RegExp(escaped, "iu")
    : new RegExp(`(?<!${WORD_EDGE})${escaped}(?!${WORD_EDGE})`, "iu");
  return (text) => re.test(text);
}

/** Whether one of the entry's keys appears in the text. */
export function entryMatches(entry: Pick<LoreEntry, "keys">, text: string, budget = new RegexBudget()): boolean {
  return entry.keys.some((k) => keyMatcher(k, budget)?.(text) === true);
}

export interface LoreSelectionOptions {
  /** Tokens the selected entries may take (their formatted lines). */
  budgetTokens: number;
  /** How many times an added entry's text may trigger more entries. Default 2. */
  maxDepth?: number;
  /** Entries already in the prompt (by index): neither added nor counted again. */
  exclude?: ReadonlySet<number>;
}

export interface SelectedLore {
  /** Indexes of the entries added, in the order they go into the prompt. */
  included: number[];
  /** Indexes of the entries that came up but did not fit the budget. */
  leftOut: number[];
  /** Tokens the included entries take. */
  tokens: number;
}

/** An entry's line in the prompt. */
export function formatLoreLine(entry: LoreEntry): string {
  const keys = entry.keys.length === 0 ? "always" : entry.keys.join(", ");
  return `- ${keys}: ${entry.content.replace(/\s+/g, " ").trim()}`;
}

function rank(entries: readonly LoreEntry[], a: number, b: number): number {
  const ea = entries[a] as LoreEntry;
  const eb = entries[b] as LoreEntry;
  return Number(eb.constant === true) - Number(ea.constant === true) || (ea.order ?? 100) - (eb.order ?? 100) || a - b;
}

/**
 * The entries for a prompt. The first round takes the constant entries and those whose
 * keys appear in `texts`; each later round (up to `maxDepth`) those whose keys appear in
 * the text of entries just added. Within a round entries go in constant first, then by
 * order, while the budget allows; an entry that does not fit is left out (and triggers
 * nothing), a smaller one after it may still fit.
 */
export function selectLore(
  entries: readonly LoreEntry[],
  texts: readonly string[],
  options: LoreSelectionOptions,
): SelectedLore {
  const maxDepth = Math.max(0, options.maxDepth ?? 2);
  const seen = new Set<number>(options.exclude ?? []);
  const included: number[] = [];
  const leftOut: number[] = [];
  let tokens = 0;
  let scan = texts.join("\n");
  const budget = new RegexBudget();
  for (let depth = 0; depth <= maxDepth; depth++) {
    const round: number[] = [];
    entries.forEach((entry, index) => {
      if (seen.has(index)) return;
      if ((depth === 0 && entry.constant === true) || (scan !== "" && entryMatches(entry, scan, budget)))
        round.push(index);
    });
    if (round.length === 0) break;
    round.sort((a, b) => rank(entries, a, b));
    const added: string[] = [];
    for (const index of round) {
      seen.add(index);
      const entry = entries[index] as LoreEntry;
      const cost = estimateTokens(formatLoreLine(entry)) + 1;
      if (tokens + cost > options.budgetTokens) {
        leftOut.push(index);
        continue;
      }
      tokens += cost;
      included.push(index);
      added.push(entry.content);
    }
    scan = added.join("\n");
  }
  return { included, leftOut, tokens };
}

/** How a run records an entry: its keys, or "always" for a constant entry without keys. */
export function loreLabel(entry: LoreEntry): string {
  return entry.keys.length === 0 ? "always" : entry.keys.join(", ");
}

/**
 * The entries best matching a lookup: a key equal to the query, then a key matching
 * inside it (or it inside a key), then the query's words in the entry's text.
 */
export function searchLore(entries: readonly LoreEntry[], query: string, limit = 3): LoreEntry[] {
  const q = query.trim().toLowerCase();
  if (q === "") return [];
  const budget = new RegexBudget();
  const scored = entries.map((entry, index) => {
    let s = 0;
    for (const key of entry.keys) {
      const k = key.toLowerCase();
      if (!isRegexKey(key) && k === q) s = Math.max(s, 100);
      else if (keyMatcher(key, budget)?.(query) === true) s = Math.max(s, 50);
      else if (!isRegexKey(key) && k !== "" && k.includes(q)) s = Math.max(s, 40);
    }
    if (s === 0) {
      const words = q.split(/\s+/).filter((w) => w.length >= 3 || hasCjk(w));
      const text = entry.content.toLowerCase();
      s = words.filter((w) => text.includes(w)).length * 10;
    }
    return { entry, index, s };
  });
  return scored
    .filter((x) => x.s > 0)
    .sort((a, b) => b.s - a.s || a.index - b.index)
    .slice(0, limit)
    .map((x) => x.entry);
}

/** The lore a bible character becomes (source "bible"): its name (and first name) as keys. */
export function characterLore(c: { name: string; role: string; appearance: string }): LoreEntry {
  const first = c.name.trim().split(/\s+/)[0] ?? "";
  const keys = [c.name.trim(), ...(first !== c.name.trim() && first.length >= 3 ? [first] : [])];
  return { keys, content: characterLoreText(c), source: "bible" };
}

/** What a bible character's lore entry says (the memory compares it to tell an edited one). */
export function characterLoreText(c: { role: string; appearance: string }): string {
  return `${c.role.trim()}. Appearance: ${c.appearance.trim()}`.trim();
}

/** The lore a bible place becomes (source "bible"). */
export function placeLore(p: { name: string; description: string }): LoreEntry {
  return { keys: [p.name.trim()], content: p.description.trim(), source: "bible" };
}
