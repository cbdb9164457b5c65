import { crc32, inflateSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OpenAiImageClient, type OpenAiImageClientOptions } from "../../src/art/openai-image-client.ts";
import { ModelError } from "../../src/llm/types.ts";
import { FakeOpenAiServer, fakePng } from "../fakes/fake-openai-server.ts";
import type { FakeUploadedFile } from "../fakes/fake-openai-types.ts";

let server: FakeOpenAiServer;

beforeEach(async () => {
  server = await FakeOpenAiServer.start();
});

afterEach(async () => {
  await server.close();
});

function clientFor(options: Partial<OpenAiImageClientOptions> = {}): OpenAiImageClient {
  return new OpenAiImageClient({
    baseUrl: server.baseUrl,
    apiKey: "sk-test",
    model: "gpt-image-1",
    timeoutMs: 2_000,
    maxRetries: 2,
    retryBaseMs: 1,
    ...options,
  });
}

const PROMPT = "Mira in the flooded archive, lantern raised, watercolour";

async function modelError(promise: Promise<unknown>): Promise<ModelError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  return err as ModelError;
}

/** Checks the PNG structure (signature, chunk CRCs, IHDR, inflatable IDAT) and returns its size. */
function readPng(bytes: Uint8Array): { width: number; height: number } {
  const buf = Buffer.from(bytes);
  expect([...buf.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let pos = 8; pos < buf.length; ) {
    const length = buf.readUInt32BE(pos);
    const typeAndData = buf.subarray(pos + 4, pos + 8 + length);
    expect(buf.readUInt32BE(pos + 8 + length)).toBe(crc32(typeAndData));
    chunks.push({ type: typeAndData.subarray(0, 4).toString("latin1"), data: typeAndData.subarray(4) });
    pos += 12 + length;
  }
  expect(chunks.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
  const ihdr = chunks[0]?.data ?? Buffer.alloc(0);
  expect(ihdr.length).toBe(13);
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  expect([ihdr[8], ihdr[9]]).toEqual([8, 2]); // 8-bit RGB
  const pixels = inflateSync(chunks[1]?.data ?? Buffer.alloc(0));
  expect(pixels.length).toBe(height * (1 + width * 3));
  return { width, height };
}

// Not real pictures, but with the magic bytes the client and the endpoint sniff.
const PNG_REF = Uint8Array.from([...fakePng("portrait of Mira")]);
const JPEG_REF = Uint8Array.from([
  0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0, 1, 0x0d, 0x0a, 0xff, 0xd9,
]);

describe("the fake's PNG", () => {
  it("is a valid 16x16 RGB PNG, equal for equal seeds and different for different ones", () => {
    expect(readPng(fakePng("a"))).toEqual({ width: 16, height: 16 });
    expect(fakePng("a").equals(fakePng("a"))).toBe(true);
    expect(fakePng("a").equals(fakePng("b"))).toBe(false);
  });
});

describe("OpenAiImageClient against the fake OpenAI server", () => {
  it("generates a PNG from the prompt", async () => {
    const client = clientFor();
    const image = await client.generate({ prompt: PROMPT, size: "1024x1024" });

    expect(image.mime).toBe("image/png");
    expect(readPng(image.bytes)).toEqual({ width: 16, height: 16 });
    expect(Buffer.from(image.bytes).equals(fakePng(PROMPT))).toBe(true);
    expect(image).toMatchObject({ model: "gpt-image-1", baseUrl: server.baseUrl, usedReference: false });
    expect(image.latencyMs).toBeGreaterThanOrEqual(0);
    expect(client.model).toBe("gpt-image-1");
    expect(client.baseUrl).toBe(server.baseUrl);

    const [request] = server.imageRequests();
    expect(server.imageRequests()).toHaveLength(1);
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/images/generations");
    expect(request?.headers.authorization).toBe("Bearer sk-test");
    expect(request?.body).toMatchObject({ model: "gpt-image-1", prompt: PROMPT, size: "1024x1024", n: 1 });
  });

  it("draws the same bytes for the same prompt and different bytes for different prompts", async () => {
    const client = clientFor();
    const first = await client.generate({ prompt: PROMPT, size: "1024x1024" });
    const again = await client.generate({ prompt: PROMPT, size: "1024x1024" });
    const other = await client.generate({ prompt: "A lighthouse at dusk", size: "1024x1024" });

    expect(Buffer.from(again.bytes).equals(Buffer.from(first.bytes))).toBe(true);
    expect(Buffer.from(other.bytes).equals(Buffer.from(first.bytes))).toBe(false);
  });

  it("sends references to /images/edits as multipart files with their bytes intact", async () => {
    const client = clientFor();
    const image = await client.generate({ prompt: PROMPT, size: "1024x1536", references: [PNG_REF, JPEG_REF] });

    expect(image.usedReference).toBe(true);
    expect(image.mime).toBe("image/png");
    readPng(image.bytes);

    const requests = server.imageRequests();
    expect(requests.map((r) => r.path)).toEqual(["/images/edits"]);
    const request = requests[0];
    expect(String(request?.headers["content-type"])).toMatch(/^multipart\/form-data; boundary=/);
    expect(request?.body).toMatchObject({ model: "gpt-image-1", prompt: PROMPT, size: "1024x1536", n: "1" });
    const uploads = request?.body.images as FakeUploadedFile[];
    expect(uploads.map((f) => [f.field, f.filename, f.contentType])).toEqual([
      ["image[]", "ref-1.png", "image/png"],
      ["image[]", "ref-2.jpg", "image/jpeg"],
    ]);
    expect(uploads[0]?.bytes.equals(Buffer.from(PNG_REF))).toBe(true);
    expect(uploads[1]?.bytes.equals(Buffer.from(JPEG_REF))).toBe(true);
  });

  it("sends a single reference as one `image` file", async () => {
    const image = await clientFor().generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] });

    expect(image.usedReference).toBe(true);
    const uploads = server.imageRequests()[0]?.body.images as FakeUploadedFile[];
    expect(uploads.map((f) => f.field)).toEqual(["image"]);
    expect(uploads[0]?.bytes.equals(Buffer.from(PNG_REF))).toBe(true);
  });

  it("falls back to generate when edits are unsupported, and does not try edits again", async () => {
    server.imagesEditSupported = false;
    const client = clientFor();

    const first = await client.generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] });
    const second = await client.generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] });

    expect(first.usedReference).toBe(false);
    expect(second.usedReference).toBe(false);
    expect(Buffer.from(first.bytes).equals(fakePng(PROMPT))).toBe(true);
    expect(client.editsSupported).toBe(false);
    // One refused edit, never retried, then only generations.
    expect(server.imageRequests().map((r) => r.path)).toEqual([
      "/images/edits",
      "/images/generations",
      "/images/generations",
    ]);
  });

  it.each([400, 405, 501])("treats %i from /images/edits as edits unsupported", async (status) => {
    server.enqueueImage({ kind: "error", status, message: "edits are not available for this model" });
    const client = clientFor();

    const image = await client.generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] });

    expect(image.usedReference).toBe(false);
    expect(server.imageRequests().map((r) => r.path)).toEqual(["/images/edits", "/images/generations"]);
  });

  it("downloads url answers", async () => {
    server.enqueueImage({ kind: "url" });
    const image = await clientFor().generate({ prompt: PROMPT, size: "1024x1024" });

    expect(image.mime).toBe("image/png");
    expect(Buffer.from(image.bytes).equals(fakePng(PROMPT))).toBe(true);
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /images/generations",
      expect.stringMatching(/^GET \/fake-images\/.+\.png$/),
    ]);
    // The download is not an API call: no key goes with it.
    expect(server.requests[1]?.headers.authorization).toBeUndefined();
  });

  it("retries a 500 and then succeeds", async () => {
    server.enqueueImage({ kind: "error", status: 500 });
    const image = await clientFor().generate({ prompt: PROMPT, size: "1024x1024" });

    expect(image.mime).toBe("image/png");
    expect(server.imageRequests()).toHaveLength(2);
  });

  it("waits as long as a 429's retry-after asks", async () => {
    server.enqueueImage({ kind: "error", status: 429, headers: { "retry-after": "0.3" } });
    const started = performance.now();
    await clientFor({ retryBaseMs: 1 }).generate({ prompt: PROMPT, size: "1024x1024" });

    expect(performance.now() - started).toBeGreaterThanOrEqual(280);
    expect(server.imageRequests()).toHaveLength(2);
  });

  it("gives up with rate_limited when the retries are spent", async () => {
    server.enqueueImage(
      { kind: "error", status: 429, headers: { "retry-after": "0" } },
      { kind: "error", status: 429, headers: { "retry-after": "0" } },
    );
    const err = await modelError(clientFor({ maxRetries: 1 }).generate({ prompt: PROMPT, size: "1024x1024" }));

    expect(err.kind).toBe("rate_limited");
    expect(err.status).toBe(429);
    expect(server.imageRequests()).toHaveLength(2);
  });

  it("reports a moderation refusal as refused, without retrying", async () => {
    server.enqueueImage({ kind: "refused" });
    const err = await modelError(clientFor().generate({ prompt: PROMPT, size: "1024x1024" }));

    expect(err.kind).toBe("refused");
    expect(err.status).toBe(400);
    expect(err.transient).toBe(false);
    expect(err.message).toMatch(/safety system/);
    expect(server.imageRequests()).toHaveLength(1);
  });

  it("recognises a content_policy_violation as a refusal too", async () => {
    server.enqueueImage({
      kind: "error",
      status: 400,
      code: "content_policy_violation",
      message: "This request has been blocked by our content filters.",
    });
    const err = await modelError(clientFor().generate({ prompt: PROMPT, size: "1024x1024" }));

    expect(err.kind).toBe("refused");
    expect(server.imageRequests()).toHaveLength(1);
  });

  it("does not mistake a refused edit for missing edits support", async () => {
    server.enqueueImage({ kind: "refused" });
    const client = clientFor();
    const err = await modelError(client.generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] }));

    expect(err.kind).toBe("refused");
    expect(client.editsSupported).toBe(true);
    expect(server.imageRequests().map((r) => r.path)).toEqual(["/images/edits"]);
  });

  it("times out a hanging endpoint within the timeout", async () => {
    server.setImageResponder(() => ({ kind: "hang" }));
    const started = performance.now();
    const err = await modelError(
      clientFor({ timeoutMs: 300, maxRetries: 0 }).generate({ prompt: PROMPT, size: "1024x1024" }),
    );

    expect(err.kind).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(server.imageRequests()).toHaveLength(1);
  });

  it("retries a timeout as many times as allowed", async () => {
    server.enqueueImage({ kind: "hang" });
    const image = await clientFor({ timeoutMs: 300, maxRetries: 1 }).generate({ prompt: PROMPT, size: "1024x1024" });

    expect(image.mime).toBe("image/png");
    expect(server.imageRequests()).toHaveLength(2);
  });

  it("rejects at once, without a request, when the signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await clientFor()
      .generate({ prompt: PROMPT, size: "1024x1024", signal: controller.signal })
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    expect(err).not.toBeInstanceOf(ModelError);
    expect((err as Error).name).toBe("AbortError");
    expect(server.imageRequests()).toHaveLength(0);
  });

  it("stops when the caller aborts mid-request, without retrying", async () => {
    server.setImageResponder(() => ({ kind: "hang" }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("reader left")), 100);
    const err = await clientFor({ timeoutMs: 5_000, maxRetries: 3 })
      .generate({ prompt: PROMPT, size: "1024x1024", signal: controller.signal })
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    expect((err as Error).message).toBe("reader left");
    expect(server.imageRequests()).toHaveLength(1);
  });

  it("omits response_format for GPT image models and asks for b64_json from the others", async () => {
    await clientFor({ model: "gpt-image-1" }).generate({ prompt: PROMPT, size: "1024x1024" });
    await clientFor({ model: "dall-e-3" }).generate({ prompt: PROMPT, size: "1024x1024" });
    await clientFor({ model: "dall-e-2" }).generate({ prompt: PROMPT, size: "512x512", references: [PNG_REF] });
    await clientFor({ model: "gpt-image-1" }).generate({ prompt: PROMPT, size: "1024x1024", references: [PNG_REF] });

    const bodies = server.imageRequests().map((r) => r.body as Record<string, unknown>);
    expect(bodies[0]).not.toHaveProperty("response_format");
    expect(bodies[1]).toMatchObject({ model: "dall-e-3", response_format: "b64_json" });
    expect(bodies[2]).toMatchObject({ model: "dall-e-2", response_format: "b64_json" });
    expect(bodies[3]).not.toHaveProperty("response_format");
  });

  it("rejects an answer without an image, or with bytes that are no image, as bad_output", async () => {
    server.enqueueImage(
      { kind: "raw", body: { created: 0, data: [] } },
      { kind: "raw", body: { created: 0, data: [{ b64_json: Buffer.from("not an image").toString("base64") }] } },
    );
    const client = clientFor();

    expect((await modelError(client.generate({ prompt: PROMPT, size: "1024x1024" }))).kind).toBe("bad_output");
    expect((await modelError(client.generate({ prompt: PROMPT, size: "1024x1024" }))).kind).toBe("bad_output");
    expect(server.imageRequests()).toHaveLength(2);
  });

  it("maps 401 to auth, without retrying", async () => {
    server.enqueueImage({ kind: "error", status: 401 });
    const err = await modelError(clientFor().generate({ prompt: PROMPT, size: "1024x1024" }));

    expect(err.kind).toBe("auth");
    expect(server.imageRequests()).toHaveLength(1);
  });

  it("reports a closed port as unreachable", async () => {
    const baseUrl = server.baseUrl;
    await server.close();
    const err = await modelError(clientFor({ baseUrl, maxRetries: 1 }).generate({ prompt: PROMPT, size: "1024x1024" }));

    expect(err.kind).toBe("unreachable");
    server = await FakeOpenAiServer.start();
  });

  it("counts scripted image delays as injected latency", async () => {
    server.enqueueImage({ kind: "image", delayMs: 50 });
    await clientFor().generate({ prompt: PROMPT, size: "1024x1024" });

    expect(server.injectedLatencyMs).toBe(50);
  });
});
