/**
 * `ImageClient` on the `openai` SDK, for any OpenAI-compatible images endpoint.
 * Like the chat client (src/llm/openai-client.ts) the SDK's own retries are off: the
 * retry policy is ./retry.ts's and failures are `ModelError`s. Image specifics: a
 * moderation refusal is `refused` and never retried; references go through
 * `images.edit`, and an endpoint without edits is remembered and served by `generate`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI, { APIError, type ClientOptions, toFile } from "openai";
import { Attempt, abortReason, classify, describe, type Failure } from "../llm/openai-client.ts";
import { isRetryableStatus, parseRetryAfter, RETRY_DEFAULTS, retryDelayMs } from "../llm/retry.ts";
import { ModelError } from "../llm/types.ts";
import type { GeneratedImage, ImageClient, ImageRequest } from "./image-client.ts";

type ImagesResponse = OpenAI.Images.ImagesResponse;
type GenerateSize = NonNullable<OpenAI.Images.ImageGenerateParamsNonStreaming["size"]>;
type EditSize = NonNullable<OpenAI.Images.ImageEditParamsNonStreaming["size"]>;

export interface OpenAiImageClientOptions {
  /** The endpoint, e.g. "https://api.openai.com/v1". */
  baseUrl: string;
  apiKey: string;
  /** "gpt-image-1", "dall-e-3", or whatever the endpoint serves. */
  model: string;
  /** Per attempt: time to the whole answer (and, for a `url` answer, to the downloaded image). */
  timeoutMs: number;
  /** Retries after the first attempt, for 429, 5xx, connection errors and timeouts. */
  maxRetries: number;
  /** First backoff step (default 250 ms); tests make it tiny. */
  retryBaseMs?: number;
  /** Longest single wait between attempts, retry-after included (default 8 s). */
  retryCapMs?: number;
  /** Custom fetch handed to the SDK and used to download `url` answers (proxies, tests). */
  fetch?: ClientOptions["fetch"];
}

/** Statuses with which servers that lack `/images/edits` (or edits for this model) answer. */
const EDITS_UNSUPPORTED_STATUSES: ReadonlySet<number> = new Set([400, 404, 405, 501]);
const REFUSAL_CODES: ReadonlySet<string> = new Set(["moderation_blocked", "content_policy_violation"]);
const REFUSAL_TYPES: ReadonlySet<string> = new Set(["image_generation_user_error"]);
const REFUSAL_MESSAGE = /safety system|content[ _-]?policy|moderation/i;

/** Thrown out of the edit attempt so `generate` falls back to a plain generation. */
class EditsUnsupported extends Error {}

/** A non-2xx answer to the download of a `url` image. */
class DownloadHttpError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Headers,
  ) {
    super(`downloading the image failed with HTTP ${status}`);
  }
}

/**
 * Draws illustrations through an OpenAI-compatible images endpoint. Failures surface as
 * `ModelError`; an aborted `req.signal` surfaces as the signal's reason, never retried.
 */
export class OpenAiImageClient implements ImageClient {
  readonly model: string;
  readonly baseUrl: string;
  readonly #options: OpenAiImageClientOptions;
  readonly #sdk: OpenAI;
  /** Goes false, for good, the first time the endpoint turns an edit down as unsupported. */
  #editsSupported = true;

  constructor(options: OpenAiImageClientOptions) {
    this.#options = options;
    this.model = options.model;
    this.baseUrl = options.baseUrl;
    this.#sdk = new OpenAI({
      baseURL: options.baseUrl,
      apiKey: options.apiKey,
      timeout: options.timeoutMs,
      maxRetries: 0,
      ...(options.fetch !== undefined && { fetch: options.fetch }),
    });
  }

  /** False once the endpoint has shown it cannot edit: references are then ignored. */
  get editsSupported(): boolean {
    return this.#editsSupported;
  }

  async generate(req: ImageRequest): Promise<GeneratedImage> {
    const { signal } = req;
    if (signal?.aborted) throw abortReason(signal);
    const started = performance.now();
    const references = req.references ?? [];
    let response: ImagesResponse | undefined;
    let usedReference = false;
    if (references.length > 0 && this.#editsSupported) {
      try {
        response = await this.#edit(req, references);
        usedReference = true;
      } catch (err) {
        if (!(err instanceof EditsUnsupported)) throw err;
        this.#editsSupported = false;
      }
    }
    response ??= await this.#generate(req);

    const bytes = await this.#bytesOf(response.data?.[0], signal);
    const mime = sniffImageMime(bytes);
    if (mime === undefined) {
      throw new ModelError("bad_output", `the endpoint's image is not PNG, JPEG or WebP (${bytes.length} bytes)`);
    }
    return {
      bytes,
      mime,
      model: this.model,
      baseUrl: this.baseUrl,
      usedReference,
      latencyMs: Math.round(performance.now() - started),
    };
  }

  #generate(req: ImageRequest): Promise<ImagesResponse> {
    const params: OpenAI.Images.ImageGenerateParamsNonStreaming = {
      model: this.model,
      prompt: req.prompt,
      size: req.size as GenerateSize,
      n: 1,
      ...(!alwaysBase64(this.model) && { response_format: "b64_json" as const }),
    };
    return this.#withRetries(
      req.signal,
      (signal) => this.#sdk.images.generate(params, { signal, timeout: this.#options.timeoutMs }),
      (err, timedOut) => this.#apiFailure(err, timedOut),
    );
  }

  async #edit(req: ImageRequest, references: Uint8Array[]): Promise<ImagesResponse> {
    const files = await Promise.all(
      references.map((bytes, i) => {
        const mime = sniffImageMime(bytes) ?? "image/png";
        return toFile(bytes, `ref-${i + 1}.${EXTENSIONS[mime] ?? "png"}`, { type: mime });
      }),
    );
    const params: OpenAI.Images.ImageEditParamsNonStreaming = {
      model: this.model,
      prompt: req.prompt,
      size: req.size as EditSize,
      // One file goes as `image`, which every edits endpoint takes (dall-e-2 takes nothing
      // else); several go as `image[]`.
      image: files.length === 1 && files[0] !== undefined ? files[0] : files,
      n: 1,
      ...(!alwaysBase64(this.model) && { response_format: "b64_json" as const }),
    };
    return this.#withRetries(
      req.signal,
      (signal) => this.#sdk.images.edit(params, { signal, timeout: this.#options.timeoutMs }),
      (err, timedOut) => {
        if (err instanceof APIError && err.status !== undefined && !isRefusal(err)) {
          if (EDITS_UNSUPPORTED_STATUSES.has(err.status)) throw new EditsUnsupported(err.message);
        }
        return this.#apiFailure(err, timedOut);
      },
    );
  }

  /** The image's bytes, from `b64_json` or downloaded from `url`. */
  async #bytesOf(image: OpenAI.Images.Image | undefined, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (image?.b64_json !== undefined && image.b64_json !== "") {
      return new Uint8Array(Buffer.from(image.b64_json, "base64"));
    }
    if (image?.url !== undefined && image.url !== "") {
      const url = image.url;
      const fetchImage = this.#options.fetch ?? fetch;
      return this.#withRetries(
        signal,
        async (attemptSignal) => {
          const res = await fetchImage(url, { signal: attemptSignal });
          if (!res.ok) {
            // Releases the connection; the HTTP error below is what the caller needs to know.
            await res.body?.cancel().catch((e: unknown) => e);
            throw new DownloadHttpError(res.status, res.headers);
          }
          return new Uint8Array(await res.arrayBuffer());
        },
        (err, timedOut) => this.#downloadFailure(err, timedOut),
      );
    }
    throw new ModelError("bad_output", "the endpoint answered without an image");
  }

  /**
   * Runs `run` with a fresh per-attempt signal (the caller's plus the timeout) until it
   * succeeds, `failure` says not to retry, or the retries are spent.
   */
  async #withRetries<T>(
    signal: AbortSignal | undefined,
    run: (signal: AbortSignal) => Promise<T>,
    failure: (err: unknown, timedOut: boolean) => Failure,
  ): Promise<T> {
    for (let retry = 0; ; retry++) {
      const attempt = new Attempt(signal, this.#options.timeoutMs);
      let failed: Failure;
      try {
        return await run(attempt.signal);
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        failed = failure(err, attempt.timedOut);
      } finally {
        attempt.dispose();
      }
      if (!failed.retryable || retry >= this.#options.maxRetries) throw failed.error;
      const delay = retryDelayMs(retry, {
        baseMs: this.#options.retryBaseMs ?? RETRY_DEFAULTS.baseMs,
        capMs: this.#options.retryCapMs ?? RETRY_DEFAULTS.capMs,
        retryAfterMs: failed.retryAfterMs,
      });
      try {
        await sleep(delay, undefined, signal ? { signal } : {});
      } catch (sleepError) {
        if (signal?.aborted) throw abortReason(signal);
        throw sleepError;
      }
    }
  }

  #apiFailure(err: unknown, timedOut: boolean): Failure {
    if (err instanceof APIError && isRefusal(err)) {
      return { error: new ModelError("refused", err.message, err.status), retryable: false };
    }
    return classify(err, timedOut, this.#options.timeoutMs);
  }

  #downloadFailure(err: unknown, timedOut: boolean): Failure {
    if (timedOut) {
      return {
        error: new ModelError("timeout", `the image did not download within ${this.#options.timeoutMs} ms`),
        retryable: true,
      };
    }
    if (err instanceof DownloadHttpError) {
      return {
        error: new ModelError(err.status === 429 ? "rate_limited" : "server", err.message, err.status),
        retryable: isRetryableStatus(err.status),
        retryAfterMs: parseRetryAfter(err.headers),
      };
    }
    return {
      error: new ModelError("unreachable", `cannot download the image: ${describe(err)}`),
      retryable: true,
    };
  }
}

/** GPT image models always answer base64 and reject `response_format`. */
function alwaysBase64(model: string): boolean {
  // "openai/gpt-image-1" on routers that prefix the provider.
  const name = model.slice(model.lastIndexOf("/") + 1).toLowerCase();
  return name.startsWith("gpt-image") || name.startsWith("chatgpt-image");
}

/** A 400 that is the endpoint's safety system turning the prompt down. */
function isRefusal(err: APIError): boolean {
  if (err.status !== 400) return false;
  if (typeof err.code === "string" && REFUSAL_CODES.has(err.code)) return true;
  if (typeof err.type === "string" && REFUSAL_TYPES.has(err.type)) return true;
  return REFUSAL_MESSAGE.test(err.message);
}

const EXTENSIONS: Record<string, string> = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp" };

/** image/png, image/jpeg or image/webp from the magic bytes; undefined for anything else. */
export function sniffImageMime(bytes: Uint8Array): string | undefined {
  const starts = (offset: number, magic: readonly number[]) =>
    bytes.length >= offset + magic.length && magic.every((b, i) => bytes[offset + i] === b);
  if (starts(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (starts(0, [0xff, 0xd8, 0xff])) return "image/jpeg";
  // "RIFF", a 4-byte size, "WEBP".
  if (starts(0, [0x52, 0x49, 0x46, 0x46]) && starts(8, [0x57, 0x45, 0x42, 0x50])) return "image/webp";
  return undefined;
}
