/**
 * The model port: what the story agent needs from an OpenAI-compatible endpoint.
 * Implemented by `OpenAiModelClient` (src/llm/openai-client.ts) on the `openai`
 * SDK; tests use `tests/fakes/fake-model-client.ts` or the HTTP fake server.
 */

/** Tasks routed to (possibly different) models. */
export const TASKS = [
  "open",
  "continue",
  "rewrite",
  "choices",
  "summarize",
  "check",
  "moderate",
  "illustrate",
  "talk",
] as const;
export type Task = (typeof TASKS)[number];

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** Chat message in the OpenAI Chat Completions shape (also what trajectories store). */
export type ChatMessage =
  | { role: "system"; content: string }
  | { role: "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: ToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

export type AssistantMessage = Extract<ChatMessage, { role: "assistant" }>;

/** A function tool offered to the model; `parameters` is a JSON schema object. */
export interface ToolSpec {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ChatRequest {
  /** Which route (model, endpoint) serves this call. */
  task: Task;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** "required" forces some tool; `{ name }` forces that tool. Default "auto" when tools are given. */
  toolChoice?: "auto" | "required" | { name: string };
  /** Ask for JSON matching this schema through `response_format: json_schema`. */
  responseFormat?: { name: string; schema: Record<string, unknown> };
  maxTokens?: number;
  temperature?: number;
  signal?: AbortSignal;
  /** Called before each backoff wait between attempts (429, 5xx, connection errors). */
  onRetry?: (delayMs: number, error: ModelError) => void;
}

/** Token use, cost and time of one model call. */
export interface Usage {
  model: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  latencyMs: number;
  /** Time from sending the request to the first streamed token (streaming only). */
  firstTokenMs?: number;
}

export interface ChatResult {
  message: AssistantMessage;
  finishReason: string;
  usage: Usage;
}

/** Streamed events: text as it arrives, then exactly one `done`. */
export type ChatStreamEvent = { type: "text"; delta: string } | ({ type: "done" } & ChatResult);

/** Which model and endpoint a task is routed to. */
export interface ModelRoute {
  model: string;
  baseUrl: string;
  /** A fine-tuned route gets the short zero-shot prompt; a prompted one gets exemplars. */
  fineTuned: boolean;
}

export interface ModelClient {
  /** Route used for a task (recorded with every agent run). */
  route(task: Task): ModelRoute;
  /**
   * Stream a chat completion. Yields text deltas as they arrive and ends with one
   * `done` event carrying the assembled message (content and tool calls) and usage.
   * Retries 429/5xx/connection errors before the first token; a stream that breaks
   * after text was yielded throws `ModelError("cut")` (the caller may keep the text and
   * ask for a continuation: the story agent does).
   * Throws `ModelError` for every failure.
   */
  stream(req: ChatRequest): AsyncIterable<ChatStreamEvent>;
  /** Non-streaming completion, same retry policy. Throws `ModelError`. */
  complete(req: ChatRequest): Promise<ChatResult>;
  /**
   * Free what the client holds (an embedded model's memory and threads), when the engine
   * closes; a request after it fails with `ModelError`. Clients holding nothing omit it.
   */
  close?(): Promise<void>;
}

/** Neutral kinds of model failure; the reader-facing text comes from the message catalogue. */
export type ModelErrorKind =
  | "unreachable" // connection refused, DNS, endpoint down
  | "timeout" // no answer within the timeout
  | "rate_limited" // 429 after retries
  | "server" // 5xx after retries
  | "auth" // 401/403
  | "bad_request" // 400/404/422: wrong model name, unsupported parameter
  | "cut" // the stream ended before the model finished
  | "bad_output" // the model's structured output failed validation (after a repair attempt)
  | "refused"; // the endpoint's own moderation refused the request (an image prompt)

export class ModelError extends Error {
  override readonly name = "ModelError";
  constructor(
    readonly kind: ModelErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
  /** Worth trying again later (the reader's retry button). */
  get transient(): boolean {
    return this.kind !== "auth" && this.kind !== "bad_request" && this.kind !== "refused";
  }
}
