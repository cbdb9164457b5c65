/**
 * `ModelClient` on the `openai` SDK, for any OpenAI-compatible Chat Completions endpoint.
 * The SDK's own retries are off: retries, timeouts and error kinds are decided here
 * (policy in ./retry.ts) so streaming and non-streaming calls behave the same.
 */
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  type ClientOptions,
} from "openai";
import { isRetryableStatus, kindForStatus, parseRetryAfter, RETRY_DEFAULTS, retryDelayMs } from "./retry.ts";
import { strictJsonSchema } from "./strict-schema.ts";
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
} from "./types.ts";

type Params = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
type Chunk = OpenAI.Chat.ChatCompletionChunk;
type SdkUsage = OpenAI.CompletionUsage;

export interface OpenAiModelClientOptions {
  /** Model and endpoint per task (`Config.models`). */
  routes: Record<Task, ModelRoute>;
  apiKey: string;
  /** Per attempt: time to the response, and for streams the longest silence between chunks. */
  timeoutMs: number;
  /** Retries after the first attempt, for 429, 5xx, connection errors and timeouts. */
  maxRetries: number;
  /** US dollars per million tokens, for `Usage.costUsd`. */
  prices: { inputPerMTok: number; outputPerMTok: number };
  /** First backoff step (default 250 ms); tests make it tiny. */
  retryBaseMs?: number;
  /** Longest single wait between attempts, retry-after included (default 8 s). */
  retryCapMs?: number;
  /** Custom fetch handed to the SDK (proxies, tests). */
  fetch?: ClientOptions["fetch"];
}

/**
 * Talks to OpenAI-compatible endpoints. Failures surface as `ModelError`; an aborted
 * `req.signal` surfaces as the signal's reason (an `AbortError` by default), never retried.
 */
export class OpenAiModelClient implements ModelClient {
  readonly #options: OpenAiModelClientOptions;
  readonly #sdks = new Map<string, OpenAI>();

  constructor(options: OpenAiModelClientOptions) {
    this.#options = options;
  }

  /** The configured route for a task. */
  route(task: Task): ModelRoute {
    return this.#options.routes[task];
  }

  /**
   * Streams text deltas, then one `done` with the assembled message and usage. Retries
   * only while nothing has been yielded; a break after that throws `ModelError("cut")`.
   */
  async *stream(req: ChatRequest): AsyncGenerator<ChatStreamEvent, void, undefined> {
    const route = this.route(req.task);
    const sdk = this.#sdkFor(route.baseUrl);
    const started = performance.now();
    for (let retry = 0; ; retry++) {
      const attempt = new Attempt(req.signal, this.#options.timeoutMs);
      let yielded = false;
      try {
        const chunks = await sdk.chat.completions.create(
          { ...toParams(req, route.model), stream: true, stream_options: { include_usage: true } },
          { signal: attempt.signal, timeout: this.#options.timeoutMs },
        );
        const acc = new StreamAccumulator();
        let firstTokenMs: number | undefined;
        for await (const chunk of chunks) {
          const text = acc.add(chunk);
          if (text !== "") {
            firstTokenMs ??= performance.now() - started;
            yielded = true;
            // A slow consumer is not a stalled server: the idle timer waits while we are suspended.
            attempt.disarm();
            yield { type: "text", delta: text };
          }
          attempt.arm();
        }
        // The SDK ends a stream quietly when its request is aborted, so find out why it ended.
        if (req.signal?.aborted) throw abortReason(req.signal);
        if (attempt.timedOut) {
          throw new ModelError("timeout", `no data from the model for ${this.#options.timeoutMs} ms`);
        }
        if (acc.finishReason === undefined) throw new ModelError("cut", "the stream ended before the model finished");
        const message = acc.message();
        attempt.disarm();
        yield {
          type: "done",
          message,
          finishReason: acc.finishReason,
          usage: this.#usage(route, req, message, acc.usage, started, firstTokenMs),
        };
        return;
      } catch (err) {
        await this.#waitOrThrow(err, attempt, retry, req, yielded);
      } finally {
        attempt.dispose();
      }
    }
  }

  /** One non-streaming completion with the same retry policy as `stream`. */
  async complete(req: ChatRequest): Promise<ChatResult> {
    const route = this.route(req.task);
    const sdk = this.#sdkFor(route.baseUrl);
    const started = performance.now();
    for (let retry = 0; ; retry++) {
      const attempt = new Attempt(req.signal, this.#options.timeoutMs);
      try {
        const completion = await sdk.chat.completions.create(toParams(req, route.model), {
          signal: attempt.signal,
          timeout: this.#options.timeoutMs,
        });
        const choice = completion.choices[0];
        if (choice === undefined) throw new ModelError("server", "the endpoint answered without any choice");
        const calls: ToolCall[] = (choice.message.tool_calls ?? [])
          .filter((c) => c.type === "function")
          .map((c) => ({
            id: c.id,
            type: "function",
            function: { name: c.function.name, arguments: c.function.arguments },
          }));
        const message: AssistantMessage = {
          role: "assistant",
          content: choice.message.content ?? null,
          ...(calls.length > 0 && { tool_calls: calls }),
        };
        return {
          message,
          finishReason: choice.finish_reason,
          usage: this.#usage(route, req, message, completion.usage, started, undefined),
        };
      } catch (err) {
        await this.#waitOrThrow(err, attempt, retry, req, false);
      } finally {
        attempt.dispose();
      }
    }
  }

  /** Returns after the backoff when another attempt is allowed; otherwise throws what the caller sees. */
  async #waitOrThrow(err: unknown, attempt: Attempt, retry: number, req: ChatRequest, yielded: boolean): Promise<void> {
    if (req.signal?.aborted) throw abortReason(req.signal);
    const failure = classify(err, attempt.timedOut, this.#options.timeoutMs);
    // The caller may already have shown the text: a silent retry would duplicate or contradict it.
    if (yielded) throw new ModelError("cut", `the stream broke after text was sent (${failure.error.message})`);
    if (!failure.retryable || retry >= this.#options.maxRetries) throw failure.error;
    const delay = retryDelayMs(retry, {
      baseMs: this.#options.retryBaseMs ?? RETRY_DEFAULTS.baseMs,
      capMs: this.#options.retryCapMs ?? RETRY_DEFAULTS.capMs,
      retryAfterMs: failure.retryAfterMs,
    });
    req.onRetry?.(delay, failure.error);
    try {
      await sleep(delay, undefined, req.signal ? { signal: req.signal } : {});
    } catch (sleepError) {
      if (req.signal?.aborted) throw abortReason(req.signal);
      throw sleepError;
    }
  }

  #usage(
    route: ModelRoute,
    req: ChatRequest,
    message: AssistantMessage,
    reported: SdkUsage | null | undefined,
    started: number,
    firstTokenMs: number | undefined,
  ) {
    // Local servers often omit usage; an estimate keeps cost and budget tracking meaningful.
    const promptTokens = reported?.prompt_tokens ?? estimatePromptTokens(req);
    const completionTokens = reported?.completion_tokens ?? estimateCompletionTokens(message);
    const { inputPerMTok, outputPerMTok } = this.#options.prices;
    return {
      model: route.model,
      promptTokens,
      completionTokens,
      costUsd: (promptTokens * inputPerMTok) / 1e6 + (completionTokens * outputPerMTok) / 1e6,
      latencyMs: Math.round(performance.now() - started),
      ...(firstTokenMs !== undefined && { firstTokenMs: Math.round(firstTokenMs) }),
    };
  }

  #sdkFor(baseUrl: string): OpenAI {
    let sdk = this.#sdks.get(baseUrl);
    if (sdk === undefined) {
      sdk = new OpenAI({
        baseURL: baseUrl,
        apiKey: this.#options.apiKey,
        timeout: this.#options.timeoutMs,
        maxRetries: 0,
        ...(this.#options.fetch !== undefined && { fetch: this.#options.fetch }),
      });
      this.#sdks.set(baseUrl, sdk);
    }
    return sdk;
  }
}

function toParams(req: ChatRequest, model: string): Params {
  const tools = req.tools ?? [];
  const choice = req.toolChoice ?? "auto";
  return {
    model,
    messages: req.messages,
    ...(tools.length > 0 && {
      // Strict on every endpoint: OpenAI enforces the schema, the others ignore the flag.
      tools: tools.map((t) => ({
        type: "function" as const,
        function: { ...t.function, parameters: strictJsonSchema(t.function.parameters), strict: true },
      })),
      tool_choice: typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } },
    }),
    ...(req.responseFormat !== undefined && {
      response_format: {
        type: "json_schema",
        json_schema: {
          name: req.responseFormat.name,
          schema: strictJsonSchema(req.responseFormat.schema),
          strict: true,
        },
      },
    }),
    ...(req.maxTokens !== undefined && { max_tokens: req.maxTokens }),
    ...(req.temperature !== undefined && { temperature: req.temperature }),
  };
}

/** Joins streamed deltas into one assistant message, the way OpenAI splits them. */
class StreamAccumulator {
  content = "";
  finishReason: string | undefined;
  usage: SdkUsage | undefined;
  readonly #calls: { id: string; name: string; arguments: string }[] = [];

  /** Takes one chunk; returns its text delta ("" when none). */
  add(chunk: Chunk): string {
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (choice === undefined) return "";
    for (const delta of choice.delta.tool_calls ?? []) {
      let call = this.#calls[delta.index];
      if (call === undefined) {
        call = { id: "", name: "", arguments: "" };
        this.#calls[delta.index] = call;
      }
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.name = delta.function.name;
      if (delta.function?.arguments) call.arguments += delta.function.arguments;
    }
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const text = choice.delta.content ?? "";
    this.content += text;
    return text;
  }

  message(): AssistantMessage {
    const calls: ToolCall[] = this.#calls
      .filter((c) => c !== undefined)
      .map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
    if (calls.length === 0) return { role: "assistant", content: this.content };
    return { role: "assistant", content: this.content === "" ? null : this.content, tool_calls: calls };
  }
}

/**
 * One attempt's abort wiring: the caller's signal plus our own timer, armed for the
 * whole request and, for streams, re-armed after every chunk (an idle timeout).
 * Shared with the image client (src/art/openai-image-client.ts).
 */
export class Attempt {
  readonly #controller = new AbortController();
  readonly #outer: AbortSignal | undefined;
  readonly #timeoutMs: number;
  readonly #forward = () => this.#controller.abort(this.#outer?.reason);
  #timer: NodeJS.Timeout | undefined;
  timedOut = false;

  constructor(outer: AbortSignal | undefined, timeoutMs: number) {
    this.#outer = outer;
    this.#timeoutMs = timeoutMs;
    if (outer?.aborted) this.#forward();
    else outer?.addEventListener("abort", this.#forward, { once: true });
    this.arm();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  arm(): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.#controller.abort();
    }, this.#timeoutMs);
  }

  disarm(): void {
    clearTimeout(this.#timer);
  }

  /** Stops the timer and releases the connection if the attempt was left half-read. */
  dispose(): void {
    this.disarm();
    this.#outer?.removeEventListener("abort", this.#forward);
    this.#controller.abort();
  }
}

/** A failed attempt as the retry loop sees it. */
export interface Failure {
  error: ModelError;
  retryable: boolean;
  retryAfterMs?: number | undefined;
}

/** Maps what an SDK call threw to a `ModelError` and whether another attempt may help. */
export function classify(err: unknown, timedOut: boolean, timeoutMs: number): Failure {
  if (err instanceof ModelError) return { error: err, retryable: err.transient };
  if (timedOut || err instanceof APIConnectionTimeoutError) {
    return { error: new ModelError("timeout", `no answer from the model within ${timeoutMs} ms`), retryable: true };
  }
  if (err instanceof APIUserAbortError) {
    // Only our timer or the caller abort a request, and the caller was checked first.
    return { error: new ModelError("timeout", "the request was aborted"), retryable: true };
  }
  if (err instanceof APIConnectionError) {
    return {
      error: new ModelError("unreachable", `cannot reach the model endpoint: ${describe(err)}`),
      retryable: true,
    };
  }
  if (err instanceof APIError) {
    if (err.status === undefined) {
      // An error event inside an otherwise good stream.
      return { error: new ModelError("server", err.message), retryable: true };
    }
    return {
      error: new ModelError(kindForStatus(err.status), err.message, err.status),
      retryable: isRetryableStatus(err.status),
      retryAfterMs: parseRetryAfter(err.headers),
    };
  }
  if (err instanceof SyntaxError) {
    return { error: new ModelError("server", `the endpoint sent malformed data: ${err.message}`), retryable: true };
  }
  // Anything else was thrown while reading the body: the connection broke mid-answer.
  return { error: new ModelError("cut", `the connection broke mid-answer: ${describe(err)}`), retryable: true };
}

/** Error text with its cause (ECONNREFUSED, "other side closed"), which is where the useful part is. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${describe(err.cause)}` : "";
  const code = (err as { code?: unknown }).code;
  return `${err.message}${typeof code === "string" ? ` (${code})` : ""}${cause}`;
}

/** What a call rejects with when the caller's signal aborted it. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The model call was aborted.", "AbortError");
}

function estimatePromptTokens(req: ChatRequest): number {
  let chars = 0;
  for (const m of req.messages) {
    chars += m.content?.length ?? 0;
    if (m.role === "assistant") for (const c of m.tool_calls ?? []) chars += c.function.arguments.length;
  }
  if (req.tools !== undefined && req.tools.length > 0) chars += JSON.stringify(req.tools).length;
  return Math.ceil(chars / 4);
}

function estimateCompletionTokens(message: AssistantMessage): number {
  let chars = message.content?.length ?? 0;
  for (const c of message.tool_calls ?? []) chars += c.function.name.length + c.function.arguments.length;
  return Math.ceil(chars / 4);
}
