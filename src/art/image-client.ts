/**
 * The image port: what illustrations need from an OpenAI-compatible images endpoint.
 * Implemented by `OpenAiImageClient` (./openai-image-client.ts) on the `openai` SDK.
 * Failures throw `ModelError` (src/llm/types.ts), with kind "refused" when the
 * endpoint's own moderation refused the prompt.
 */

export interface ImageRequest {
  /** The full prompt (built by the visual bible: scene, each character's appearance, art style). */
  prompt: string;
  /** "1024x1024", "1024x1536", ... as the endpoint accepts. */
  size: string;
  /**
   * Earlier portraits of characters in the scene (PNG/JPEG/WebP bytes). When given and
   * the endpoint supports edits with a reference image, the image is drawn from them
   * (`images.edit`); otherwise they are ignored and the prompt alone is used.
   */
  references?: Uint8Array[];
  signal?: AbortSignal;
}

export interface GeneratedImage {
  bytes: Uint8Array;
  /** image/png, image/jpeg or image/webp (sniffed from the bytes). */
  mime: string;
  /** The model that drew it, and where. */
  model: string;
  baseUrl: string;
  /** True when a reference image was passed (`images.edit`). */
  usedReference: boolean;
  latencyMs: number;
}

export interface ImageClient {
  /** Model name and endpoint, recorded with every illustration. */
  readonly model: string;
  readonly baseUrl: string;
  generate(req: ImageRequest): Promise<GeneratedImage>;
}
