/**
 * The ReAct tools of the story agent. Following FireAct, a tool never throws into the
 * loop: invalid arguments, unknown tools and tool failures become the observation text
 * the model reads next.
 */
import type { ToolCall, ToolSpec } from "../llm/types.ts";
import { characterLoreText, loreLabel, searchLore } from "./lore.ts";
import { chaptersOutsideWindow, recallPassages } from "./memory.ts";
import {
  beginWritingArgsSchema,
  type ContinuityReport,
  checkContinuityArgsSchema,
  type IllustrateArgs,
  illustrateArgsSchema,
  lookupArgsSchema,
  parseJsonWith,
  REACT_TOOLS,
  recallArgsSchema,
  TOOL_NAMES,
} from "./schemas.ts";
import type { StorySnapshot } from "./types.ts";

export const NO_RECALL = "No earlier passage matches.";
export const ILLUSTRATION_NOTED =
  "Noted: this scene will be illustrated after the chapter, if the chat's budget allows.";

/** Up to 3 short earlier passages (outside the verbatim window) matching the query. */
export function recall(story: StorySnapshot, query: string, recentChapters: number): string {
  const found = recallPassages(chaptersOutsideWindow(story, recentChapters), query, 3);
  if (found.length === 0) return NO_RECALL;
  return found.map((p) => `(Chapter ${p.chapter}) ${p.text.replace(/\s+/g, " ").trim()}`).join("\n");
}

/**
 * A character or place by name (exact first, then partial, case-insensitive), and the lore
 * entries the name finds: a key equal to it or matching it (`/regex/` keys too), else its
 * words in an entry's text. A bible entry nobody edited is not said twice.
 */
export function lookup(story: StorySnapshot, name: string): string {
  const q = name.trim().toLowerCase();
  const { characters, places } = story.bible;
  const found: string[] = [];
  const character =
    characters.find((c) => c.name.toLowerCase() === q) ??
    characters.find((c) => c.name.toLowerCase().includes(q) || q.includes(c.name.toLowerCase()));
  const place =
    character === undefined
      ? (places.find((p) => p.name.toLowerCase() === q) ??
        places.find((p) => p.name.toLowerCase().includes(q) || q.includes(p.name.toLowerCase())))
      : undefined;
  const said = new Set<string>();
  if (character) {
    const notes = character.notes ? ` Notes: ${character.notes}` : "";
    found.push(`Character ${character.name}: ${character.role}. Appearance: ${character.appearance}.${notes}`);
    said.add(characterLoreText(character));
  } else if (place) {
    found.push(`Place ${place.name}: ${place.description}`);
    said.add(place.description.trim());
  }
  for (const entry of searchLore(story.lore, name, 3)) {
    if (entry.source === "bible" && said.has(entry.content.trim())) continue;
    found.push(`Lore (${loreLabel(entry)}): ${entry.content}`);
  }
  return found.length === 0 ? `Nothing known about ${name.trim()}.` : found.join("\n");
}

export interface ToolOutcome {
  name: string;
  /** Parsed arguments when they were JSON, else the raw string. */
  args: unknown;
  observation: string;
  /** False when the call was invalid or the tool failed (the observation says why). */
  ok: boolean;
  /** Set by begin_writing: the plan that ends the loop. */
  plan?: string;
  /** Set by illustrate: the scene to draw once the chapter is written. */
  illustration?: IllustrateArgs;
  /** The observation was replaced by noise (see `ToolNoise`). */
  noisy?: boolean;
}

/**
 * FireAct's robustness test: with probability `rate` a search tool (recall, lookup)
 * returns nothing or, as often, a random unrelated result. Evaluation only.
 */
export interface ToolNoise {
  rate: number;
  /** Source of randomness in [0, 1) (seeded in evaluations). */
  random: () => number;
}

export const NOTHING_FOUND = "No result.";

export interface ToolboxOptions {
  story: StorySnapshot;
  recentChapters: number;
  noise?: ToolNoise;
  /** Runs the continuity check model (records its own run). */
  checkContinuity: (draft: string) => Promise<ContinuityReport>;
}

export interface Toolbox {
  specs: ToolSpec[];
  run(call: ToolCall): Promise<ToolOutcome>;
}

function rawArgs(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export function formatReport(report: ContinuityReport): string {
  if (report.ok && report.issues.length === 0) return "Continuity OK: no contradictions or repetition found.";
  return `Continuity issues:\n${report.issues.map((i) => `- ${i}`).join("\n")}`;
}

/** Something true of the story but unrelated to the question: a random known fact, name or passage. */
function randomResult(story: StorySnapshot, random: () => number): string {
  const pool = [
    ...story.bible.facts.map((f) => `Fact: ${f}`),
    ...story.bible.characters.map((c) => `Character ${c.name}: ${c.role}.`),
    ...story.bible.places.map((p) => `Place ${p.name}: ${p.description}`),
    ...story.chapters.map((c) => `(Chapter ${c.number}) ${c.summary}`),
  ];
  return pool[Math.floor(random() * pool.length)] ?? NOTHING_FOUND;
}

export function createToolbox(options: ToolboxOptions): Toolbox {
  const { story, recentChapters, noise } = options;
  /** A search tool's outcome, possibly replaced by noise. */
  const searched = (outcome: ToolOutcome): ToolOutcome => {
    if (noise === undefined || noise.random() >= noise.rate) return outcome;
    const observation = noise.random() < 0.5 ? NOTHING_FOUND : randomResult(story, noise.random);
    return { ...outcome, observation, noisy: true };
  };
  const invalid = (name: string, raw: string, error: string): ToolOutcome => ({
    name,
    args: rawArgs(raw),
    observation: `Error: invalid arguments for ${name}: ${error}`,
    ok: false,
  });
  return {
    specs: REACT_TOOLS,
    async run(call) {
      const { name, arguments: raw } = call.function;
      switch (name) {
        case TOOL_NAMES.recall: {
          const parsed = parseJsonWith(recallArgsSchema, raw);
          if (!parsed.ok) return invalid(name, raw, parsed.error);
          return searched({
            name,
            args: parsed.value,
            observation: recall(story, parsed.value.query, recentChapters),
            ok: true,
          });
        }
        case TOOL_NAMES.lookup: {
          const parsed = parseJsonWith(lookupArgsSchema, raw);
          if (!parsed.ok) return invalid(name, raw, parsed.error);
          return searched({ name, args: parsed.value, observation: lookup(story, parsed.value.name), ok: true });
        }
        case TOOL_NAMES.checkContinuity: {
          const parsed = parseJsonWith(checkContinuityArgsSchema, raw);
          if (!parsed.ok) return invalid(name, raw, parsed.error);
          try {
            const report = await options.checkContinuity(parsed.value.draft);
            return { name, args: parsed.value, observation: formatReport(report), ok: true };
          } catch (err) {
            if ((err as Error).name === "AbortError") throw err;
            return {
              name,
              args: parsed.value,
              observation: `Error: the continuity check failed (${(err as Error).message}).`,
              ok: false,
            };
          }
        }
        case TOOL_NAMES.illustrate: {
          const parsed = parseJsonWith(illustrateArgsSchema, raw);
          if (!parsed.ok) return invalid(name, raw, parsed.error);
          const known = new Set(story.bible.characters.map((c) => c.name.toLowerCase()));
          const unknown = parsed.value.characters.filter((c) => !known.has(c.toLowerCase()));
          const note =
            unknown.length === 0 ? "" : ` Not in the cast (drawn from the scene text only): ${unknown.join(", ")}.`;
          return {
            name,
            args: parsed.value,
            observation: `${ILLUSTRATION_NOTED}${note}`,
            ok: true,
            illustration: parsed.value,
          };
        }
        case TOOL_NAMES.beginWriting: {
          const parsed = parseJsonWith(beginWritingArgsSchema, raw);
          if (!parsed.ok) return invalid(name, raw, parsed.error);
          return { name, args: parsed.value, observation: "", ok: true, plan: parsed.value.plan };
        }
        default:
          return {
            name,
            args: rawArgs(raw),
            observation: `Error: unknown tool ${name}. Available tools: ${REACT_TOOLS.map((t) => t.function.name).join(", ")}.`,
            ok: false,
          };
      }
    },
  };
}
