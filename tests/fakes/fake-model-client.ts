/**
 * A `ModelClient` for unit tests, in the manner of vercel/ai's mock model: scripted
 * results (an array consumed one per call, or a function of the request), every request
 * recorded in `calls`, routes configurable per task.
 */
import {
  type AssistantMessage,
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  type ModelClient,
  ModelError,
  type ModelRoute,
  type Task,
  type ToolCall,
  type Usage,
} from "../../src/llm/types.ts";

/** One scripted answer. */
export type FakeResult =
  /** Content text; streamed in `chunks` (or pieces of `chunkSize`, default 8) by `stream`. */
  | { text: string; chunks?: string[]; chunkSize?: number; usage?: Partial<Usage> }
  /** Tool calls; `arguments` objects are serialized, strings are sent as they are (malformed JSON too). */
  | {
      toolCalls: { name: string; arguments: string | Record<string, unknown>; id?: string }[];
      content?: string;
      usage?: Partial<Usage>;
    }
  /** Content that is this value as JSON (response_format). */
  | { json: unknown; usage?: Partial<Usage> }
  /** Throw this error; when streaming, after yielding `afterText` (a stream cut mid-way). */
  | { error: Error; afterText?: string };

export type FakeScript = FakeResult[] | ((request: ChatRequest, index: number) => FakeResult | Promise<FakeResult>);

export interface FakeCall {
  kind: "stream" | "complete";
  request: ChatRequest;
}

export interface FakeModelClientOptions {
  script: FakeScript;
  routes?: Partial<Record<Task, Partial<ModelRoute>>>;
  /** Usage reported for every call (defaults: 100 prompt, 20 completion tokens, $0.001, 5 ms). */
  usage?: Partial<Usage>;
}

export const DEFAULT_ROUTE: ModelRoute = { model: "fake", baseUrl: "http://fake", fineTuned: false };

export class FakeModelClient implements ModelClient {
  readonly calls: FakeCall[] = [];
  private readonly script: FakeScript;
  private readonly routes: Partial<Record<Task, Partial<ModelRoute>>>;
  private readonly usage: Partial<Usage>;
  private toolCallCounter = 0;

  constructor(options: FakeModelClientOptions | FakeScript) {
    const opts = Array.isArray(options) || typeof options === "function" ? { script: options } : options;
    this.script = opts.script;
    this.routes = opts.routes ?? {};
    this.usage = opts.usage ?? {};
  }

  route(task: Task): ModelRoute {
    return { ...DEFAULT_ROUTE, ...this.routes[task] };
  }

  /** Requests of one task, in order. */
  callsFor(task: Task): FakeCall[] {
    return this.calls.filter((c) => c.request.task === task);
  }

  private next(request: ChatRequest): Promise<FakeResult> | FakeResult {
    const index = this.calls.length - 1;
    if (typeof this.script === "function") return this.script(request, index);
    const result = this.script[index];
    if (!result) throw new Error(`FakeModelClient: no scripted result for call ${index} (task ${request.task})`);
    return result;
  }

  private usageFor(task: Task, extra?: Partial<Usage>): Usage {
    return {
      model: this.route(task).model,
      promptTokens: 100,
      completionTokens: 20,
      costUsd: 0.001,
      latencyMs: 5,
      ...this.usage,
      ...extra,
    };
  }

  private toResult(task: Task, result: Exclude<FakeResult, { error: Error }>): ChatResult {
    let message: AssistantMessage;
    if ("toolCalls" in result) {
      const toolCalls: ToolCall[] = result.toolCalls.map((c) => ({
        id: c.id ?? `call_${++this.toolCallCounter}`,
        type: "function",
        function: {
          name: c.name,
          arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
        },
      }));
      message = { role: "assistant", content: result.content ?? null, tool_calls: toolCalls };
      return { message, finishReason: "tool_calls", usage: this.usageFor(task, result.usage) };
    }
    const content = "json" in result ? JSON.stringify(result.json) : result.text;
    message = { role: "assistant", content };
    return { message, finishReason: "stop", usage: this.usageFor(task, result.usage) };
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    this.calls.push({ kind: "complete", request });
    const result = await this.next(request);
    if (request.signal?.aborted) throw new ModelError("cut", "aborted");
    if ("error" in result) throw result.error;
    return this.toResult(request.task, result);
  }

  async *stream(request: ChatRequest): AsyncIterable<ChatStreamEvent> {
    this.calls.push({ kind: "stream", request });
    const result = await this.next(request);
    if ("error" in result) {
      if (result.afterText) yield { type: "text", delta: result.afterText };
      throw result.error;
    }
    if ("text" in result) {
      const size = result.chunkSize ?? 8;
      const chunks =
        result.chunks ?? (result.text.match(new RegExp(`[\\s\\S]{1,${size}}`, "g")) as string[] | null) ?? [];
      for (const delta of chunks) {
        if (request.signal?.aborted) throw new ModelError("cut", "aborted");
        yield { type: "text", delta };
      }
    }
    yield { type: "done", ...this.toResult(request.task, result) };
  }
}
