/**
 * A `StoryAgent` test double for the story service: writes a predictable
 * chapter for every input (or fails when told to), and records every input.
 */
import type {
  AgentInput,
  ChapterParts,
  ChapterPlan,
  ChapterResult,
  DescribeSceneInput,
  PlanOutcome,
  RunRecord,
  StoryAgent,
  StoryEvent,
  StorySnapshot,
  SummarizeInput,
  TalkEvent,
  TalkInput,
  WriteOptions,
} from "../../src/agent/types.ts";
import { ModelError, type ModelErrorKind } from "../../src/llm/types.ts";

export interface FakeStoryAgentScript {
  /** Fail the next write after streaming `afterText` (default: fail before any text). */
  failNext?: { kind: ModelErrorKind; afterText?: string };
}

function run(task: RunRecord["task"], input?: AgentInput): RunRecord {
  return {
    task,
    method: input?.method ?? "cot",
    model: "fake-model",
    baseUrl: "http://fake",
    fineTuned: false,
    promptVersion: `${task}@test`,
    messages: [
      { role: "system", content: "fake" },
      { role: "user", content: input?.action ?? input?.story.premise ?? "" },
      { role: "assistant", content: "done" },
    ],
    tools: [],
    promptTokens: 10,
    completionTokens: 20,
    costUsd: 0,
    latencyMs: 1,
    status: "ok",
    checks: { finishedInFormat: true, continuityOk: true },
  };
}

export class FakeStoryAgent implements StoryAgent {
  readonly inputs: AgentInput[] = [];
  /** The options of each write, in order (a plan given, a wait hook). */
  readonly writeOptions: WriteOptions[] = [];
  /** Inputs planned ahead of time, in order. */
  readonly planned: AgentInput[] = [];
  /** Chapters whose parts were repaired, in order. */
  readonly repaired: number[] = [];
  /** The next chapter is written without its structured parts (kept, marked for repair). */
  private partsFailNext = false;
  readonly summaries: SummarizeInput[] = [];
  private failures: NonNullable<FakeStoryAgentScript["failNext"]>[] = [];
  /** Resolves the next write only when `release()` is called (to observe "writing"). */
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  private corrupt = false;

  /** Make the next result impossible to save (a run's latency is not a number). */
  corruptNext(): void {
    this.corrupt = true;
  }

  failNext(kind: ModelErrorKind, afterText?: string): void {
    this.failures.push(afterText === undefined ? { kind } : { kind, afterText });
  }

  /** Make the next write wait until `release()`. */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  /** Before its text, the next write reports model waits of these lengths (429s being retried). */
  private waits: number[] = [];

  waitNext(...delaysMs: number[]): void {
    this.waits = delaysMs;
  }

  /** The next chapter's structured parts fail: it is kept with a fallback title and no choices. */
  failPartsNext(): void {
    this.partsFailNext = true;
  }

  async plan(input: AgentInput): Promise<PlanOutcome> {
    this.planned.push(input);
    const plan: ChapterPlan = { runs: [run(input.task, input)], promptTokens: 10 };
    return { ok: true, plan };
  }

  async repairParts(input: {
    story: StorySnapshot;
    chapterNumber: number;
    text: string;
  }): Promise<{ parts: ChapterParts; runs: RunRecord[] }> {
    this.repaired.push(input.chapterNumber);
    return {
      parts: {
        chapterTitle: `Repaired title ${input.chapterNumber}`,
        summary: `Repaired summary of chapter ${input.chapterNumber}`,
        choices: [{ label: "Late choice", direction: "late" }],
        bibleUpdates: { characters: [], facts: [`repaired fact ${input.chapterNumber}`] },
        state: { relationships: [], milestones: [`repaired milestone ${input.chapterNumber}`], arcProgress: 50 },
      },
      runs: [run("choices")],
    };
  }

  async *write(input: AgentInput, options: WriteOptions = {}): AsyncIterable<StoryEvent> {
    this.inputs.push(input);
    this.writeOptions.push(options);
    if (this.gate) await this.gate;
    if (options.signal?.aborted) {
      yield { type: "failed", error: new ModelError("cut", "aborted"), runs: [] };
      return;
    }
    for (const ms of this.waits.splice(0)) options.onWait?.(ms, new ModelError("rate_limited", "injected"));
    const failure = this.failures.shift();
    if (failure !== undefined) {
      if (failure.afterText !== undefined) yield { type: "text", delta: failure.afterText };
      yield {
        type: "failed",
        error: new ModelError(failure.kind, "injected"),
        runs: [{ ...run(input.task, input), status: "failed" }],
      };
      return;
    }
    const n = input.chapterNumber;
    const what = input.direction ?? input.action ?? input.story.premise;
    const text = `Chapter ${n} text about ${what}.\n\nIt goes on.`;
    const result: ChapterResult = {
      chapterTitle: `Title ${n}`,
      text,
      summary: `Summary of chapter ${n}: ${what}`,
      choices: [
        { label: `Go north ${n}`, direction: "north" },
        { label: `Go south ${n}`, direction: "south" },
        { label: `Wait ${n}`, direction: "stay" },
      ],
      bibleUpdates: {
        characters: [{ name: `Extra ${n}`, role: "passer-by", appearance: "grey coat" }],
        facts: [`fact ${n}`],
      },
      // Mei warms to the reader by 10 a chapter; each chapter reaches a milestone.
      state: {
        relationships: [{ name: "Mei", value: 10 * n, standing: `standing after chapter ${n}: ${what}` }],
        milestones: [`milestone ${n}`],
        arcProgress: 10 * n,
      },
      continuity: { ok: true, issues: [] },
      illustrations: n % 2 === 1 ? [{ scene: `Mei in the rain, chapter ${n}`, characters: ["Mei"] }] : [],
      runs: [run(input.task, input), run("choices", input)],
      ...(input.task === "open"
        ? {
            story: {
              title: "The Fake Tale",
              language: "en",
              bible: {
                characters: [{ name: "Mei", role: "medium", appearance: "red qipao, bob haircut" }],
                places: [{ name: "Shanghai", description: "1920s" }],
                facts: ["Mei sees ghosts"],
              },
              arc: { beats: ["meet", "doubt", "reveal"], openThreads: ["who died"] },
            },
          }
        : {}),
    };
    if (this.corrupt) {
      this.corrupt = false;
      for (const r of result.runs) r.latencyMs = Number.NaN;
    }
    if (this.partsFailNext) {
      this.partsFailNext = false;
      result.chapterTitle = text.split("\n")[0] ?? "";
      result.summary = "";
      result.choices = [];
      result.bibleUpdates = { characters: [], facts: [] };
      delete result.state;
      result.needsRepair = true;
    }
    if (result.story)
      yield {
        type: "story",
        title: result.story.title,
        language: "en",
        cast: result.story.bible.characters,
        plan: result.story,
      };
    const already = input.resume?.prose ?? "";
    const rest = text.startsWith(already) ? text.slice(already.length) : text;
    if (input.resume?.complete !== true) for (const part of rest.split(/(?<= )/)) yield { type: "text", delta: part };
    yield { type: "choices", choices: result.choices };
    yield { type: "done", result };
  }

  async describeScene(input: DescribeSceneInput): Promise<{ description: string; run: RunRecord }> {
    return { description: `A picture of ${input.scene}`, run: run("illustrate") };
  }

  readonly talkInputs: TalkInput[] = [];

  async *talk(input: TalkInput): AsyncGenerator<TalkEvent> {
    this.talkInputs.push(input);
    const reply = `${input.character.name} answers: "${input.message}"`;
    yield { type: "text", delta: reply };
    yield { type: "done", reply, run: { ...run("talk"), checks: { finishedInFormat: true } } };
  }

  /** How long a summary takes (a model call is not instant). */
  summarizeDelayMs = 0;

  async summarize(input: SummarizeInput): Promise<{ summary: string; run: RunRecord }> {
    this.summaries.push(input);
    if (this.summarizeDelayMs > 0) await new Promise((r) => setTimeout(r, this.summarizeDelayMs));
    return { summary: `Rolling summary up to ${input.fold.at(-1)?.number}`, run: run("summarize") };
  }
}
