/**
 * A `StoryAgent` test double for the story service: writes a predictable
 * chapter for every input (or fails when told to), and records every input.
 */
import type {
  AgentInput,
  ChapterResult,
  DescribeSceneInput,
  RunRecord,
  StoryAgent,
  StoryEvent,
  SummarizeInput,
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

  async *write(input: AgentInput): AsyncIterable<StoryEvent> {
    this.inputs.push(input);
    if (this.gate) await this.gate;
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
    if (result.story)
      yield { type: "story", title: result.story.title, language: "en", cast: result.story.bible.characters };
    for (const part of text.split(/(?<= )/)) yield { type: "text", delta: part };
    yield { type: "choices", choices: result.choices };
    yield { type: "done", result };
  }

  async describeScene(input: DescribeSceneInput): Promise<{ description: string; run: RunRecord }> {
    return { description: `A picture of ${input.scene}`, run: run("illustrate") };
  }

  async summarize(input: SummarizeInput): Promise<{ summary: string; run: RunRecord }> {
    this.summaries.push(input);
    return { summary: `Rolling summary up to ${input.fold.at(-1)?.number}`, run: run("summarize") };
  }
}
