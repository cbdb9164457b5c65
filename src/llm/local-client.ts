/**
 * `ModelClient` on an embedded model: node-llama-cpp, resolved on demand from an npm
 * prefix (./local-runtime.ts), a GGUF file, one model shared by every story through the
 * sequences of one context (docs/local-model.md):
 *
 * - streaming through `LlamaChat.generateResponse` with the model's own chat template
 *   (node-llama-cpp's "auto" chat wrapper);
 * - cancellation: `req.signal` stops the generation and surfaces as the signal's reason,
 *   as with the OpenAI client;
 * - structured output as a JSON-schema grammar: `responseFormat` (the `json_schema`
 *   strategy) and a forced tool call (the `tool` strategy: the tool's parameters become the
 *   grammar and the answer comes back as that tool's call);
 * - tools with an "auto" choice (ReAct): node-llama-cpp's function calling, in the syntax
 *   of the model's chat template; the model may answer in prose instead (no call), which
 *   the agent takes as its plan. "required" among several tools is treated as "auto" for now;
 * - LoRA adapters per task (`adapterRoutes`, from `local:<adapter.gguf>` routes): llama.cpp
 *   applies an adapter to a whole context, so the model is loaded once and each adapter
 *   gets a context of its own, with as many sequences as the base one, created at its first
 *   request; the base context too is created at its first request (or by `load()`).
 */
import { basename } from "node:path";
import { adapterPathOf } from "./local-adapters.ts";
import {
  type LlamaContextLike,
  type LlamaContextSequenceLike,
  type LlamaGrammarLike,
  type LlamaLike,
  type LlamaModelLike,
  LOCAL_BASE_URL,
  loadNodeLlamaCpp,
  type NodeLlamaCpp,
} from "./local-runtime.ts";
import { grammarSchemaFor } from "./strict-schema.ts";
import {
  type AssistantMessage,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  type ModelClient,
  ModelError,
  type ModelRoute,
  type Task,
  type ToolCall,
} from "./types.ts";

export interface LocalModelClientOptions {
  /** npm prefix node-llama-cpp is installed in (not a dependency of Inkloom). */
  runtimeDir: string;
  /** The `.gguf` to load. */
  modelPath: string;
  /** Stories generated at once: sequences of the shared context (default 2). */
  sequences?: number;
  /** CPU threads per evaluation (default 1; llama.cpp's threads spin on a busy machine). */
  threads?: number;
  /** Tokens per sequence (default 4096, at most the model's training context). */
  contextSize?: number;
  /** Default answer length when a request names none (default 1024). */
  maxTokens?: number;
  /**
   * Sampling temperature of a request that names none (default 0.8, llama.cpp's own).
   * node-llama-cpp's default is 0, greedy, where an OpenAI endpoint samples: a greedy weak
   * model repeats itself (every choice the same label), which the agent's checks refuse.
   */
  temperature?: number;
  /** Sampling seed, for reproducible answers (tests); random when unset. */
  seed?: number;
  /**
   * Tasks served by a LoRA adapter on this model: their `local:<absolute path>` routes
   * (src/llm/local-adapters.ts), reported as they are. Other tasks run on the base model.
   */
  adapterRoutes?: Partial<Record<Task, ModelRoute>>;
  /** The already imported runtime (tests), instead of importing it from `runtimeDir`. */
  runtime?: NodeLlamaCpp;
}

/** The runtime and the model, loaded once. */
interface LoadedModel {
  lib: NodeLlamaCpp;
  llama: LlamaLike;
  model: LlamaModelLike;
}

interface Loaded extends LoadedModel {
  /** The base model's context (no adapter). */
  context: LlamaContextLike;
}

/** The sequences of one context: a request takes a free one or waits for one. */
class SequencePool {
  readonly #free: LlamaContextSequenceLike[] = [];
  readonly #waiting: ((sequence: LlamaContextSequenceLike) => void)[] = [];

  constructor(
    readonly context: LlamaContextLike,
    count: number,
  ) {
    for (let i = 0; i < count; i++) this.#free.push(context.getSequence());
  }

  /** A free sequence, waiting for one when every story's is in use. */
  acquire(signal: AbortSignal | undefined): Promise<LlamaContextSequenceLike> {
    const free = this.#free.pop();
    if (free !== undefined) return Promise.resolve(free);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.#waiting.indexOf(take);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(signal?.reason);
      };
      const take = (sequence: LlamaContextSequenceLike) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(sequence);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(take);
    });
  }

  release(sequence: LlamaContextSequenceLike): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next(sequence);
    else this.#free.push(sequence);
  }
}

/** The key of the base model's context among the pools (an adapter's is its path). */
const BASE = "";

/** What node-llama-cpp's `LlamaChat` takes and gives, the slice used here. */
type HistoryItem =
  | { type: "system"; text: string }
  | { type: "user"; text: string }
  | { type: "model"; response: string[] };
interface LlamaChatLike {
  generateResponse(
    history: HistoryItem[],
    options: {
      onTextChunk?: (text: string) => void;
      signal?: AbortSignal;
      stopOnAbortSignal?: boolean;
      maxTokens?: number;
      temperature?: number;
      grammar?: LlamaGrammarLike;
      functions?: FunctionsLike;
      seed?: number;
    },
  ): Promise<{
    response: string;
    functionCalls?: { functionName: string; params: unknown }[];
    metadata: { stopReason: string };
  }>;
  dispose(): void;
}
type LlamaChatClass = new (options: {
  contextSequence: LlamaContextSequenceLike;
  autoDisposeSequence?: boolean;
}) => LlamaChatLike;
type FunctionsLike = Record<string, { description: string; params: Record<string, unknown> }>;
type Structured =
  | { kind: "json"; grammar: LlamaGrammarLike }
  | { kind: "tool"; name: string; grammar: LlamaGrammarLike }
  | { kind: "functions"; functions: FunctionsLike };
interface MeteredSequence extends LlamaContextSequenceLike {
  readonly tokenMeter: { readonly usedInputTokens: number; readonly usedOutputTokens: number };
}

export class LocalModelClient implements ModelClient {
  readonly #options: LocalModelClientOptions;
  #loaded: Promise<LoadedModel> | undefined;
  /** Set by close(): no request loads the model again. */
  #closed = false;
  /** One context per adapter in use, and the base model's: BASE or the adapter's path. */
  readonly #pools = new Map<string, Promise<SequencePool>>();
  readonly #grammars = new Map<string, Promise<LlamaGrammarLike>>();
  readonly #route: ModelRoute;
  readonly #adapterRoutes: Partial<Record<Task, ModelRoute>> = {};

  constructor(options: LocalModelClientOptions) {
    this.#options = options;
    this.#route = { model: `local:${basename(options.modelPath)}`, baseUrl: LOCAL_BASE_URL, fineTuned: false };
    for (const [task, route] of Object.entries(options.adapterRoutes ?? {}) as [Task, ModelRoute][]) {
      if (adapterPathOf(route) === undefined) {
        throw new Error(`the route of ${task} (${route.model}) is not a local: adapter route`);
      }
      this.#adapterRoutes[task] = route;
    }
  }

  /** The task's adapter route, or the base model's. */
  route(task: Task): ModelRoute {
    return this.#adapterRoutes[task] ?? this.#route;
  }

  /** Load the runtime, the model and the base model's context (once; later calls wait for it). */
  async load(): Promise<Loaded> {
    const loaded = await this.#loadModel();
    const pool = await this.#pool(loaded, BASE);
    return { ...loaded, context: pool.context };
  }

  #loadModel(): Promise<LoadedModel> {
    this.#loaded ??= (async () => {
      const lib = this.#options.runtime ?? (await loadNodeLlamaCpp(this.#options.runtimeDir));
      const llama = await lib.getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: "error" });
      const model = await llama.loadModel({ modelPath: this.#options.modelPath });
      return { lib, llama, model };
    })();
    return this.#loaded;
  }

  /**
   * The sequences of the base model's context (`BASE`) or of an adapter's, created at the
   * first request. llama.cpp applies an adapter to a whole context, so each adapter has
   * its own, with the base one's sequences, context size and threads: memory for the
   * KV cache grows with each adapter in use (docs/local-model.md).
   */
  #pool(loaded: LoadedModel, adapter: string): Promise<SequencePool> {
    let pool = this.#pools.get(adapter);
    if (pool === undefined) {
      const sequences = this.#options.sequences ?? 2;
      pool = loaded.model
        .createContext({
          contextSize: Math.min(this.#options.contextSize ?? 4096, loaded.model.trainContextSize),
          sequences,
          threads: this.#options.threads ?? 1,
          ...(adapter === BASE ? {} : { lora: { adapters: [{ filePath: adapter }] } }),
        })
        .then(
          (context) => new SequencePool(context, sequences),
          (error: unknown) => {
            this.#pools.delete(adapter);
            const why = error instanceof Error ? error.message : String(error);
            throw new ModelError(
              "unreachable",
              adapter === BASE
                ? `the local model could not make a context: ${why}`
                : `the LoRA adapter ${adapter} could not be applied to ${basename(this.#options.modelPath)}: ${why} ` +
                    "(was it made for this base model?)",
            );
          },
        );
      this.#pools.set(adapter, pool);
    }
    return pool;
  }

  /** The engine closes: the model, its contexts and the runtime are freed; later requests fail. */
  close(): Promise<void> {
    return this.dispose();
  }

  async dispose(): Promise<void> {
    this.#closed = true;
    if (this.#loaded === undefined) return;
    const loading = this.#loaded;
    this.#loaded = undefined;
    // A model that never loaded has nothing to free.
    const loaded = await loading.catch(() => undefined);
    if (loaded === undefined) return;
    const { llama, model } = loaded;
    const pools = await Promise.allSettled(this.#pools.values());
    for (const p of pools) if (p.status === "fulfilled") await p.value.context.dispose();
    this.#pools.clear();
    await model.dispose();
    await llama.dispose();
  }

  async *stream(req: ChatRequest): AsyncGenerator<ChatStreamEvent, void, undefined> {
    const started = performance.now();
    const route = this.route(req.task);
    const loaded = await this.#loadOrThrow();
    const pool = await this.#pool(loaded, adapterPathOf(route) ?? BASE);
    const structured = await this.#structured(loaded, req);
    const sequence = await pool.acquire(req.signal);
    const LlamaChat = (loaded.lib as unknown as { LlamaChat: LlamaChatClass }).LlamaChat;
    const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    const meter = (sequence as MeteredSequence).tokenMeter;
    const before = { input: meter.usedInputTokens, output: meter.usedOutputTokens };
    // Stops the generation on the caller's signal, and when the consumer stops reading.
    const stop = new AbortController();
    const forward = () => stop.abort(req.signal?.reason);
    if (req.signal?.aborted) forward();
    else req.signal?.addEventListener("abort", forward, { once: true });
    const pending: string[] = [];
    let wake: (() => void) | undefined;
    let firstTokenMs: number | undefined;
    let settled:
      | { ok: true; response: string; stopReason: string; calls: ToolCall[] }
      | { ok: false; error: unknown }
      | undefined;
    const generation = chat
      .generateResponse(toHistory(req.messages), {
        // A forced tool call streams no prose: its arguments are the message's tool call.
        onTextChunk: (text) => {
          if (structured?.kind === "tool") return;
          pending.push(text);
          wake?.();
        },
        signal: stop.signal,
        maxTokens: req.maxTokens ?? this.#options.maxTokens ?? 1024,
        temperature: req.temperature ?? this.#options.temperature ?? DEFAULT_TEMPERATURE,
        ...(structured === undefined
          ? {}
          : structured.kind === "functions"
            ? { functions: structured.functions }
            : { grammar: structured.grammar }),
        ...(this.#options.seed === undefined ? {} : { seed: this.#options.seed }),
      })
      .then(
        (r) => {
          const calls = (r.functionCalls ?? []).map((c) => toolCall(c.functionName, JSON.stringify(c.params ?? {})));
          settled = { ok: true, response: r.response, stopReason: r.metadata.stopReason, calls };
        },
        (error: unknown) => {
          settled = { ok: false, error };
        },
      )
      .finally(() => wake?.());
    try {
      for (;;) {
        const delta = pending.shift();
        if (delta !== undefined) {
          if (delta === "") continue;
          firstTokenMs ??= performance.now() - started;
          yield { type: "text", delta };
          continue;
        }
        if (settled !== undefined) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      const outcome = settled as NonNullable<typeof settled>;
      if (!outcome.ok) {
        if (req.signal?.aborted) throw req.signal.reason ?? outcome.error;
        throw outcome.error instanceof ModelError
          ? outcome.error
          : new ModelError("server", `the local model failed: ${String(outcome.error)}`);
      }
      const message: AssistantMessage =
        structured?.kind === "tool"
          ? {
              role: "assistant",
              content: null,
              tool_calls: [toolCall(structured.name, outcome.response)],
            }
          : outcome.calls.length > 0
            ? { role: "assistant", content: outcome.response, tool_calls: outcome.calls }
            : { role: "assistant", content: outcome.response };
      const finishReason =
        outcome.stopReason === "maxTokens"
          ? "length"
          : structured?.kind === "tool" || outcome.calls.length > 0
            ? "tool_calls"
            : outcome.stopReason === "abort"
              ? "abort"
              : "stop";
      yield {
        type: "done",
        message,
        finishReason,
        usage: {
          model: route.model,
          promptTokens: meter.usedInputTokens - before.input,
          completionTokens: meter.usedOutputTokens - before.output,
          costUsd: 0,
          latencyMs: performance.now() - started,
          ...(firstTokenMs === undefined ? {} : { firstTokenMs }),
        },
      };
    } finally {
      // A consumer that stops reading (or a cancelled chapter) leaves no generation running.
      if (settled === undefined) stop.abort(new Error("the consumer stopped reading"));
      req.signal?.removeEventListener("abort", forward);
      await generation;
      chat.dispose();
      pool.release(sequence);
    }
  }

  async complete(req: ChatRequest): Promise<ChatResult> {
    for await (const event of this.stream(req)) if (event.type === "done") return event;
    throw new ModelError("cut", "the local model ended without an answer");
  }

  async #loadOrThrow(): Promise<LoadedModel> {
    if (this.#closed) throw new ModelError("unreachable", "the embedded model was closed with the engine");
    try {
      return await this.#loadModel();
    } catch (error) {
      this.#loaded = undefined;
      throw new ModelError("unreachable", error instanceof Error ? error.message : String(error));
    }
  }

  /** The grammar for a structured request, or undefined for prose. */
  async #structured(loaded: LoadedModel, req: ChatRequest): Promise<Structured | undefined> {
    const tools = req.tools ?? [];
    if (tools.length > 0) {
      const choice = req.toolChoice ?? "auto";
      const forced =
        typeof choice === "object"
          ? tools.find((t) => t.function.name === choice.name)
          : choice === "required" && tools.length === 1
            ? tools[0]
            : undefined;
      if (forced === undefined) {
        if (typeof choice === "object") {
          throw new ModelError("bad_request", `tool_choice names ${choice.name}, which is not among the tools`);
        }
        // "auto" (and "required" among several, for now): node-llama-cpp's function calling
        // through the chat template; the model may answer in prose instead.
        const functions: FunctionsLike = {};
        for (const t of tools) {
          await this.#grammar(loaded, t.function.parameters); // the schema must be one a grammar can follow
          functions[t.function.name] = {
            description: t.function.description,
            params: grammarSchemaFor(t.function.parameters),
          };
        }
        return { kind: "functions", functions };
      }
      return {
        kind: "tool",
        name: forced.function.name,
        grammar: await this.#grammar(loaded, forced.function.parameters),
      };
    }
    if (req.responseFormat !== undefined) {
      return { kind: "json", grammar: await this.#grammar(loaded, req.responseFormat.schema) };
    }
    return undefined;
  }

  /**
   * The grammar for a schema, from its grammar form when the agent registered one: the
   * strict schema with string lengths and enumerated tags (strict-schema.ts), which a weak
   * model needs to give answers the agent's zod schemas accept.
   */
  #grammar(loaded: LoadedModel, sent: Record<string, unknown>): Promise<LlamaGrammarLike> {
    const schema = grammarSchemaFor(sent);
    const key = JSON.stringify(schema);
    let grammar = this.#grammars.get(key);
    if (grammar === undefined) {
      grammar = loaded.llama.createGrammarForJsonSchema(schema).catch((error: unknown) => {
        this.#grammars.delete(key);
        // "schema" in the message: the strategy book reads it as a rejected structured-output parameter.
        throw new ModelError(
          "bad_request",
          `the local model cannot turn this JSON schema into a grammar: ${String(error)}`,
        );
      });
      this.#grammars.set(key, grammar);
    }
    return grammar;
  }
}

/** Sampling temperature when neither the request nor the options name one (llama.cpp's default). */
const DEFAULT_TEMPERATURE = 0.8;

let callCounter = 0;
function toolCall(name: string, args: string): ToolCall {
  callCounter += 1;
  return { id: `local_call_${callCounter}`, type: "function", function: { name, arguments: args } };
}

/** OpenAI-shaped messages as node-llama-cpp chat history. */
function toHistory(messages: ChatMessage[]): HistoryItem[] {
  const history: HistoryItem[] = [];
  for (const m of messages) {
    switch (m.role) {
      case "system":
        history.push({ type: "system", text: m.content });
        break;
      case "user":
        history.push({ type: "user", text: m.content });
        break;
      case "assistant": {
        const calls = (m.tool_calls ?? []).map((c) => `${c.function.name}(${c.function.arguments})`);
        history.push({ type: "model", response: [[m.content ?? "", ...calls].filter((s) => s !== "").join("\n")] });
        break;
      }
      case "tool":
        // No tool turns in a plain chat template: the result is told to the model as the user.
        history.push({ type: "user", text: `Result of ${m.tool_call_id}:\n${m.content}` });
        break;
    }
  }
  return history;
}
