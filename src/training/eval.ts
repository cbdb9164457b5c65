/**
 * Evaluation (`npm run train:eval`): the same held-out story states written by two model
 * configurations, A and B (say, the prompted big model and the fine-tuned small one).
 *
 * Each side gets its own story agent whose writing tasks go to the side's route, while
 * the continuity check goes to the judge's route, so both sides are checked by the same
 * model. Per side: wall latency per case (p50/p95), prompt and completion tokens and cost
 * of the side's own runs (the judge's `check` runs excluded), finish rate, continuity
 * failures, tool calls and, for FireAct's robustness variant (`noisyTools`), how many
 * search results were replaced by noise.
 *
 * Then a pairwise judgement: for every case both sides finished, the judge compares the two
 * chapters twice, positions swapped. B scores 1 when it wins both orders, 0 when it loses
 * both, 0.5 otherwise (a tie, or a split verdict: the judge followed the position, not the
 * text). B's win rate is the mean score; the position bias is how often the judge picked
 * position 1.
 */
import { z } from "zod";
import { buildMemory } from "../agent/memory.ts";
import { jsonSchemaOf, parseJsonWith, TOOL_NAMES } from "../agent/schemas.ts";
import { createStoryAgent } from "../agent/story-agent.ts";
import type { ChapterResult, Method, RunRecord, WritingTask } from "../agent/types.ts";
import { OpenAiModelClient } from "../llm/openai-client.ts";
import { type ChatMessage, ModelError, type ModelRoute, TASKS, type Task } from "../llm/types.ts";
import type { HeldoutCase } from "./heldout.ts";
import { seededRandom } from "./random.ts";

export type Side = "a" | "b";

export interface EvaluateOptions {
  cases: readonly HeldoutCase[];
  a: ModelRoute;
  b: ModelRoute;
  /** Serves the continuity check of both sides and the pairwise verdicts. */
  judge: ModelRoute;
  apiKey: string;
  /** The method of each writing task (the configuration's). */
  methods: Record<WritingTask, Method>;
  maxSteps: number;
  recentChapters: number;
  timeoutMs: number;
  maxRetries: number;
  prices: { inputPerMTok: number; outputPerMTok: number };
  /** FireAct's robustness variant: search tools return noise this often (0..1). Default 0. */
  noisyTools?: number;
  /** Seeds the tool noise (each side starts from the same seed). */
  seed: number;
  onProgress?: (event: EvalProgress) => void;
}

export type EvalProgress =
  | {
      phase: "write";
      /** 1-based. */
      index: number;
      total: number;
      side: Side;
      caseId: string;
      outcome: "done" | "failed";
      latencyMs: number;
      error?: string;
    }
  | { phase: "judge"; index: number; total: number; caseId: string; score: number | null; error?: string };

export interface SideMetrics {
  route: ModelRoute;
  cases: number;
  finished: number;
  /** finished / cases (0 when there are no cases). */
  finishRate: number;
  /** Wall time of each finished case, in case order (failed cases are not timed). */
  latencyMs: { p50: number | null; p95: number | null; mean: number | null };
  /** The side's own runs only (writing, choices...); the judge's `check` runs are not counted. */
  tokens: { prompt: number; completion: number; promptPerCase: number; completionPerCase: number };
  costUsd: number;
  costPerCaseUsd: number;
  /** Finished chapters whose continuity check did not pass. */
  continuityFailures: number;
  /** Every tool call of the ReAct loop. */
  toolCalls: number;
  /** Calls of the search tools (recall, lookup): the ones noise may replace. */
  searchCalls: number;
  /** Tool results replaced by noise. */
  noisyToolResults: number;
}

export interface SideCaseOutcome {
  status: "done" | "failed";
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
  continuityOk?: boolean;
  error?: string;
}

export type Verdict = "1" | "2" | "tie";

export interface CaseOutcome {
  caseId: string;
  storyId: string;
  task: WritingTask;
  chapterNumber: number;
  a: SideCaseOutcome;
  b: SideCaseOutcome;
  /** Present when both sides finished. */
  judge?: {
    /** A in position 1, B in position 2. */
    first?: Verdict;
    /** B in position 1, A in position 2. */
    second?: Verdict;
    /** B's score: 1, 0.5 or 0; null when the judge failed. */
    score: number | null;
    error?: string;
  };
}

export interface PairwiseMetrics {
  /** Cases both sides finished (those the judge was asked about). */
  compared: number;
  /** Cases with both verdicts. */
  judged: number;
  /** B won both orders. */
  wins: number;
  /** A tie or a split verdict. */
  ties: number;
  /** B lost both orders. */
  losses: number;
  /** Of the ties: the two orders named different winners (the verdict followed the position). */
  splits: number;
  /** B's mean score over the judged cases (0.5: no difference); null when none was judged. */
  winRate: number | null;
  /** Share of the verdicts that picked position 1 (0.5: unbiased); null without verdicts. */
  positionBias: number | null;
  verdicts: number;
  /** Cases the judge could not decide (an error or an answer out of format). */
  judgeFailures: number;
}

export interface EvalReport {
  a: SideMetrics;
  b: SideMetrics;
  judge: { route: ModelRoute; calls: number; promptTokens: number; completionTokens: number; costUsd: number };
  pairwise: PairwiseMetrics;
  cases: CaseOutcome[];
  noisyTools: number;
  seed: number;
  methods: Record<WritingTask, Method>;
  startedAt: string;
  durationMs: number;
}

export const PAIRWISE_VERDICT = "pairwise_verdict";

const verdictSchema = z.strictObject({
  winner: z.enum(["1", "2", "tie"]),
  reason: z.string(),
});

export const pairwiseResponseFormat = { name: PAIRWISE_VERDICT, schema: jsonSchemaOf(verdictSchema) };

export const JUDGE_SYSTEM_PROMPT = [
  "Inkloom: judge",
  "You compare two chapters written for the same moment of an interactive story.",
  "Prefer the chapter that follows the reader's action or direction, stays true to the story so far (names, appearances, places, facts), moves the story somewhere new without repeating itself, ends where the reader has a real decision to make, and reads better.",
  "Length is not quality, and the order in which the chapters are shown means nothing.",
  'Answer as JSON: winner "1", "2" or "tie", and a one-sentence reason.',
].join("\n");

const SEARCH_TOOLS: ReadonlySet<string> = new Set([TOOL_NAMES.recall, TOOL_NAMES.lookup]);

/** Nearest-rank percentile of `values` (`p` in 0..100); null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((x, y) => x - y);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

/** B's score from the two verdicts (first: A in position 1; second: B in position 1). */
export function pairScore(first: Verdict, second: Verdict): { score: number; split: boolean } {
  const bFirst = first === "2" ? "win" : first === "1" ? "loss" : "tie";
  const bSecond = second === "1" ? "win" : second === "2" ? "loss" : "tie";
  if (bFirst === "win" && bSecond === "win") return { score: 1, split: false };
  if (bFirst === "loss" && bSecond === "loss") return { score: 0, split: false };
  const split = (bFirst === "win" && bSecond === "loss") || (bFirst === "loss" && bSecond === "win");
  return { score: 0.5, split };
}

interface SideRun {
  outcome: SideCaseOutcome;
  result?: ChapterResult;
  toolCalls: number;
  searchCalls: number;
  noisy: number;
  ownRuns: RunRecord[];
  checkRuns: RunRecord[];
}

function sideClient(route: ModelRoute, judge: ModelRoute, options: EvaluateOptions): OpenAiModelClient {
  const routes = Object.fromEntries(TASKS.map((t) => [t, t === "check" ? judge : route])) as Record<Task, ModelRoute>;
  return new OpenAiModelClient({
    routes,
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs,
    maxRetries: options.maxRetries,
    prices: options.prices,
  });
}

function message(error: unknown): string {
  if (error instanceof ModelError) return `${error.kind}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

export async function evaluate(options: EvaluateOptions): Promise<EvalReport> {
  const startedAt = new Date();
  const started = performance.now();
  const noise = Math.min(1, Math.max(0, options.noisyTools ?? 0));
  const agents = {
    a: makeAgent(options.a),
    b: makeAgent(options.b),
  };

  function makeAgent(route: ModelRoute) {
    const random = seededRandom(options.seed);
    return createStoryAgent(sideClient(route, options.judge, options), {
      maxSteps: options.maxSteps,
      recentChapters: options.recentChapters,
      ...(noise > 0 ? { toolNoise: { rate: noise, random } } : {}),
    });
  }

  async function runSide(side: Side, c: HeldoutCase): Promise<SideRun> {
    const agent = agents[side];
    const t0 = performance.now();
    let toolCalls = 0;
    let searchCalls = 0;
    let noisy = 0;
    let result: ChapterResult | undefined;
    let runs: RunRecord[] = [];
    let error: string | undefined;
    try {
      for await (const event of agent.write({ ...c.input, method: options.methods[c.input.task] })) {
        if (event.type === "tool") {
          toolCalls++;
          if (SEARCH_TOOLS.has(event.name)) searchCalls++;
          if (event.noisy === true) noisy++;
        } else if (event.type === "done") {
          result = event.result;
          runs = event.result.runs;
        } else if (event.type === "failed") {
          error = message(event.error);
          runs = event.runs;
        }
      }
    } catch (err) {
      error = message(err);
    }
    if (result === undefined && error === undefined) error = "the agent ended without a result";
    const latencyMs = Math.round(performance.now() - t0);
    const ownRuns = runs.filter((r) => r.task !== "check");
    const checkRuns = runs.filter((r) => r.task === "check");
    const outcome: SideCaseOutcome = {
      status: result === undefined ? "failed" : "done",
      latencyMs,
      promptTokens: sum(ownRuns.map((r) => r.promptTokens)),
      completionTokens: sum(ownRuns.map((r) => r.completionTokens)),
      ...(result === undefined ? {} : { continuityOk: result.continuity.ok }),
      ...(error === undefined ? {} : { error }),
    };
    return {
      outcome,
      ...(result === undefined ? {} : { result }),
      toolCalls,
      searchCalls,
      noisy,
      ownRuns,
      checkRuns,
    };
  }

  const total = options.cases.length;
  const runs: Record<Side, SideRun[]> = { a: [], b: [] };
  for (const [i, c] of options.cases.entries()) {
    for (const side of ["a", "b"] as const) {
      const run = await runSide(side, c);
      runs[side].push(run);
      options.onProgress?.({
        phase: "write",
        index: i + 1,
        total,
        side,
        caseId: c.id,
        outcome: run.outcome.status,
        latencyMs: run.outcome.latencyMs,
        ...(run.outcome.error === undefined ? {} : { error: run.outcome.error }),
      });
    }
  }

  // The pairwise judgement.
  const judgeClient = sideClient(options.judge, options.judge, options);
  const judgeUsage = { calls: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
  for (const side of ["a", "b"] as const) {
    for (const run of runs[side]) {
      for (const r of run.checkRuns) {
        judgeUsage.calls++;
        judgeUsage.promptTokens += r.promptTokens;
        judgeUsage.completionTokens += r.completionTokens;
        judgeUsage.costUsd += r.costUsd;
      }
    }
  }

  async function verdict(c: HeldoutCase, first: string, second: string): Promise<Verdict> {
    const messages: ChatMessage[] = [
      { role: "system", content: JUDGE_SYSTEM_PROMPT },
      { role: "user", content: judgeUserMessage(c, options.recentChapters, first, second) },
    ];
    judgeUsage.calls++;
    const result = await judgeClient.complete({
      task: "check",
      messages,
      responseFormat: pairwiseResponseFormat,
      temperature: 0,
      maxTokens: 400,
    });
    judgeUsage.promptTokens += result.usage.promptTokens;
    judgeUsage.completionTokens += result.usage.completionTokens;
    judgeUsage.costUsd += result.usage.costUsd;
    const parsed = parseJsonWith(verdictSchema, result.message.content);
    if (!parsed.ok) throw new Error(`${PAIRWISE_VERDICT} out of format: ${parsed.error}`);
    return parsed.value.winner;
  }

  const outcomes: CaseOutcome[] = [];
  const compared = options.cases.filter((_, i) => runs.a[i]?.result !== undefined && runs.b[i]?.result !== undefined);
  let judgeIndex = 0;
  for (const [i, c] of options.cases.entries()) {
    const ra = runs.a[i];
    const rb = runs.b[i];
    if (ra === undefined || rb === undefined) continue;
    const outcome: CaseOutcome = {
      caseId: c.id,
      storyId: c.storyId,
      task: c.input.task,
      chapterNumber: c.input.chapterNumber,
      a: ra.outcome,
      b: rb.outcome,
    };
    if (ra.result !== undefined && rb.result !== undefined) {
      judgeIndex++;
      const judged: NonNullable<CaseOutcome["judge"]> = { score: null };
      try {
        judged.first = await verdict(c, ra.result.text, rb.result.text);
        judged.second = await verdict(c, rb.result.text, ra.result.text);
        judged.score = pairScore(judged.first, judged.second).score;
      } catch (err) {
        judged.error = message(err);
      }
      outcome.judge = judged;
      options.onProgress?.({
        phase: "judge",
        index: judgeIndex,
        total: compared.length,
        caseId: c.id,
        score: judged.score,
        ...(judged.error === undefined ? {} : { error: judged.error }),
      });
    }
    outcomes.push(outcome);
  }

  return {
    a: sideMetrics(options.a, runs.a),
    b: sideMetrics(options.b, runs.b),
    judge: { route: options.judge, ...judgeUsage },
    pairwise: pairwiseMetrics(outcomes),
    cases: outcomes,
    noisyTools: noise,
    seed: options.seed,
    methods: options.methods,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - started),
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

function sideMetrics(route: ModelRoute, runs: readonly SideRun[]): SideMetrics {
  const cases = runs.length;
  const finished = runs.filter((r) => r.result !== undefined);
  const latencies = finished.map((r) => r.outcome.latencyMs);
  const prompt = sum(runs.map((r) => r.outcome.promptTokens));
  const completion = sum(runs.map((r) => r.outcome.completionTokens));
  const costUsd = sum(runs.flatMap((r) => r.ownRuns.map((x) => x.costUsd)));
  const perCase = (v: number) => (cases === 0 ? 0 : v / cases);
  return {
    route,
    cases,
    finished: finished.length,
    finishRate: perCase(finished.length),
    latencyMs: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      mean: latencies.length === 0 ? null : sum(latencies) / latencies.length,
    },
    tokens: { prompt, completion, promptPerCase: perCase(prompt), completionPerCase: perCase(completion) },
    costUsd,
    costPerCaseUsd: perCase(costUsd),
    continuityFailures: finished.filter((r) => r.result?.continuity.ok === false).length,
    toolCalls: sum(runs.map((r) => r.toolCalls)),
    searchCalls: sum(runs.map((r) => r.searchCalls)),
    noisyToolResults: sum(runs.map((r) => r.noisy)),
  };
}

function pairwiseMetrics(outcomes: readonly CaseOutcome[]): PairwiseMetrics {
  let compared = 0;
  let judged = 0;
  let wins = 0;
  let ties = 0;
  let losses = 0;
  let splits = 0;
  let verdicts = 0;
  let firstPicks = 0;
  let judgeFailures = 0;
  let scoreSum = 0;
  for (const o of outcomes) {
    const j = o.judge;
    if (j === undefined) continue;
    compared++;
    for (const v of [j.first, j.second]) {
      if (v === undefined) continue;
      verdicts++;
      if (v === "1") firstPicks++;
    }
    if (j.score === null || j.first === undefined || j.second === undefined) {
      judgeFailures++;
      continue;
    }
    judged++;
    scoreSum += j.score;
    const { split } = pairScore(j.first, j.second);
    if (j.score === 1) wins++;
    else if (j.score === 0) losses++;
    else {
      ties++;
      if (split) splits++;
    }
  }
  return {
    compared,
    judged,
    wins,
    ties,
    losses,
    splits,
    winRate: judged === 0 ? null : scoreSum / judged,
    positionBias: verdicts === 0 ? null : firstPicks / verdicts,
    verdicts,
    judgeFailures,
  };
}

/** What the judge reads: the story state both chapters were written from, then the two chapters. */
export function judgeUserMessage(c: HeldoutCase, recentChapters: number, first: string, second: string): string {
  const { input } = c;
  const story = input.story;
  const lines: string[] = [];
  if (story.title) lines.push(`Title: ${story.title}`);
  if (story.premise) lines.push(`Premise: ${story.premise}`);
  if (story.genre !== "none") lines.push(`Genre: ${story.genre}`);
  lines.push(`Task: ${input.task} chapter ${input.chapterNumber}`);
  if (input.action !== undefined) lines.push(`Reader's action: ${input.action}`);
  if (input.direction !== undefined) lines.push(`Rewrite direction: ${input.direction}`);
  const memory =
    input.task === "open"
      ? ""
      : buildMemory(story, { recentChapters, query: input.action ?? input.direction ?? "" }).text;
  const parts = [lines.join("\n")];
  if (memory !== "") parts.push(`# The story so far\n${memory}`);
  if (input.replacing !== undefined) parts.push(`# The chapter being rewritten\n${input.replacing.text}`);
  parts.push(`# Chapter 1\n${first.trim()}`, `# Chapter 2\n${second.trim()}`);
  parts.push('Which chapter is better for this story? Answer with winner "1", "2" or "tie".');
  return parts.join("\n\n");
}
