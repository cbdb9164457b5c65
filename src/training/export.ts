/**
 * Fine-tuning data out of recorded agent runs (FireAct's data step):
 * - every run is scored (./score.ts); runs below the threshold, failed runs and runs of
 *   held-out stories are left out;
 * - each run becomes an OpenAI chat fine-tuning example: its messages with tool calls and
 *   tool results, its tools, the short zero-shot system prompt of a fine-tuned route in
 *   place of the prompted one (no few-shot exemplars), ending with an assistant turn;
 *   assistant turns that had to be repaired are kept as context with weight 0;
 * - personal data is removed: platform ids, mentions, handles and readers' names;
 * - duplicates are dropped, then examples are mixed by task and method with the given
 *   ratios (multi-task, multi-method), then split into train and validation by story
 *   (by example when there are too few stories to hit the share);
 * - rewrites give preference pairs: the rejected chapter vs the accepted rewrite.
 * Pure over the database: the CLI (./cli/export.ts) writes the files.
 */
import { createHash } from "node:crypto";
import { zeroShotPrompt } from "../agent/prompts.ts";
import type { Method } from "../agent/types.ts";
import type { Db } from "../store/db.ts";
import { talkRatingsOf } from "../story/talk-exchanges.ts";
import { heldoutStoryIds } from "./heldout.ts";
import {
  type AssistantMessage,
  type ChatExample,
  type ChatMessage,
  estimateExampleTokens,
  type PreferenceExample,
  type TokenStats,
  type ToolDefinition,
  tokenStats,
  validateChatExample,
  validatePreferenceExample,
} from "./jsonl-format.ts";
import { seededRandom, shuffled } from "./random.ts";
import { type ChapterOutcome, SCORE, scoreRun } from "./score.ts";

export interface ExportOptions {
  /** Runs scoring below this are left out (default SCORE.defaultMinimum). */
  minScore?: number;
  /** Share of stories whose examples go to validation (default 0.1). */
  validationShare?: number;
  seed?: number;
  /** Target shares per task and per method (each normalised); absent: as recorded. */
  mix?: { tasks?: Record<string, number>; methods?: Record<string, number> };
  /** At most this many examples in all (after mixing). */
  maxExamples?: number;
}

export interface DatasetCard {
  createdAt: Date;
  minScore: number;
  seed: number;
  runsRead: number;
  /** How train and validation were split: by story, or by example when stories were too few. */
  split: "story" | "example";
  left: { failed: number; belowScore: number; heldout: number; duplicates: number; invalid: number; mixing: number };
  counts: { split: "train" | "validation"; task: string; method: string; examples: number }[];
  mix: { key: string; target: number; achieved: number }[];
  preferences: number;
  tokens: { train: TokenStats; validation: TokenStats; histogram: { upTo: number; examples: number }[] };
  redactions: number;
  /** Runs (held-out ones aside) by success score: what the threshold keeps and drops. */
  scores: { from: number; to: number; runs: number }[];
}

export interface TrainingExport {
  train: ChatExample[];
  validation: ChatExample[];
  preferences: PreferenceExample[];
  card: DatasetCard;
}

interface Candidate {
  storyId: string;
  task: string;
  method: string;
  score: number;
  example: ChatExample;
  key: string;
}

const REPAIR = /^Your .+ was invalid:/;
const PAGE = 500;

/** Readers' names and platform ids out of every text: what a shared dataset must never hold. */
export class Redactor {
  count = 0;
  private readonly names: RegExp | undefined;

  constructor(people: { externalId: string; displayName: string }[]) {
    const words = new Set<string>();
    for (const p of people) {
      if (p.displayName.trim().length >= 2) words.add(p.displayName.trim());
      if (p.externalId.trim().length >= 3) words.add(p.externalId.trim());
    }
    const escaped = [...words].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.names =
      escaped.length === 0
        ? undefined
        : new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})(?![\\p{L}\\p{N}])`, "gu");
  }

  text(value: string): string {
    let out = value
      .replace(/<(?:@[!&]?|#)\d{5,25}>/g, () => this.hit("@reader"))
      .replace(/(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b/g, () => this.hit("@reader"))
      .replace(/(?<!\d)\d{9,25}(?!\d)/g, () => this.hit("[id]"));
    if (this.names !== undefined) out = out.replace(this.names, () => this.hit("Reader"));
    return out;
  }

  private hit(replacement: string): string {
    this.count++;
    return replacement;
  }
}

/** A recorded run's messages as a training example, or undefined when it cannot be one. */
export function runToExample(
  run: { task: string; method: string; messages: unknown; tools: unknown },
  redact: (text: string) => string,
): ChatExample | undefined {
  const recorded = Array.isArray(run.messages) ? (run.messages as Record<string, unknown>[]) : [];
  const system = zeroShotPrompt(run.task, run.method as Method);
  if (system === undefined || recorded.length === 0) return undefined;
  const messages: ChatMessage[] = [{ role: "system", content: system }];
  for (const [i, m] of recorded.entries()) {
    if (m.role === "system") continue;
    if (m.role === "user" && typeof m.content === "string") {
      messages.push({ role: "user", content: redact(m.content) });
    } else if (m.role === "tool" && typeof m.tool_call_id === "string" && typeof m.content === "string") {
      messages.push({ role: "tool", tool_call_id: m.tool_call_id, content: redact(m.content) });
    } else if (m.role === "assistant") {
      const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as AssistantMessage["tool_calls"]) : undefined;
      const message: AssistantMessage = {
        role: "assistant",
        content: typeof m.content === "string" ? redact(m.content) : null,
        ...(calls === undefined || calls.length === 0
          ? {}
          : {
              tool_calls: calls.map((c) => ({
                id: c.id,
                type: "function" as const,
                function: { name: c.function.name, arguments: redact(c.function.arguments) },
              })),
            }),
      };
      // An answer that had to be repaired is context, not something to learn.
      const next = recorded[i + 1];
      if (typeof next?.content === "string" && REPAIR.test(next.content)) message.weight = 0;
      messages.push(message);
    }
  }
  // Examples end with an assistant turn: drop trailing acknowledgements.
  while (messages.length > 0 && messages.at(-1)?.role !== "assistant") messages.pop();
  const last = messages.at(-1) as AssistantMessage | undefined;
  if (last === undefined || last.weight === 0) return undefined;
  const tools = Array.isArray(run.tools) ? (run.tools as ToolDefinition[]) : [];
  const example: ChatExample = { messages, ...(tools.length === 0 ? {} : { tools }) };
  return validateChatExample(example).length === 0 ? example : undefined;
}

function keyOf(example: ChatExample): string {
  return createHash("sha256").update(JSON.stringify(example.messages)).digest("hex");
}

/**
 * How many examples to take per task.method cell: the cell's target share is the task's
 * share times the method's share (a dimension without ratios keeps the recorded
 * proportions), and the total is the largest that every cell with a target can supply.
 */
export function mixCounts(
  available: Map<string, number>,
  mix: { tasks?: Record<string, number>; methods?: Record<string, number> } | undefined,
): Map<string, { target: number; take: number }> {
  const out = new Map<string, { target: number; take: number }>();
  if (mix?.tasks === undefined && mix?.methods === undefined) {
    const all = [...available.values()].reduce((a, b) => a + b, 0);
    for (const [k, n] of available) out.set(k, { target: all === 0 ? 0 : n / all, take: n });
    return out;
  }
  const byTask = new Map<string, number>();
  const byMethod = new Map<string, number>();
  for (const [k, n] of available) {
    const [task = "", method = ""] = k.split(".");
    byTask.set(task, (byTask.get(task) ?? 0) + n);
    byMethod.set(method, (byMethod.get(method) ?? 0) + n);
  }
  const all = [...available.values()].reduce((a, b) => a + b, 0);
  /** A name's share of its dimension: its given ratio among the names present, else its recorded share. */
  const share = (ratios: Record<string, number> | undefined, own: Map<string, number>, name: string) => {
    if (ratios === undefined) return (own.get(name) ?? 0) / (all || 1);
    const sum = [...own.keys()].reduce((acc, k) => acc + Math.max(0, ratios[k] ?? 0), 0);
    return sum === 0 ? 0 : Math.max(0, ratios[name] ?? 0) / sum;
  };
  const weights = new Map<string, number>();
  for (const [k, n] of available) {
    const [task = "", method = ""] = k.split(".");
    const t = share(mix.tasks, byTask, task);
    const m = share(mix.methods, byMethod, method);
    // With both ratios the cell is their product; with one, the other dimension keeps the
    // recorded split of the cell within its task (or method).
    if (mix.tasks !== undefined && mix.methods !== undefined) weights.set(k, t * m);
    else if (mix.tasks !== undefined) weights.set(k, t * (n / (byTask.get(task) || 1)));
    else weights.set(k, m * (n / (byMethod.get(method) || 1)));
  }
  const sum = [...weights.values()].reduce((a, b) => a + b, 0);
  let total = Number.POSITIVE_INFINITY;
  for (const [k, w] of weights) {
    if (w <= 0 || sum === 0) continue;
    total = Math.min(total, (available.get(k) ?? 0) / (w / sum));
  }
  if (!Number.isFinite(total)) total = 0;
  for (const [k, w] of weights) {
    const target = sum === 0 ? 0 : w / sum;
    out.set(k, { target, take: Math.min(available.get(k) ?? 0, Math.floor(total * target + 1e-9)) });
  }
  return out;
}

export async function exportTrainingData(db: Db, options: ExportOptions = {}): Promise<TrainingExport> {
  const minScore = options.minScore ?? SCORE.defaultMinimum;
  const seed = options.seed ?? 1;
  const validationShare = options.validationShare ?? 0.1;
  const heldout = await heldoutStoryIds(db);
  const redactor = new Redactor(await db.user.findMany({ select: { externalId: true, displayName: true } }));
  const redact = (text: string) => redactor.text(text);
  const left = { failed: 0, belowScore: 0, heldout: 0, duplicates: 0, invalid: 0, mixing: 0 };
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  const outcomes = new Map<string, ChapterOutcome>();
  const scores = [0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9].map((from, i, all) => ({ from, to: all[i + 1] ?? 1, runs: 0 }));
  let runsRead = 0;

  for (let cursor: string | undefined; ; ) {
    const runs = await db.agentRun.findMany({
      take: PAGE,
      ...(cursor === undefined ? {} : { skip: 1, cursor: { id: cursor } }),
      orderBy: { id: "asc" },
    });
    if (runs.length === 0) break;
    cursor = runs.at(-1)?.id;
    runsRead += runs.length;
    await loadOutcomes(db, [...new Set(runs.map((r) => r.chapterId).filter((c): c is string => c !== null))], outcomes);
    for (const run of runs) {
      if (heldout.has(run.storyId)) {
        left.heldout++;
        continue;
      }
      const chapter = run.chapterId === null ? undefined : outcomes.get(run.chapterId);
      const score = scoreRun(
        { status: run.status, checks: (run.checks ?? {}) as { finishedInFormat?: boolean; continuityOk?: boolean } },
        run.task === "talk" ? talkOutcome(chapter, run.id) : chapter,
      );
      const bucket = scores.find((b) => score.value >= b.from && (score.value < b.to || b.to === 1));
      if (bucket !== undefined) bucket.runs++;
      if (score.value === 0) {
        left.failed++;
        continue;
      }
      if (score.value < minScore) {
        left.belowScore++;
        continue;
      }
      const example = runToExample(run, redact);
      if (example === undefined) {
        left.invalid++;
        continue;
      }
      const key = keyOf(example);
      if (seen.has(key)) {
        left.duplicates++;
        continue;
      }
      seen.add(key);
      candidates.push({ storyId: run.storyId, task: run.task, method: run.method, score: score.value, example, key });
    }
    if (runs.length < PAGE) break;
  }

  // Mix by task and method.
  const random = seededRandom(seed);
  const cells = new Map<string, Candidate[]>();
  for (const c of candidates) {
    const k = `${c.task}.${c.method}`;
    cells.set(k, [...(cells.get(k) ?? []), c]);
  }
  const plan = mixCounts(new Map([...cells].map(([k, v]) => [k, v.length])), options.mix);
  let chosen: Candidate[] = [];
  const mixReport: DatasetCard["mix"] = [];
  for (const [k, list] of [...cells].sort(([a], [b]) => a.localeCompare(b))) {
    const { target, take } = plan.get(k) ?? { target: 0, take: 0 };
    chosen.push(...shuffled(list, random).slice(0, take));
    left.mixing += list.length - take;
    mixReport.push({ key: k, target, achieved: 0 });
  }
  if (options.maxExamples !== undefined && chosen.length > options.maxExamples) {
    left.mixing += chosen.length - options.maxExamples;
    chosen = shuffled(chosen, random).slice(0, options.maxExamples);
  }
  for (const m of mixReport) {
    m.achieved =
      chosen.length === 0 ? 0 : chosen.filter((c) => `${c.task}.${c.method}` === m.key).length / chosen.length;
  }

  // Split by story, so no story is on both sides; a story that would take validation far past
  // its share is skipped. With too few stories for that, split by example instead.
  const wanted = Math.round(chosen.length * validationShare);
  const ordered = chosen.sort((a, b) => a.key.localeCompare(b.key));
  const inValidation = new Set<Candidate>();
  let byStory = 0;
  for (const s of shuffled([...new Set(ordered.map((c) => c.storyId))].sort(), random)) {
    const examples = ordered.filter((c) => c.storyId === s);
    if (byStory >= wanted) break;
    if (byStory + examples.length > Math.max(1, wanted * 1.5)) continue;
    byStory += examples.length;
    for (const c of examples) inValidation.add(c);
  }
  const split = wanted > 0 && inValidation.size === 0 ? "example" : "story";
  if (split === "example") {
    for (const c of shuffled(ordered, random).slice(0, wanted)) inValidation.add(c);
  }
  const train = ordered.filter((c) => !inValidation.has(c));
  const validation = ordered.filter((c) => inValidation.has(c));

  const preferences = await preferencePairs(db, heldout, redact);
  const count = (split: "train" | "validation", list: Candidate[]) => {
    const cellsOf = new Map<string, number>();
    for (const c of list)
      cellsOf.set(`${c.task}\u0000${c.method}`, (cellsOf.get(`${c.task}\u0000${c.method}`) ?? 0) + 1);
    return [...cellsOf].map(([k, examples]) => {
      const [task = "", method = ""] = k.split("\u0000");
      return { split, task, method, examples };
    });
  };
  const lengths = (list: Candidate[]) => list.map((c) => estimateExampleTokens(c.example));
  return {
    train: train.map((c) => c.example),
    validation: validation.map((c) => c.example),
    preferences,
    card: {
      createdAt: new Date(),
      minScore,
      seed,
      runsRead,
      split,
      left,
      counts: [...count("train", train), ...count("validation", validation)].sort((a, b) =>
        `${a.split}${a.task}${a.method}`.localeCompare(`${b.split}${b.task}${b.method}`),
      ),
      mix: mixReport,
      preferences: preferences.length,
      tokens: {
        train: tokenStats(lengths(train)),
        validation: tokenStats(lengths(validation)),
        histogram: histogram(lengths(ordered)),
      },
      redactions: redactor.count,
      scores,
    },
  };
}

/**
 * A /talk reply's outcome: the readers' 👍/👎 on it alone (not what happened to the chapter
 * it followed, which the reply did not write).
 */
function talkOutcome(chapter: ChapterOutcome | undefined, runId: string): ChapterOutcome {
  return { reactions: talkRatingsOf(chapter?.reactions ?? [], runId) };
}

async function loadOutcomes(db: Db, chapterIds: string[], into: Map<string, ChapterOutcome>): Promise<void> {
  const missing = chapterIds.filter((id) => !into.has(id));
  if (missing.length === 0) return;
  const chapters = await db.chapter.findMany({
    where: { id: { in: missing } },
    select: {
      id: true,
      reactions: { orderBy: { createdAt: "asc" }, select: { kind: true, data: true } },
      // The first writing run (insertion order, which PostgreSQL does not keep unasked).
      runs: {
        where: { task: { in: ["open", "continue", "rewrite"] } },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        select: { checks: true },
      },
    },
  });
  for (const c of chapters) {
    const writing = c.runs[0]?.checks as { continuityOk?: boolean } | undefined;
    into.set(c.id, {
      reactions: c.reactions,
      ...(writing?.continuityOk === undefined ? {} : { continuityOk: writing.continuityOk }),
    });
  }
}

/**
 * Rewrites as preference pairs: the input the original chapter was written from, the
 * accepted rewrite's text as preferred and the original's as not preferred. A rewrite
 * counts as accepted unless it was itself undone or rewritten.
 */
async function preferencePairs(
  db: Db,
  heldout: Set<string>,
  redact: (text: string) => string,
): Promise<PreferenceExample[]> {
  const rewrites = await db.chapter.findMany({
    where: { task: "rewrite", status: "done", rewriteOfId: { not: null }, storyId: { notIn: [...heldout] } },
    orderBy: { id: "asc" },
    select: { text: true, rewriteOfId: true, reactions: { select: { kind: true } } },
  });
  const pairs: PreferenceExample[] = [];
  for (const r of rewrites) {
    if (r.reactions.some((x) => x.kind === "undo" || x.kind === "rewrite") || r.rewriteOfId === null) continue;
    const original = await db.chapter.findUnique({
      where: { id: r.rewriteOfId },
      select: {
        text: true,
        runs: {
          where: { task: { in: ["open", "continue", "rewrite"] }, status: "ok" },
          orderBy: [{ createdAt: "asc" }, { id: "asc" }],
          take: 1,
        },
      },
    });
    const run = original?.runs[0];
    if (original == null || run === undefined || original.text.trim() === r.text.trim()) continue;
    const example = runToExample(run, redact);
    if (example === undefined) continue;
    // The input is everything before the run's final answer (the prose).
    const input = example.messages.slice(0, -1);
    const pair: PreferenceExample = {
      input: { messages: input, ...(example.tools === undefined ? {} : { tools: example.tools }) },
      preferred_output: [{ role: "assistant", content: redact(r.text) }],
      non_preferred_output: [{ role: "assistant", content: redact(original.text) }],
    };
    if (validatePreferenceExample(pair).length === 0) pairs.push(pair);
  }
  return pairs;
}

function histogram(lengths: number[]): { upTo: number; examples: number }[] {
  const bounds = [256, 512, 1024, 2048, 4096, 8192, 16384, Number.POSITIVE_INFINITY];
  return bounds.map((upTo, i) => ({
    upTo,
    examples: lengths.filter((n) => n <= upTo && (i === 0 || n > (bounds[i - 1] ?? 0))).length,
  }));
}

/** The dataset card: what is in the export, as Markdown. */
export function renderCard(card: DatasetCard): string {
  const lines = [
    "# Inkloom training data",
    "",
    `Exported ${card.createdAt.toISOString()} from ${card.runsRead} recorded agent runs; seed ${card.seed}.`,
    `Kept: runs with a success score of at least ${card.minScore} (see docs/training.md for the score).`,
    card.split === "story"
      ? "Split by story: no story has examples on both sides."
      : "Split by example: too few stories to split by story without overshooting the validation share.",
    "",
    "## Examples per task and method",
    "",
    "| split | task | method | examples |",
    "|---|---|---|---|",
    ...card.counts.map((c) => `| ${c.split} | ${c.task} | ${c.method} | ${c.examples} |`),
    "",
    "## Mix (target vs achieved share)",
    "",
    "| task.method | target | achieved |",
    "|---|---|---|",
    ...card.mix.map((m) => `| ${m.key} | ${pct(m.target)} | ${pct(m.achieved)} |`),
    "",
    "## Success scores of the runs read (held-out stories aside)",
    "",
    "| score | runs |",
    "|---|---|",
    ...card.scores.map(
      (b) => `| ${b.from.toFixed(1)}–${b.to.toFixed(1)}${b.from >= card.minScore ? " (kept)" : ""} | ${b.runs} |`,
    ),
    "",
    "## Left out",
    "",
    `failed or not in format ${card.left.failed}, below the score ${card.left.belowScore}, held-out stories ${card.left.heldout}, duplicates ${card.left.duplicates}, not convertible ${card.left.invalid}, beyond the mix ${card.left.mixing}.`,
    "",
    "## Token lengths (estimated: characters / 4)",
    "",
    `train: min ${card.tokens.train.min}, p50 ${card.tokens.train.p50}, p90 ${card.tokens.train.p90}, max ${card.tokens.train.max}`,
    `validation: min ${card.tokens.validation.min}, p50 ${card.tokens.validation.p50}, p90 ${card.tokens.validation.p90}, max ${card.tokens.validation.max}`,
    "",
    "| tokens up to | examples |",
    "|---|---|",
    ...card.tokens.histogram.map((h) => `| ${Number.isFinite(h.upTo) ? h.upTo : "more"} | ${h.examples} |`),
    "",
    `Preference pairs (rewrites): ${card.preferences}. Personal data replaced: ${card.redactions} time(s).`,
    "",
  ];
  return lines.join("\n");
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}
