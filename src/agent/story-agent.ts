/**
 * The story agent: writes one chapter with a FireAct method (cot, react, reflexion),
 * streams the prose, then checks continuity and asks for the chapter's structured parts
 * (title, summary, choices, bible updates) in parallel. Every model task is recorded as a
 * `RunRecord` (a trajectory). `write` never throws: failures end the stream with `failed`.
 */
import type { ZodType } from "zod";
import {
  type AssistantMessage,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ModelClient,
  ModelError,
  type ModelRoute,
  type Task,
  type ToolSpec,
  type Usage,
} from "../llm/types.ts";
import { buildMemory } from "./memory.ts";
import {
  BEGIN_WRITING_ACK,
  checkPrompt,
  checkUserMessage,
  choicesPrompt,
  choicesUserMessage,
  firstUserMessage,
  illustratePrompt,
  illustrateUserMessage,
  PLAN_ACCEPTED,
  repairMessage,
  SCENE_DESCRIPTION_MAX_CHARS,
  STEP_LIMIT_NOTE,
  type Step,
  SUMMARY_MAX_CHARS,
  stepMessage,
  summarizePrompt,
  summarizeUserMessage,
  type WritingContext,
  writingSystemPrompt,
} from "./prompts.ts";
import {
  type ContinuityReport,
  continuityReportSchema,
  continuityResponseFormat,
  type PlanStory,
  parseJsonWith,
  planStorySchema,
  planStoryTool,
  REACT_TOOLS,
  type SubmitChapter,
  submitChapterSchema,
  submitChapterTool,
} from "./schemas.ts";
import { createToolbox, type ToolNoise } from "./tools.ts";
import type {
  AgentInput,
  Arc,
  Bible,
  ChapterResult,
  IllustrationProposal,
  Method,
  RunRecord,
  StoryAgent,
  StoryEvent,
  StorySnapshot,
  SummarizeInput,
} from "./types.ts";

export interface StoryAgentOptions {
  /** Model turns of the ReAct loop before writing anyway. Default 6. */
  maxSteps?: number;
  /** Chapters quoted verbatim in the prompt. Default 3. */
  recentChapters?: number;
  /** Evaluation only: search tools return nothing or a random result this often (FireAct). */
  toolNoise?: ToolNoise;
}

const MAX_TOKENS = { prose: 3000, thought: 500, structured: 1500, check: 800, summarize: 900, describe: 250 } as const;

/** One run being recorded: its conversation is the trajectory. */
class Run {
  readonly record: RunRecord;
  private finished = false;

  constructor(task: RunRecord["task"], method: Method, route: ModelRoute, promptVersion: string, tools: ToolSpec[]) {
    this.record = {
      task,
      method,
      model: route.model,
      baseUrl: route.baseUrl,
      fineTuned: route.fineTuned,
      promptVersion,
      messages: [],
      tools,
      promptTokens: 0,
      completionTokens: 0,
      costUsd: 0,
      latencyMs: 0,
      status: "ok",
      checks: {},
    };
  }

  get messages(): ChatMessage[] {
    return this.record.messages;
  }

  push(message: ChatMessage): void {
    this.record.messages.push(message);
  }

  addUsage(usage: Usage): void {
    this.record.promptTokens += usage.promptTokens;
    this.record.completionTokens += usage.completionTokens;
    this.record.costUsd += usage.costUsd;
    this.record.latencyMs += usage.latencyMs;
    // The usage names the model that actually answered (a router may differ from the route).
    if (usage.model) this.record.model = usage.model;
  }

  finish(): void {
    this.finished = true;
  }

  fail(error: ModelError): void {
    if (this.finished) return;
    this.finished = true;
    this.record.status = "failed";
    this.record.error = `${error.kind}: ${error.message}`;
  }
}

function toModelError(err: unknown, signal?: AbortSignal): ModelError {
  if (err instanceof ModelError) return err;
  if (signal?.aborted) return new ModelError("cut", "aborted");
  const message = err instanceof Error ? err.message : String(err);
  return new ModelError("bad_output", message);
}

function toArc(arc: { beats: string[]; open_threads: string[] }): Arc {
  return { beats: arc.beats, openThreads: arc.open_threads };
}

function planToStory(story: StorySnapshot, plan: PlanStory): StorySnapshot {
  const bible: Bible = {
    characters: plan.characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
    places: plan.places,
    facts: plan.facts,
  };
  return { ...story, title: plan.title, language: plan.language, bible, arc: toArc(plan.arc) };
}

/** Split text into small pieces, as if it were streamed. */
export function chunkText(text: string, size = 48): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > size) {
    let cut = rest.lastIndexOf(" ", size);
    if (cut <= 0) cut = size;
    out.push(rest.slice(0, cut + (rest[cut] === " " ? 1 : 0)));
    rest = rest.slice(out[out.length - 1]?.length ?? cut);
  }
  if (rest !== "") out.push(rest);
  return out;
}

function boundSummary(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length <= SUMMARY_MAX_CHARS) return trimmed;
  const cut = trimmed.slice(0, SUMMARY_MAX_CHARS);
  const end = Math.max(...[".", "!", "?", "。", "！", "？"].map((p) => cut.lastIndexOf(p)));
  return end > SUMMARY_MAX_CHARS / 2 ? cut.slice(0, end + 1) : `${cut.trimEnd()}…`;
}

export function createStoryAgent(model: ModelClient, options: StoryAgentOptions = {}): StoryAgent {
  const maxSteps = Math.max(1, options.maxSteps ?? 6);
  const recentChapters = Math.max(0, options.recentChapters ?? 3);

  function request(
    run: Run,
    task: Task,
    extra: Omit<ChatRequest, "task" | "messages" | "signal">,
    signal?: AbortSignal,
  ) {
    // A copy: later turns must not change what an earlier request recorded.
    const req: ChatRequest = { task, messages: [...run.messages], ...extra };
    if (signal) req.signal = signal;
    return req;
  }

  async function complete(run: Run, req: ChatRequest): Promise<ChatResult> {
    if (req.signal?.aborted) throw new ModelError("cut", "aborted");
    const result = await model.complete(req);
    run.addUsage(result.usage);
    return result;
  }

  /**
   * A forced tool call validated with zod; one repair turn (the validation error as the
   * tool result, or a user message when no call came back), then `bad_output`.
   */
  async function structuredCall<T>(
    run: Run,
    task: Task,
    tool: ToolSpec,
    schema: ZodType<T>,
    ack: string | undefined,
    signal?: AbortSignal,
  ): Promise<T> {
    const name = tool.function.name;
    let lastError = "";
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await complete(
        run,
        request(run, task, { tools: [tool], toolChoice: { name }, maxTokens: MAX_TOKENS.structured }, signal),
      );
      const message: AssistantMessage = result.message;
      run.push(message);
      const calls = message.tool_calls ?? [];
      const call = calls.find((c) => c.function.name === name);
      const parsed = call ? parseJsonWith(schema, call.function.arguments) : undefined;
      if (parsed?.ok) {
        if (ack !== undefined) {
          for (const c of calls) run.push({ role: "tool", tool_call_id: c.id, content: c === call ? ack : "Ignored." });
        }
        return parsed.value;
      }
      lastError = parsed ? parsed.error : `no ${name} call in the answer`;
      const last = attempt === 1;
      if (calls.length > 0) {
        if (!last) {
          for (const c of calls) {
            const content = c === call ? repairMessage(name, lastError) : `Error: call ${name} instead.`;
            run.push({ role: "tool", tool_call_id: c.id, content });
          }
        }
      } else if (!last) {
        run.push({ role: "user", content: repairMessage(name, lastError) });
      }
    }
    throw new ModelError("bad_output", `${name}: ${lastError}`);
  }

  /** The continuity check (task "check"): JSON through response_format, one repair turn. */
  async function runCheck(
    runs: Run[],
    method: Method,
    story: StorySnapshot,
    chapterNumber: number,
    draft: string,
    signal?: AbortSignal,
  ): Promise<ContinuityReport> {
    const route = model.route("check");
    const prompt = checkPrompt(route.fineTuned);
    const run = new Run("check", method, route, prompt.version, []);
    runs.push(run);
    const memory = buildMemory(story, { recentChapters });
    run.push({ role: "system", content: prompt.content });
    run.push({ role: "user", content: checkUserMessage(memory.text, chapterNumber, draft) });
    try {
      let lastError = "";
      for (let attempt = 0; attempt < 2; attempt++) {
        const result = await complete(
          run,
          request(run, "check", { responseFormat: continuityResponseFormat, maxTokens: MAX_TOKENS.check }, signal),
        );
        run.push({ role: "assistant", content: result.message.content });
        const parsed = parseJsonWith(continuityReportSchema, result.message.content);
        if (parsed.ok) {
          // ok with issues listed is a contradiction in the report: trust the issues.
          const report = { ok: parsed.value.ok && parsed.value.issues.length === 0, issues: parsed.value.issues };
          run.record.checks = { finishedInFormat: true, continuityOk: report.ok, issues: report.issues };
          run.finish();
          return report;
        }
        lastError = parsed.error;
        if (attempt === 0) run.push({ role: "user", content: repairMessage("continuity_report JSON", lastError) });
      }
      run.record.checks = { finishedInFormat: false };
      throw new ModelError("bad_output", `continuity_report: ${lastError}`);
    } catch (err) {
      const error = toModelError(err, signal);
      run.fail(error);
      throw error;
    }
  }

  async function runChoices(
    runs: Run[],
    method: Method,
    story: StorySnapshot,
    chapterNumber: number,
    text: string,
    signal?: AbortSignal,
  ): Promise<SubmitChapter> {
    const route = model.route("choices");
    const prompt = choicesPrompt(route.fineTuned);
    const run = new Run("choices", method, route, prompt.version, [submitChapterTool]);
    runs.push(run);
    const memory = buildMemory(story, { recentChapters: Math.min(1, recentChapters) });
    run.push({ role: "system", content: prompt.content });
    run.push({
      role: "user",
      content: choicesUserMessage(
        story,
        chapterNumber,
        text,
        memory.sections.arc ? `## Hidden arc\n${memory.sections.arc}` : "",
        story.language,
      ),
    });
    const value = await structuredCall(run, "choices", submitChapterTool, submitChapterSchema, undefined, signal);
    run.record.checks = { finishedInFormat: true };
    run.finish();
    return value;
  }

  /** The streamed prose call: no tools, text deltas yielded as they arrive. */
  async function* streamProse(run: Run, task: Task, signal?: AbortSignal): AsyncGenerator<StoryEvent, string> {
    if (signal?.aborted) throw new ModelError("cut", "aborted");
    let text = "";
    let done: ChatResult | undefined;
    for await (const event of model.stream(request(run, task, { maxTokens: MAX_TOKENS.prose }, signal))) {
      if (event.type === "text") {
        text += event.delta;
        yield { type: "text", delta: event.delta };
      } else {
        done = event;
      }
    }
    if (!done) throw new ModelError("cut", "the stream ended without a finish");
    run.addUsage(done.usage);
    const prose = text !== "" ? text : (done.message.content ?? "");
    if (prose.trim() === "") throw new ModelError("bad_output", "the model wrote an empty chapter");
    run.push({ role: "assistant", content: prose });
    return prose;
  }

  async function* writeChapter(input: AgentInput, runs: Run[], signal?: AbortSignal): AsyncGenerator<StoryEvent> {
    const { task, method } = input;
    const route = model.route(task);
    const system = writingSystemPrompt(task, method, route.fineTuned);
    const tools: ToolSpec[] = [...(task === "open" ? [planStoryTool] : []), ...(method === "react" ? REACT_TOOLS : [])];
    const run = new Run(task, method, route, system.version, tools);
    runs.push(run);

    let story = input.story;
    const query = input.action ?? input.direction ?? "";
    const ctx: WritingContext = {
      task,
      story,
      chapterNumber: input.chapterNumber,
      memory: task === "open" ? "" : buildMemory(story, { recentChapters, query }).text,
    };
    if (input.action !== undefined) ctx.action = input.action;
    if (input.direction !== undefined) ctx.direction = input.direction;
    if (input.replacing !== undefined) ctx.replacing = input.replacing;

    run.push({ role: "system", content: system.content });
    let plan: PlanStory | undefined;
    // The first user message carries the context; later steps are short messages.
    let first = true;
    const say = (step: Step, extra?: string) => {
      run.push({
        role: "user",
        content: first ? firstUserMessage(ctx, step) : stepMessage(step, ctx, story.language, extra),
      });
      first = false;
    };

    if (task === "open") {
      yield { type: "status", phase: "planning" };
      say("open");
      plan = await structuredCall(run, task, planStoryTool, planStorySchema, PLAN_ACCEPTED, signal);
      story = planToStory(story, plan);
      ctx.story = story;
      yield { type: "story", title: plan.title, language: plan.language, cast: story.bible.characters };
    }

    let prose = "";
    let reused: ContinuityReport | undefined;
    const illustrations: IllustrationProposal[] = [];

    if (method === "cot" || method === "reflexion") {
      yield { type: "status", phase: "planning" };
      say("thought");
      const thought = await complete(run, request(run, task, { maxTokens: MAX_TOKENS.thought }, signal));
      run.push({ role: "assistant", content: thought.message.content ?? "" });
    }

    if (method === "react") {
      yield { type: "status", phase: "recalling" };
      say("react", "Gather what you need with the tools, then call begin_writing with your plan.");
      const toolbox = createToolbox({
        story,
        recentChapters,
        ...(options.toolNoise === undefined ? {} : { noise: options.toolNoise }),
        checkContinuity: (draft) => runCheck(runs, method, story, input.chapterNumber, draft, signal),
      });
      let planned = false;
      for (let step = 0; step < maxSteps && !planned; step++) {
        const result = await complete(run, request(run, task, { tools: REACT_TOOLS, toolChoice: "auto" }, signal));
        run.push(result.message);
        const calls = result.message.tool_calls ?? [];
        // No action: the model chose to answer directly; its thought is the plan.
        if (calls.length === 0) break;
        for (const call of calls) {
          const outcome = await toolbox.run(call);
          const observation = outcome.plan !== undefined ? BEGIN_WRITING_ACK : outcome.observation;
          run.push({ role: "tool", tool_call_id: call.id, content: observation });
          yield {
            type: "tool",
            name: outcome.name,
            args: outcome.args,
            result: observation,
            ...(outcome.noisy === true ? { noisy: true } : {}),
          };
          if (outcome.plan !== undefined) planned = true;
          if (outcome.illustration !== undefined) illustrations.push(outcome.illustration);
        }
      }
      yield { type: "status", phase: "writing" };
      say("write", planned ? undefined : STEP_LIMIT_NOTE);
      prose = yield* streamProse(run, task, signal);
    } else if (method === "cot") {
      yield { type: "status", phase: "writing" };
      say("write");
      prose = yield* streamProse(run, task, signal);
    } else {
      yield { type: "status", phase: "drafting" };
      say("draft");
      const draft = await complete(run, request(run, task, { maxTokens: MAX_TOKENS.prose }, signal));
      const draftText = draft.message.content ?? "";
      if (draftText.trim() === "") throw new ModelError("bad_output", "the model wrote an empty draft");
      run.push({ role: "assistant", content: draftText });
      yield { type: "status", phase: "checking" };
      const critique = await runCheck(runs, method, story, input.chapterNumber, draftText, signal);
      if (critique.ok) {
        yield { type: "status", phase: "writing" };
        for (const delta of chunkText(draftText)) yield { type: "text", delta };
        prose = draftText;
        reused = critique;
      } else {
        yield { type: "status", phase: "revising" };
        say("revise", critique.issues.map((i) => `- ${i}`).join("\n"));
        prose = yield* streamProse(run, task, signal);
      }
    }

    yield { type: "status", phase: "checking" };
    yield { type: "status", phase: "choosing" };
    // The draft already checked is the final text when reflexion kept it: no second check.
    const [continuity, parts] = await Promise.all([
      reused ??
        runCheck(runs, method, story, input.chapterNumber, prose, signal).catch((err: unknown) => {
          // A broken checker must not cost the reader a finished chapter: keep it, marked unchecked.
          if (signal?.aborted) throw err;
          const error = toModelError(err);
          return { ok: false, issues: [`unchecked: ${error.kind}`] };
        }),
      runChoices(runs, method, story, input.chapterNumber, prose, signal),
    ]);
    run.record.checks = { finishedInFormat: true, continuityOk: continuity.ok, issues: continuity.issues };
    run.finish();

    const choices = parts.choices.map((c) => ({ label: c.label, direction: c.direction }));
    if (parts.illustration !== undefined) illustrations.push(parts.illustration);
    yield { type: "choices", choices };
    const result: ChapterResult = {
      chapterTitle: parts.chapter_title,
      text: prose,
      summary: parts.summary,
      choices,
      bibleUpdates: {
        characters: parts.new_characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
        facts: parts.new_facts,
      },
      continuity,
      illustrations: illustrations.map((i) => ({ scene: i.scene, characters: i.characters })),
      runs: runs.map((r) => r.record),
    };
    if (plan) result.story = { title: story.title, language: story.language, bible: story.bible, arc: story.arc };
    if (parts.arc) result.arc = toArc(parts.arc);
    yield { type: "done", result };
  }

  return {
    async *write(input, signal) {
      const runs: Run[] = [];
      try {
        for await (const event of writeChapter(input, runs, signal)) yield event;
      } catch (err) {
        const error = toModelError(err, signal);
        for (const run of runs) run.fail(error);
        yield { type: "failed", error, runs: runs.map((r) => r.record) };
      }
    },

    async describeScene(input, signal) {
      const route = model.route("illustrate");
      const prompt = illustratePrompt(route.fineTuned);
      // One direct answer, like a summary: CoT's format.
      const run = new Run("illustrate", "cot", route, prompt.version, []);
      run.push({ role: "system", content: prompt.content });
      run.push({ role: "user", content: illustrateUserMessage(input) });
      try {
        const result = await complete(run, request(run, "illustrate", { maxTokens: MAX_TOKENS.describe }, signal));
        const content = (result.message.content ?? "").trim();
        run.push({ role: "assistant", content });
        if (content === "") throw new ModelError("bad_output", "empty picture description");
        run.record.checks = { finishedInFormat: content.length <= SCENE_DESCRIPTION_MAX_CHARS };
        run.finish();
        return { description: content.slice(0, SCENE_DESCRIPTION_MAX_CHARS), run: run.record };
      } catch (err) {
        const error = toModelError(err, signal);
        run.fail(error);
        throw error;
      }
    },

    async summarize({ story, fold }: SummarizeInput, signal?: AbortSignal) {
      const route = model.route("summarize");
      const prompt = summarizePrompt(route.fineTuned);
      // Summaries have no FireAct method of their own; a single direct answer is CoT's format.
      const run = new Run("summarize", "cot", route, prompt.version, []);
      run.push({ role: "system", content: prompt.content });
      run.push({ role: "user", content: summarizeUserMessage(story, fold) });
      try {
        const result = await complete(run, request(run, "summarize", { maxTokens: MAX_TOKENS.summarize }, signal));
        const content = result.message.content ?? "";
        run.push({ role: "assistant", content });
        if (content.trim() === "") throw new ModelError("bad_output", "empty summary");
        run.finish();
        return { summary: boundSummary(content), run: run.record };
      } catch (err) {
        throw toModelError(err, signal);
      }
    },
  };
}
