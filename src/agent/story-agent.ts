/**
 * The story agent: writes one chapter with a FireAct method (cot, react, reflexion),
 * streams the prose, then checks continuity and asks for the chapter's structured parts
 * (title, summary, choices, bible updates) in parallel. Every model task is recorded as a
 * `RunRecord` (a trajectory). `write` never throws: failures end the stream with `failed`.
 *
 * In the field:
 * - Structured output goes through the route's strategy (src/llm/structured-strategy.ts):
 *   a forced tool call, a json_schema response format or JSON in text, learned once per
 *   route. Whatever carried it, the trajectory records it the same way (a tool call for
 *   tools, JSON content for reports), so training data does not depend on the endpoint.
 * - A stream cut after text has arrived is continued from that text (`continueMessage`),
 *   a bounded number of times with backoff; the reader sees one continuous chapter.
 * - Once the prose is written, nothing after it can discard the chapter: when the parts
 *   fail on every strategy, the chapter is kept with what can be had (`needsRepair`).
 * - The pre-prose steps can run ahead of the reader's choice (`plan`), so that `write`
 *   with the plan starts with the streamed prose: one model round trip after a choice.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ZodType } from "zod";
import { retryDelayMs } from "../llm/retry.ts";
import { extractJson } from "../llm/strict-schema.ts";
import {
  nextStrategy,
  rejectsStructuredParameters,
  type StrategyBook,
  StrategyMemory,
  type StructuredStrategy,
} from "../llm/structured-strategy.ts";
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
import { formatLoreLine, type LoreEntry } from "./lore.ts";
import { buildMemory, chooseLore, LORE_DEFAULTS, type LoreUse } from "./memory.ts";
import {
  BEGIN_WRITING_ACK,
  checkPrompt,
  checkUserMessage,
  choicesPrompt,
  choicesUserMessage,
  continueMessage,
  emptyChapterMessage,
  firstUserMessage,
  illustratePrompt,
  illustrateUserMessage,
  jsonRepairMessage,
  jsonTextRequest,
  PLAN_ACCEPTED,
  planLoreNote,
  repairMessage,
  SCENE_DESCRIPTION_MAX_CHARS,
  STEP_LIMIT_NOTE,
  type Step,
  SUMMARY_MAX_CHARS,
  stepMessage,
  summarizePrompt,
  summarizeUserMessage,
  TALK_REPLY_MAX_CHARS,
  talkPrompt,
  talkUserMessage,
  type WritingContext,
  writingSystemPrompt,
} from "./prompts.ts";
import {
  CONTINUITY_REPORT_NAME,
  type ContinuityReport,
  continuityReportSchema,
  continuityResponseFormat,
  offerChoicesSchema,
  offerChoicesTool,
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
  ChapterParts,
  ChapterPlan,
  ChapterResult,
  IllustrationProposal,
  Method,
  PlannedStory,
  PlanOutcome,
  RunRecord,
  StoryAgent,
  StoryEvent,
  StorySnapshot,
  SummarizeInput,
  TalkEvent,
  TalkInput,
  WriteOptions,
} from "./types.ts";

export interface StoryAgentOptions {
  /** Model turns of the ReAct loop before writing anyway. Default 6. */
  maxSteps?: number;
  /** Chapters quoted verbatim in the prompt. Default 3. */
  recentChapters?: number;
  /** Evaluation only: search tools return nothing or a random result this often (FireAct). */
  toolNoise?: ToolNoise;
  /** How each route is asked for structured output (default: endpoint defaults, in memory). */
  strategies?: StrategyBook;
  /** Continuations of a cut stream in a row without new text before the chapter fails. Default 3. */
  maxResumes?: number;
  /** First backoff step before a continuation (default 250 ms; tests make it tiny). */
  resumeBaseMs?: number;
  /** Tokens a prompt's lore entries may take (default `LORE_DEFAULTS.budgetTokens`). */
  loreBudgetTokens?: number;
  /** How deep an added lore entry's text may trigger others (default `LORE_DEFAULTS.maxDepth`). */
  loreDepth?: number;
}

const MAX_TOKENS = {
  prose: 3000,
  thought: 500,
  structured: 1500,
  check: 800,
  summarize: 900,
  describe: 250,
  talk: 500,
  choices: 600,
} as const;

/** Model calls one structured answer may take: strategy changes plus one repair. */
const MAX_STRUCTURED_CALLS = 5;
/** Continuations of one chapter in all, even when each brings new text. */
const MAX_TOTAL_RESUMES = 12;
/** Prose requests asked again after an empty (or whitespace) answer, before the chapter fails. */
const MAX_EMPTY_RETRIES = 2;
/** A chapter title taken from the prose's first line is at most this long. */
const FIRST_LINE_TITLE_MAX = 80;

/** Extra lines of a step message, those given. */
function joinNotes(...notes: (string | undefined)[]): string | undefined {
  const given = notes.filter((n): n is string => n !== undefined && n !== "");
  return given.length === 0 ? undefined : given.join("\n");
}

/** The run records which lore its prompt carried and what the budget left out. */
function recordLore(run: Run, lore: LoreUse): void {
  if (lore.included.length === 0 && lore.leftOut.length === 0) return;
  run.record.checks = { ...run.record.checks, lore: { included: lore.included, leftOut: lore.leftOut } };
}

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

/** Signal and wait hook of one write or plan, passed to every model call. */
interface CallOptions {
  signal?: AbortSignal | undefined;
  onWait?: ((delayMs: number, error: ModelError) => void) | undefined;
}

/** A structured answer: its validation, and how the trajectory records it. */
interface StructuredSpec<T> {
  name: string;
  schema: ZodType<T>;
  /** Strict JSON schema (tool parameters or response format). */
  jsonSchema: Record<string, unknown>;
  /** Recorded as a call of this tool; without one, as JSON content (reports). */
  tool?: ToolSpec;
  maxTokens: number;
}

const PLAN_STORY: StructuredSpec<PlanStory> = {
  name: planStoryTool.function.name,
  schema: planStorySchema,
  jsonSchema: planStoryTool.function.parameters,
  tool: planStoryTool,
  maxTokens: MAX_TOKENS.structured,
};
const SUBMIT_CHAPTER: StructuredSpec<SubmitChapter> = {
  name: submitChapterTool.function.name,
  schema: submitChapterSchema,
  jsonSchema: submitChapterTool.function.parameters,
  tool: submitChapterTool,
  maxTokens: MAX_TOKENS.structured,
};
const OFFER_CHOICES: StructuredSpec<{ choices: { label: string; direction: string }[] }> = {
  name: offerChoicesTool.function.name,
  schema: offerChoicesSchema,
  jsonSchema: offerChoicesTool.function.parameters,
  tool: offerChoicesTool,
  maxTokens: MAX_TOKENS.choices,
};
const CONTINUITY: StructuredSpec<ContinuityReport> = {
  name: CONTINUITY_REPORT_NAME,
  schema: continuityReportSchema,
  jsonSchema: continuityResponseFormat.schema,
  maxTokens: MAX_TOKENS.check,
};

function toModelError(err: unknown, signal?: AbortSignal): ModelError {
  if (err instanceof ModelError) return err;
  if (signal?.aborted) return new ModelError("cut", "aborted");
  const message = err instanceof Error ? err.message : String(err);
  return new ModelError("bad_output", message);
}

function toArc(arc: { beats: string[]; open_threads: string[] }): Arc {
  return { beats: arc.beats, openThreads: arc.open_threads };
}

function planToStory(plan: PlanStory): PlannedStory {
  const bible: Bible = {
    characters: plan.characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
    places: plan.places,
    facts: plan.facts,
  };
  return { title: plan.title, language: plan.language, bible, arc: toArc(plan.arc) };
}

function withPlannedStory(story: StorySnapshot, planned: PlannedStory): StorySnapshot {
  return { ...story, title: planned.title, language: planned.language, bible: planned.bible, arc: planned.arc };
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

/**
 * A title for a chapter kept without its structured parts: the prose's first line when
 * it is short enough to be one, else the story's title ("" when there is none yet).
 */
export function fallbackTitle(prose: string, storyTitle: string): string {
  const first = prose.trim().split("\n")[0]?.trim() ?? "";
  if (first !== "" && first.length <= FIRST_LINE_TITLE_MAX) return first.replace(/^#+\s*/, "");
  return storyTitle;
}

function partsOf(parts: SubmitChapter): ChapterParts {
  const out: ChapterParts = {
    chapterTitle: parts.chapter_title,
    summary: parts.summary,
    choices: parts.choices.map((c) => ({ label: c.label, direction: c.direction })),
    bibleUpdates: {
      characters: parts.new_characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
      facts: parts.new_facts,
    },
  };
  if (parts.arc) out.arc = toArc(parts.arc);
  if (parts.state) {
    out.state = {
      relationships: parts.state.relationships,
      milestones: parts.state.milestones,
      arcProgress: parts.state.arc_progress,
    };
  }
  return out;
}

/** The state of a chapter's writing run once its pre-prose steps are done. */
interface Prepared {
  input: AgentInput;
  run: Run;
  runs: Run[];
  story: StorySnapshot;
  ctx: WritingContext;
  /** Whether the next user message is the first (it carries the context). */
  first: boolean;
  planned: boolean;
  planStory?: PlannedStory;
  illustrations: IllustrationProposal[];
  /** Events of the pre-prose steps, replayed when a plan made ahead of time is used. */
  events: StoryEvent[];
  /** Marks plans so `write` takes only ours, and only once. */
  used: boolean;
  /** The lore the prompt carries so far (memory, then what the planning step brought up). */
  lore?: LoreUse;
  /** Lore lines the planning step brought up, for the writing step. */
  planLore?: string;
}

class PreparedPlan implements ChapterPlan {
  constructor(readonly prepared: Prepared) {}
  get runs(): RunRecord[] {
    return this.prepared.runs.map((r) => r.record);
  }
  get promptTokens(): number {
    return this.prepared.runs.reduce((sum, r) => sum + r.record.promptTokens, 0);
  }
}

export function createStoryAgent(model: ModelClient, options: StoryAgentOptions = {}): StoryAgent {
  const maxSteps = Math.max(1, options.maxSteps ?? 6);
  const recentChapters = Math.max(0, options.recentChapters ?? 3);
  const loreOptions = {
    loreBudgetTokens: options.loreBudgetTokens ?? LORE_DEFAULTS.budgetTokens,
    loreDepth: options.loreDepth ?? LORE_DEFAULTS.maxDepth,
  };
  const strategies = options.strategies ?? new StrategyMemory();
  const maxResumes = Math.max(0, options.maxResumes ?? 3);
  const resumeBaseMs = options.resumeBaseMs ?? 250;

  function request(
    messages: ChatMessage[],
    task: Task,
    extra: Omit<ChatRequest, "task" | "messages" | "signal" | "onRetry">,
    call: CallOptions,
  ): ChatRequest {
    // A copy: later turns must not change what an earlier request recorded.
    const req: ChatRequest = { task, messages: [...messages], ...extra };
    if (call.signal) req.signal = call.signal;
    if (call.onWait) req.onRetry = call.onWait;
    return req;
  }

  async function complete(run: Run, req: ChatRequest): Promise<ChatResult> {
    if (req.signal?.aborted) throw new ModelError("cut", "aborted");
    const result = await model.complete(req);
    run.addUsage(result.usage);
    return result;
  }

  /**
   * One structured answer through the route's strategy. A strategy the endpoint does not
   * honour is replaced by the next one (and remembered); an answer that fails validation
   * gets one repair turn; then `bad_output`. Transport and repair turns are not recorded:
   * the trajectory gets the validated answer, as a tool call (with `ack` as its result)
   * or as JSON content.
   */
  async function structured<T>(
    run: Run,
    task: Task,
    spec: StructuredSpec<T>,
    ack: string | undefined,
    call: CallOptions,
  ) {
    const route = model.route(task);
    let strategy: StructuredStrategy = strategies.get(route);
    if (spec.tool === undefined && strategy === "tool") strategy = "json_schema";
    let extra: ChatMessage[] = strategy === "json_text" ? [jsonTextTurn(spec)] : [];
    let repaired = false;
    let lastError = "";
    const fallBack = (reason: string): boolean => {
      const next = nextStrategy(strategy);
      if (next === undefined) return false;
      strategies.learn(route, next, `${spec.name}: ${reason}`);
      strategy = next;
      extra = strategy === "json_text" ? [jsonTextTurn(spec)] : [];
      return true;
    };
    for (let calls = 0; calls < MAX_STRUCTURED_CALLS; calls++) {
      const params: Omit<ChatRequest, "task" | "messages"> =
        strategy === "tool" && spec.tool !== undefined
          ? { tools: [spec.tool], toolChoice: { name: spec.name }, maxTokens: spec.maxTokens }
          : strategy === "json_schema"
            ? { responseFormat: { name: spec.name, schema: spec.jsonSchema }, maxTokens: spec.maxTokens }
            : { maxTokens: spec.maxTokens };
      let result: ChatResult;
      try {
        result = await complete(run, request([...run.messages, ...extra], task, params, call));
      } catch (err) {
        const error = toModelError(err, call.signal);
        if (error.kind === "bad_request" && rejectsStructuredParameters(error.message) && fallBack(error.message)) {
          continue;
        }
        throw error;
      }
      const message: AssistantMessage = result.message;
      let raw: string | undefined;
      let toolCallId: string | undefined;
      if (strategy === "tool") {
        const found = (message.tool_calls ?? []).find((c) => c.function.name === spec.name);
        if (found === undefined && (message.tool_calls ?? []).length === 0) {
          // The endpoint dropped the forced tool_choice and answered in text (Ollama).
          if (fallBack("a forced tool call came back as text")) continue;
        }
        raw = found?.function.arguments;
        toolCallId = found?.id;
      } else {
        raw = extractJson(message.content ?? "");
        if (raw === undefined && strategy === "json_schema" && fallBack("a json_schema answer held no JSON")) continue;
      }
      const parsed = raw === undefined ? undefined : parseJsonWith(spec.schema, raw);
      if (parsed?.ok) {
        if (spec.tool !== undefined) {
          const id = toolCallId ?? `call_${spec.name}_${run.messages.length}`;
          run.push({
            role: "assistant",
            content: null,
            tool_calls: [{ id, type: "function", function: { name: spec.name, arguments: raw ?? "{}" } }],
          });
          if (ack !== undefined) run.push({ role: "tool", tool_call_id: id, content: ack });
        } else {
          run.push({ role: "assistant", content: raw ?? "" });
        }
        return parsed.value;
      }
      lastError = parsed ? parsed.error : `no ${spec.name} in the answer`;
      if (repaired) break;
      repaired = true;
      extra.push(message);
      if (strategy === "tool") {
        for (const c of message.tool_calls ?? []) {
          const content =
            c.function.name === spec.name ? repairMessage(spec.name, lastError) : `Error: call ${spec.name} instead.`;
          extra.push({ role: "tool", tool_call_id: c.id, content });
        }
        if ((message.tool_calls ?? []).length === 0)
          extra.push({ role: "user", content: repairMessage(spec.name, lastError) });
      } else {
        extra.push({ role: "user", content: jsonRepairMessage(spec.name, lastError) });
      }
    }
    throw new ModelError("bad_output", `${spec.name}: ${lastError}`);
  }

  function jsonTextTurn(spec: StructuredSpec<unknown>): ChatMessage {
    return { role: "user", content: jsonTextRequest(spec.name, spec.jsonSchema) };
  }

  /** The continuity check (task "check"): a JSON report, one repair turn. */
  async function runCheck(
    runs: Run[],
    method: Method,
    story: StorySnapshot,
    chapterNumber: number,
    draft: string,
    call: CallOptions,
  ): Promise<ContinuityReport> {
    const route = model.route("check");
    const prompt = checkPrompt(route.fineTuned);
    const run = new Run("check", method, route, prompt.version, []);
    runs.push(run);
    const memory = buildMemory(story, { recentChapters });
    run.push({ role: "system", content: prompt.content });
    run.push({ role: "user", content: checkUserMessage(memory.text, chapterNumber, draft) });
    try {
      const value = await structured(run, "check", CONTINUITY, undefined, call);
      // ok with issues listed is a contradiction in the report: trust the issues.
      const report = { ok: value.ok && value.issues.length === 0, issues: value.issues };
      run.record.checks = { finishedInFormat: true, continuityOk: report.ok, issues: report.issues };
      run.finish();
      return report;
    } catch (err) {
      const error = toModelError(err, call.signal);
      if (error.kind === "bad_output") run.record.checks = { finishedInFormat: false };
      run.fail(error);
      throw error;
    }
  }

  /** The chapter's structured parts (task "choices"): submit_chapter, with the hidden arc in view. */
  function runChoices(
    runs: Run[],
    method: Method,
    story: StorySnapshot,
    chapterNumber: number,
    text: string,
    call: CallOptions,
  ): Promise<SubmitChapter> {
    const memory = buildMemory(story, { recentChapters: Math.min(1, recentChapters) });
    const arc = [
      ...(memory.sections.arc ? [`## Hidden arc\n${memory.sections.arc}`] : []),
      ...(memory.sections.state ? [`## Story state before this chapter\n${memory.sections.state}`] : []),
    ].join("\n\n");
    return choicesRun(
      runs,
      method,
      SUBMIT_CHAPTER,
      choicesUserMessage(story, chapterNumber, text, arc, story.language),
      call,
    );
  }

  /** The fallback's short call: choices only, when the full parts failed. */
  async function runChoicesOnly(
    runs: Run[],
    method: Method,
    story: StorySnapshot,
    chapterNumber: number,
    text: string,
    call: CallOptions,
  ): Promise<{ label: string; direction: string }[]> {
    const user = choicesUserMessage(story, chapterNumber, text, "", story.language);
    return (await choicesRun(runs, method, OFFER_CHOICES, user, call)).choices;
  }

  /** One recorded "choices" run asking for `spec`'s structured answer. */
  async function choicesRun<T>(
    runs: Run[],
    method: Method,
    spec: StructuredSpec<T>,
    user: string,
    call: CallOptions,
  ): Promise<T> {
    const route = model.route("choices");
    const prompt = choicesPrompt(route.fineTuned);
    const run = new Run("choices", method, route, prompt.version, spec.tool === undefined ? [] : [spec.tool]);
    runs.push(run);
    run.push({ role: "system", content: prompt.content });
    run.push({ role: "user", content: user });
    try {
      const value = await structured(run, "choices", spec, undefined, call);
      run.record.checks = { finishedInFormat: true };
      run.finish();
      return value;
    } catch (err) {
      const error = toModelError(err, call.signal);
      run.fail(error);
      throw error;
    }
  }

  /**
   * The streamed prose call: no tools, text deltas yielded as they arrive. A stream that
   * breaks after text arrived is continued from that text (the same conversation, the
   * partial prose as the assistant's turn, then a continue instruction), with backoff;
   * the trajectory records the whole prose as one assistant turn.
   */
  async function* streamProse(
    run: Run,
    task: Task,
    chapterNumber: number,
    call: CallOptions,
    already = "",
  ): AsyncGenerator<StoryEvent, string> {
    let text = already;
    let stalled = 0;
    let resumes = 0;
    let empties = 0;
    for (;;) {
      if (call.signal?.aborted) throw new ModelError("cut", "aborted");
      const messages: ChatMessage[] =
        text === ""
          ? empties === 0
            ? run.messages
            : [...run.messages, { role: "user", content: emptyChapterMessage(chapterNumber) }]
          : [
              ...run.messages,
              { role: "assistant", content: text },
              { role: "user", content: continueMessage(chapterNumber) },
            ];
      let added = "";
      // A continuation's first characters are held until they show whether the model
      // repeated the end of the text it was given; the repeat is dropped.
      const joint = text === "" ? undefined : new Seam(text);
      const emit = function* (delta: string): Generator<StoryEvent> {
        if (delta === "") return;
        added += delta;
        text += delta;
        yield { type: "text", delta };
      };
      try {
        let done: ChatResult | undefined;
        for await (const event of model.stream(request(messages, task, { maxTokens: MAX_TOKENS.prose }, call))) {
          if (event.type === "text") {
            yield* emit(joint === undefined ? event.delta : joint.push(event.delta));
          } else {
            done = event;
          }
        }
        if (joint !== undefined) yield* emit(joint.flush());
        if (!done) throw new ModelError("cut", "the stream ended without a finish");
        run.addUsage(done.usage);
        if (text === "" && (done.message.content ?? "") !== "") {
          text = done.message.content ?? "";
          yield { type: "text", delta: text };
        }
        // A weak model (a small local one, say) can end at its first token: ask again,
        // saying so, a few times before the chapter fails.
        if (text.trim() === "" && empties < MAX_EMPTY_RETRIES) {
          empties++;
          text = "";
          yield { type: "status", phase: "resuming" };
          continue;
        }
        break;
      } catch (err) {
        // What arrived before the break is text like any other.
        if (joint !== undefined) yield* emit(joint.flush());
        const error = toModelError(err, call.signal);
        if (call.signal?.aborted || text === "" || !error.transient) throw error;
        stalled = added === "" ? stalled + 1 : 1;
        resumes++;
        if (stalled > maxResumes || resumes > MAX_TOTAL_RESUMES) throw error;
        const delay = retryDelayMs(stalled - 1, { baseMs: resumeBaseMs });
        call.onWait?.(delay, error);
        yield { type: "status", phase: "resuming" };
        try {
          await sleep(delay, undefined, call.signal ? { signal: call.signal } : {});
        } catch (sleepError) {
          // Aborted while waiting: the loop's first check ends the chapter.
          if (!call.signal?.aborted) throw sleepError;
        }
      }
    }
    if (text.trim() === "") throw new ModelError("bad_output", "the model wrote an empty chapter");
    run.push({ role: "assistant", content: text });
    return text;
  }

  /**
   * The writing run up to its prose: the opening's plan, CoT's thought, ReAct's tool turns
   * and begin_writing, reflexion's thought. Yields what the agent is doing.
   */
  async function* prepare(input: AgentInput, runs: Run[], call: CallOptions): AsyncGenerator<StoryEvent, Prepared> {
    const { task, method } = input;
    const route = model.route(task);
    const system = writingSystemPrompt(task, method, route.fineTuned);
    const tools: ToolSpec[] = [...(task === "open" ? [planStoryTool] : []), ...(method === "react" ? REACT_TOOLS : [])];
    const run = new Run(task, method, route, system.version, tools);
    runs.push(run);
    const events: StoryEvent[] = [];
    const emit = (event: StoryEvent) => {
      events.push(event);
      return event;
    };

    let story = input.story;
    const query = input.action ?? input.direction ?? "";
    const memory = task === "open" ? openingLore(story) : buildMemory(story, { recentChapters, query, ...loreOptions });
    const ctx: WritingContext = { task, story, chapterNumber: input.chapterNumber, memory: memory.text };
    if (input.action !== undefined) ctx.action = input.action;
    if (input.direction !== undefined) ctx.direction = input.direction;
    if (input.replacing !== undefined) ctx.replacing = input.replacing;
    if (input.talk !== undefined && task === "continue") ctx.talk = input.talk;
    if (input.authorNote !== undefined && input.authorNote.trim() !== "") ctx.authorNote = input.authorNote;
    const prepared: Prepared = {
      input,
      run,
      runs,
      story,
      ctx,
      first: true,
      planned: false,
      illustrations: [],
      events,
      used: false,
      lore: memory.lore,
    };
    recordLore(run, memory.lore);

    run.push({ role: "system", content: system.content });
    const say = (step: Step, extra?: string) => say_(prepared, step, extra);

    if (task === "open") {
      if (input.resume?.story !== undefined) {
        // A restart: the plan was made and saved before the prose began.
        prepared.planStory = input.resume.story;
      } else {
        yield emit({ type: "status", phase: "planning" });
        say("open");
        prepared.planStory = planToStory(await structured(run, task, PLAN_STORY, PLAN_ACCEPTED, call));
      }
      story = withPlannedStory(story, prepared.planStory);
      ctx.story = story;
      prepared.story = story;
      yield emit({
        type: "story",
        title: story.title,
        language: story.language,
        cast: story.bible.characters,
        plan: prepared.planStory,
      });
    }
    // A chapter resumed after a restart goes straight to its prose.
    if (input.resume !== undefined) return prepared;

    const planning: string[] = [];
    if (method === "cot" || method === "reflexion") {
      yield emit({ type: "status", phase: "planning" });
      say("thought");
      const thought = await complete(run, request(run.messages, task, { maxTokens: MAX_TOKENS.thought }, call));
      run.push({ role: "assistant", content: thought.message.content ?? "" });
      planning.push(thought.message.content ?? "");
    }

    if (method === "react") {
      yield emit({ type: "status", phase: "recalling" });
      say("react", "Gather what you need with the tools, then call begin_writing with your plan.");
      const toolbox = createToolbox({
        story,
        recentChapters,
        ...(options.toolNoise === undefined ? {} : { noise: options.toolNoise }),
        checkContinuity: (draft) => runCheck(runs, method, story, input.chapterNumber, draft, call),
      });
      for (let step = 0; step < maxSteps && !prepared.planned; step++) {
        const result = await complete(
          run,
          request(run.messages, task, { tools: REACT_TOOLS, toolChoice: "auto" }, call),
        );
        run.push(result.message);
        planning.push(result.message.content ?? "");
        const calls = result.message.tool_calls ?? [];
        // No action: the model chose to answer directly (FireAct); its thought is the plan.
        if (calls.length === 0) {
          prepared.planned = true;
          break;
        }
        for (const c of calls) {
          const outcome = await toolbox.run(c);
          const observation = outcome.plan !== undefined ? BEGIN_WRITING_ACK : outcome.observation;
          run.push({ role: "tool", tool_call_id: c.id, content: observation });
          yield emit({
            type: "tool",
            name: outcome.name,
            args: outcome.args,
            result: observation,
            ...(outcome.noisy === true ? { noisy: true } : {}),
          });
          if (outcome.plan !== undefined) {
            prepared.planned = true;
            planning.push(outcome.plan);
          }
          if (outcome.illustration !== undefined) prepared.illustrations.push(outcome.illustration);
        }
      }
    }
    addPlanningLore(prepared, planning);
    return prepared;
  }

  /** Lore whose keys the planning step brought up, within what the budget has left. */
  function addPlanningLore(prepared: Prepared, planning: string[]): void {
    const text = planning.join("\n").trim();
    if (text === "" || prepared.lore === undefined) return;
    const { lore } = prepared.story;
    const more = chooseLore(lore, [text], {
      budgetTokens: loreOptions.loreBudgetTokens,
      maxDepth: loreOptions.loreDepth,
      already: prepared.lore,
    });
    if (more.indexes.length === 0 && more.leftOut.length === 0) return;
    prepared.lore = {
      included: [...prepared.lore.included, ...more.included],
      leftOut: [...prepared.lore.leftOut, ...more.leftOut],
      indexes: [...prepared.lore.indexes, ...more.indexes],
      tokens: prepared.lore.tokens + more.tokens,
      considered: more.considered,
    };
    recordLore(prepared.run, prepared.lore);
    if (more.indexes.length > 0) {
      prepared.planLore = planLoreNote(more.indexes.map((i) => formatLoreLine(lore[i] as LoreEntry)));
    }
  }

  /** An opening's lore: constant entries and those its scenario brings up (no chapters yet). */
  function openingLore(story: StorySnapshot): { text: string; lore: LoreUse } {
    const lore = chooseLore(story.lore, [story.premise], {
      budgetTokens: loreOptions.loreBudgetTokens,
      maxDepth: loreOptions.loreDepth,
    });
    const lines = lore.indexes.map((i) => formatLoreLine(story.lore[i] as LoreEntry));
    return { text: lines.length === 0 ? "" : `## Lore\n${lines.join("\n")}`, lore };
  }

  function say_(prepared: Prepared, step: Step, extra?: string): void {
    const { ctx, story } = prepared;
    prepared.run.push({
      role: "user",
      content: prepared.first ? firstUserMessage(ctx, step) : stepMessage(step, ctx, story.language, extra),
    });
    prepared.first = false;
  }

  /** From the prepared state: the prose (streamed), then the check and the parts. */
  async function* finish(prepared: Prepared, call: CallOptions): AsyncGenerator<StoryEvent> {
    const { input, run, runs, story } = prepared;
    const { task, method } = input;
    const say = (step: Step, extra?: string) => say_(prepared, step, extra);
    let prose = "";
    let reused: ContinuityReport | undefined;

    if (input.resume !== undefined) {
      say("write");
      if (input.resume.complete) {
        prose = input.resume.prose;
        run.push({ role: "assistant", content: prose });
      } else {
        yield { type: "status", phase: "resuming" };
        prose = yield* streamProse(run, task, input.chapterNumber, call, input.resume.prose);
      }
    } else if (method === "react") {
      yield { type: "status", phase: "writing" };
      say("write", joinNotes(prepared.planned ? undefined : STEP_LIMIT_NOTE, prepared.planLore));
      prose = yield* streamProse(run, task, input.chapterNumber, call);
    } else if (method === "cot") {
      yield { type: "status", phase: "writing" };
      say("write", prepared.planLore);
      prose = yield* streamProse(run, task, input.chapterNumber, call);
    } else {
      yield { type: "status", phase: "drafting" };
      say("draft", prepared.planLore);
      const draft = await complete(run, request(run.messages, task, { maxTokens: MAX_TOKENS.prose }, call));
      const draftText = draft.message.content ?? "";
      if (draftText.trim() === "") throw new ModelError("bad_output", "the model wrote an empty draft");
      run.push({ role: "assistant", content: draftText });
      yield { type: "status", phase: "checking" };
      // A checker that cannot answer must not cost the reader the draft: it is shown unchecked.
      const critique = await runCheck(runs, method, story, input.chapterNumber, draftText, call).catch(
        (err: unknown): ContinuityReport => {
          if (call.signal?.aborted) throw err;
          return { ok: true, issues: [`unchecked: ${toModelError(err).kind}`] };
        },
      );
      if (critique.ok) {
        yield { type: "status", phase: "writing" };
        for (const delta of chunkText(draftText)) yield { type: "text", delta };
        prose = draftText;
        reused = critique.issues.length === 0 ? critique : { ok: false, issues: critique.issues };
      } else {
        yield { type: "status", phase: "revising" };
        say("revise", critique.issues.map((i) => `- ${i}`).join("\n"));
        prose = yield* streamProse(run, task, input.chapterNumber, call);
      }
    }

    // From here on the reader has read the chapter: nothing may discard it.
    yield { type: "status", phase: "checking" };
    yield { type: "status", phase: "choosing" };
    // The draft already checked is the final text when reflexion kept it: no second check.
    const [continuity, parts] = await Promise.all([
      reused ??
        runCheck(runs, method, story, input.chapterNumber, prose, call).catch((err: unknown) => {
          // A broken checker must not cost the reader a finished chapter: keep it, marked unchecked.
          if (call.signal?.aborted) throw err;
          return { ok: false, issues: [`unchecked: ${toModelError(err).kind}`] };
        }),
      runChoices(runs, method, story, input.chapterNumber, prose, call).then(
        (value): ChapterParts & { illustration?: IllustrationProposal; repair?: false } => ({
          ...partsOf(value),
          ...(value.illustration === undefined ? {} : { illustration: value.illustration }),
        }),
        async (err: unknown): Promise<ChapterParts & { repair: true }> => {
          if (call.signal?.aborted) throw err;
          // Every strategy failed: keep the chapter with what can be had, repair it later.
          const choices = await runChoicesOnly(runs, method, story, input.chapterNumber, prose, call).catch(
            (): { label: string; direction: string }[] => [],
          );
          return {
            chapterTitle: fallbackTitle(prose, story.title),
            summary: "",
            choices,
            bibleUpdates: { characters: [], facts: [] },
            repair: true,
          };
        },
      ),
    ]);
    run.record.checks = {
      ...run.record.checks,
      finishedInFormat: true,
      continuityOk: continuity.ok,
      issues: continuity.issues,
    };
    run.finish();

    const illustrations = [...prepared.illustrations];
    if ("illustration" in parts && parts.illustration !== undefined) illustrations.push(parts.illustration);
    yield { type: "choices", choices: parts.choices };
    const result: ChapterResult = {
      chapterTitle: parts.chapterTitle,
      text: prose,
      summary: parts.summary,
      choices: parts.choices,
      bibleUpdates: parts.bibleUpdates,
      continuity,
      illustrations: illustrations.map((i) => ({ scene: i.scene, characters: i.characters })),
      runs: runs.map((r) => r.record),
    };
    if (prepared.planStory) result.story = prepared.planStory;
    if (parts.arc) result.arc = parts.arc;
    if ("state" in parts && parts.state !== undefined) result.state = parts.state;
    if ("repair" in parts && parts.repair === true) result.needsRepair = true;
    yield { type: "done", result };
  }

  return {
    async *write(input, writeOptions: WriteOptions = {}) {
      const call: CallOptions = { signal: writeOptions.signal, onWait: writeOptions.onWait };
      const given = writeOptions.plan instanceof PreparedPlan ? writeOptions.plan.prepared : undefined;
      const ours = given !== undefined && !given.used && given.input.task === input.task;
      const runs: Run[] = ours ? given.runs : [];
      try {
        let prepared: Prepared;
        if (ours) {
          given.used = true;
          // The pre-prose steps ran ahead of the choice: show what they did, then write.
          for (const event of given.events) yield event;
          prepared = given;
        } else {
          prepared = yield* prepare(input, runs, call);
        }
        for await (const event of finish(prepared, call)) yield event;
      } catch (err) {
        const error = toModelError(err, call.signal);
        for (const run of runs) run.fail(error);
        yield { type: "failed", error, runs: runs.map((r) => r.record) };
      }
    },

    async plan(input, signal) {
      const runs: Run[] = [];
      const call: CallOptions = { signal };
      try {
        const steps = prepare(input, runs, call);
        let next = await steps.next();
        while (next.done !== true) next = await steps.next();
        return { ok: true, plan: new PreparedPlan(next.value) } satisfies PlanOutcome;
      } catch (err) {
        const error = toModelError(err, signal);
        for (const run of runs) run.fail(error);
        return { ok: false, error, runs: runs.map((r) => r.record) } satisfies PlanOutcome;
      }
    },

    async repairParts({ story, chapterNumber, text, method }, signal) {
      const runs: Run[] = [];
      const value = await runChoices(runs, method, story, chapterNumber, text, { signal });
      return { parts: partsOf(value), runs: runs.map((r) => r.record) };
    },

    async describeScene(input, signal) {
      const route = model.route("illustrate");
      const prompt = illustratePrompt(route.fineTuned);
      // One direct answer, like a summary: CoT's format.
      const run = new Run("illustrate", "cot", route, prompt.version, []);
      run.push({ role: "system", content: prompt.content });
      run.push({ role: "user", content: illustrateUserMessage(input) });
      try {
        const result = await complete(
          run,
          request(run.messages, "illustrate", { maxTokens: MAX_TOKENS.describe }, { signal }),
        );
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

    async *talk(input: TalkInput, signal?: AbortSignal): AsyncGenerator<TalkEvent> {
      const route = model.route("talk");
      const prompt = talkPrompt(route.fineTuned);
      // One direct answer: CoT's format, like a summary.
      const run = new Run("talk", "cot", route, prompt.version, []);
      const query = `${input.character.name} ${input.message}`;
      const { sections } = buildMemory(input.story, { recentChapters, query });
      // What the character may know: the canon and the story so far, never the hidden arc.
      const memory = [
        ["Story bible", sections.bible],
        ["Story so far", sections.summary],
        ["Chapters since the summary", sections.outline],
        ["Earlier passages recalled", sections.recalled],
        ["Latest chapters, verbatim", sections.recent],
      ]
        .filter(([, body]) => (body ?? "").trim() !== "")
        .map(([heading, body]) => `## ${heading}\n${body}`)
        .join("\n\n");
      run.push({ role: "system", content: prompt.content });
      run.push({ role: "user", content: talkUserMessage(input, memory) });
      let reply = "";
      try {
        let done: ChatResult | undefined;
        const req = request(run.messages, "talk", { maxTokens: MAX_TOKENS.talk }, { signal });
        for await (const event of model.stream(req)) {
          if (event.type !== "text") {
            done = event;
            continue;
          }
          // A reply is short: what goes past the cap is neither shown nor kept.
          const room = TALK_REPLY_MAX_CHARS - reply.length;
          const delta = event.delta.slice(0, Math.max(0, room));
          if (delta === "") continue;
          reply += delta;
          yield { type: "text", delta };
        }
        if (done === undefined) throw new ModelError("cut", "the stream ended without a finish");
        run.addUsage(done.usage);
        if (reply === "" && (done.message.content ?? "") !== "") {
          reply = (done.message.content ?? "").slice(0, TALK_REPLY_MAX_CHARS);
          yield { type: "text", delta: reply };
        }
        if (reply.trim() === "") throw new ModelError("bad_output", "the model wrote an empty reply");
        run.push({ role: "assistant", content: reply });
        run.record.checks = { finishedInFormat: true };
        run.finish();
        yield { type: "done", reply: reply.trim(), run: run.record };
      } catch (err) {
        const error = toModelError(err, signal);
        run.fail(error);
        yield { type: "failed", error, run: run.record };
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
        const result = await complete(
          run,
          request(run.messages, "summarize", { maxTokens: MAX_TOKENS.summarize }, { signal }),
        );
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

/** Characters of a continuation held back to find a repeat of the text before it. */
const SEAM_WINDOW = 120;
/** A shorter match is a coincidence, not a repeat. */
const SEAM_MIN_OVERLAP = 12;

/**
 * Joins a continuation to the text it continues: drops the part of its start that repeats
 * the end of that text (models often restart the sentence they were cut in), and stray
 * spaces at the seam.
 */
export class Seam {
  #held = "";
  #open = true;

  constructor(private readonly before: string) {}

  /** The part of `delta` to show now ("" while the start is still held). */
  push(delta: string): string {
    if (!this.#open) return delta;
    this.#held += delta;
    return this.#held.length >= SEAM_WINDOW ? this.flush() : "";
  }

  /** Everything held, without the repeat. */
  flush(): string {
    if (!this.#open) return "";
    this.#open = false;
    const held = this.#held;
    this.#held = "";
    const start = held.replace(/^\s+/, "");
    const overlap = repeatedStart(this.before, start);
    const rest = start.slice(overlap);
    if (overlap > 0) return /\s$/.test(this.before) ? rest.replace(/^[ \t]+/, "") : rest;
    // No repeat: keep the model's own whitespace, but never doubled at the seam.
    return /\s$/.test(this.before) ? held.replace(/^[ \t]+/, "") : held;
  }
}

/** Length of the longest start of `next` that the end of `before` already shows. */
function repeatedStart(before: string, next: string): number {
  const tail = before.trimEnd();
  // Starting over from the very beginning is a repeat however short the text was.
  if (tail.length > 0 && next.startsWith(tail)) return tail.length;
  for (let k = Math.min(tail.length, next.length); k >= SEAM_MIN_OVERLAP; k--) {
    if (tail.endsWith(next.slice(0, k))) return k;
  }
  return 0;
}
