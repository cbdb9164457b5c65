/**
 * Types of the fake OpenAI-compatible server (tests/fakes/fake-openai-server.ts).
 * A `Responder` decides what the server answers to each request; tests script
 * it per test. The server speaks real HTTP and SSE, so the real `openai` SDK runs.
 */

/** A request as the server received it. */
export interface FakeRequest {
  method: string;
  /** Path without the `/v1` prefix, e.g. "/chat/completions". */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /**
   * Parsed JSON body (chat completion params for /chat/completions); for multipart bodies
   * (/images/edits) the text fields plus `images: FakeUploadedFile[]`.
   */
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON
  body: any;
}

interface Timing {
  /** Wait this long before sending the response headers (counted as model latency). */
  delayMs?: number;
}

/** What the fake answers. For a streaming request text is sent as SSE chunks. */
export type FakeReply = Timing &
  (
    | {
        kind: "text";
        text: string;
        /** Characters per SSE chunk (default 12). */
        chunkSize?: number;
        /** Pause between chunks, counted as model latency (default 0). */
        chunkDelayMs?: number;
      }
    | {
        kind: "tool_calls";
        calls: { name: string; arguments: string | Record<string, unknown> }[];
        /** Optional assistant content sent with the calls (a ReAct "thought"). */
        content?: string;
      }
    /** Content that is this value serialized as JSON (for response_format json_schema). */
    | { kind: "json"; value: unknown }
    /**
     * The model answers the structured output `name` with `value`, rendered the way the
     * request asked for it: a tool call `name(value)` when the request forces that tool
     * (a named `tool_choice`, or `"required"` with a tool of that name); JSON content when
     * it sets `response_format` json_schema; otherwise JSON in plain text (the json_text
     * strategy), which the "ollama" profile wraps in a fenced block after a sentence.
     */
    | { kind: "structured"; name: string; value: unknown }
    /** An HTTP error, e.g. 429 with headers {"retry-after": "0"} or 500. */
    | { kind: "error"; status: number; message?: string; headers?: Record<string, string> }
    /** Stream `text` (in chunks), then destroy the socket without a finish chunk or [DONE]. */
    | { kind: "cut"; text: string; chunkSize?: number }
    /** Accept the request and never answer (timeouts). */
    | { kind: "hang" }
  );

export type Responder = (req: FakeRequest) => FakeReply | Promise<FakeReply>;

/** What the fake answers to `/images/generations` and `/images/edits`. */
export type FakeImageReply = Timing &
  (
    | {
        /** One PNG per requested image, its colours derived from `seed` (default: the prompt). */
        kind: "image";
        seed?: string;
        revisedPrompt?: string;
      }
    /** Like "image", but `data: [{ url }]` pointing at a GET route of the fake that serves the PNG. */
    | { kind: "url"; seed?: string }
    /** An HTTP error; `code`/`type` override the ones derived from the status. */
    | {
        kind: "error";
        status: number;
        message?: string;
        code?: string;
        type?: string;
        headers?: Record<string, string>;
      }
    /** The safety system's refusal: 400, code "moderation_blocked", type "image_generation_user_error". */
    | { kind: "refused"; message?: string }
    /** A 200 with exactly this JSON body (empty `data`, undecodable `b64_json`, ...). */
    | { kind: "raw"; body: unknown }
    /** Accept the request and never answer (timeouts). */
    | { kind: "hang" }
  );

/**
 * Decides the answer to an images request. Its `body` is the JSON for `/images/generations`;
 * for `/images/edits` (multipart) the text fields, all strings, plus `images: FakeUploadedFile[]`.
 */
export type ImageResponder = (req: FakeRequest) => FakeImageReply | Promise<FakeImageReply>;

/** A file part of a multipart request, bytes as received. */
export interface FakeUploadedFile {
  /** The form field: "image" for a single file, "image[]" for each of several (the SDK's encoding). */
  field: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

/**
 * Which real endpoint the fake imitates on `/chat/completions` (PLATFORMS.md, "OpenAI-compatible APIs").
 * - `ideal`: does what every request asks, validates nothing.
 * - `openai` (the default: a fake no more lenient than the real service): like ideal, but
 *   rejects with 400 what OpenAI rejects: a `strict: true` tool or
 *   `json_schema` response format whose schema breaks strict mode (see openai-strict-schema.ts),
 *   a `tool_choice` naming a function absent from `tools`, a `tool_choice` without `tools`.
 * - `ollama`: ignores a forced (`{type:"function",...}`) or `"required"` tool_choice with
 *   probability `dropForcedToolRate` (the answer is then plain, non-JSON text); ignores
 *   `tool_choice: "none"` (the responder sees `"auto"`); honours `json_schema`, unchecked;
 *   wraps json_text answers of `structured` replies in a fenced block after a sentence.
 * - `vllm`: honours a named tool_choice and `json_schema`, unchecked; sends only the first
 *   tool call of a reply (one tool call per turn).
 */
export type FakeProfile = "ideal" | "openai" | "ollama" | "vllm";

/** Options of a profile. */
export interface FakeProfileOptions {
  /**
   * "ollama" only: probability (0..1) that a forced or required tool call is answered with
   * plain text instead (default 1: always). Drawn from the server's seeded generator.
   */
  dropForcedToolRate?: number;
}

/**
 * Faults injected on `POST /chat/completions`, as probabilities (0..1). Each request draws
 * once from a generator seeded with the server's `seed`, so a run is reproducible: with
 * probability `rateLimit` a 429 (`retry-after-ms: 50`); else with `serverError` a 500; else,
 * for a streaming request whose answer is text, with `cut` a random prefix of the text
 * (at least one character, never all of it) and then a dropped connection. Faulted 429/500
 * requests do not consume a queued reply or consult the responder.
 */
export interface FakeFaults {
  cut?: number;
  rateLimit?: number;
  serverError?: number;
}

/** How many faults of each kind were injected. */
export interface FakeFaultCounts {
  cut: number;
  rateLimit: number;
  serverError: number;
}
