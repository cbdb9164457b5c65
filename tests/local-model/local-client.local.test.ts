/**
 * `LocalModelClient` (src/llm/local-client.ts) through the `ModelClient` port on a tiny
 * random llama (tests/helpers/gguf-writer.ts) and the real node-llama-cpp from
 * LOCAL_RUNTIME_DIR: streaming, grammar-constrained JSON that validates against an agent
 * schema, a forced tool call, cancellation mid-stream, two stories at once on one model.
 * The model favours `"` so grammar-constrained strings end within tens of tokens.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  continuityReportSchema,
  continuityResponseFormat,
  offerChoicesTool,
  REACT_TOOLS,
} from "../../src/agent/schemas.ts";
import { LocalModelClient } from "../../src/llm/local-client.ts";
import { type ChatRequest, ModelError } from "../../src/llm/types.ts";
import { TINY_VOCAB, writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;

const prose = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  task: "continue",
  messages: [
    { role: "system", content: "You write an interactive story." },
    { role: "user", content },
  ],
  maxTokens: 32,
  ...extra,
});

describe("LocalModelClient on a tiny random llama", () => {
  let dir: string;
  let client: LocalModelClient;

  beforeAll(async () => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-local-"));
    const modelPath = join(dir, "tiny.gguf");
    writeTinyLlamaGguf(modelPath, { contextLength: 4096, favour: [TINY_VOCAB.firstByte + 0x22] });
    // Greedy (the client samples at 0.8 by default): the model then writes `"` for ever,
    // which the streaming and cancellation tests need; grammars still end their strings.
    client = new LocalModelClient({
      runtimeDir: RUNTIME_DIR,
      modelPath,
      sequences: 2,
      threads: 1,
      seed: 4,
      temperature: 0,
    });
    await client.load();
  });

  afterAll(async () => {
    await client?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("names an embedded route", () => {
    expect(client.route("continue")).toEqual({
      model: "local:tiny.gguf",
      baseUrl: "local://embedded",
      fineTuned: false,
    });
  });

  it("streams text deltas, then one done with the assembled message and usage", async () => {
    const deltas: string[] = [];
    let done: Extract<Awaited<ReturnType<typeof client.complete>>, object> | undefined;
    for await (const event of client.stream(prose("Begin the story."))) {
      if (event.type === "text") deltas.push(event.delta);
      else done = event;
    }
    expect(deltas.length).toBeGreaterThan(1);
    expect(done?.message.content).toBe(deltas.join(""));
    expect(["length", "stop"]).toContain(done?.finishReason);
    expect(done?.usage.completionTokens).toBeGreaterThan(0);
    expect(done?.usage.promptTokens).toBeGreaterThan(0);
    expect(done?.usage.firstTokenMs).toBeGreaterThanOrEqual(0);
  });

  it("answers json_schema requests with JSON that validates against the agent's schema", async () => {
    const result = await client.complete({
      task: "check",
      messages: [{ role: "user", content: "Check the draft for continuity." }],
      responseFormat: continuityResponseFormat,
      maxTokens: 2000,
    });
    expect(result.finishReason).toBe("stop");
    const parsed = continuityReportSchema.safeParse(JSON.parse(result.message.content ?? ""));
    expect(parsed.success).toBe(true);
  });

  it("answers a forced tool call with that tool's arguments, as JSON in the tool's schema", async () => {
    const result = await client.complete({
      task: "choices",
      messages: [{ role: "user", content: "Offer the choices." }],
      tools: [offerChoicesTool],
      toolChoice: { name: offerChoicesTool.function.name },
      maxTokens: 2000,
    });
    expect(result.finishReason).toBe("tool_calls");
    expect(result.message.content).toBeNull();
    const call = result.message.tool_calls?.[0];
    expect(call?.function.name).toBe("offer_choices");
    // The grammar guarantees the JSON schema sent (the strict one, without the zod
    // schema's string lengths): 2-4 choices, each a label and a direction.
    const args = JSON.parse(call?.function.arguments ?? "") as { choices: { label: string; direction: string }[] };
    expect(args.choices.length).toBeGreaterThanOrEqual(2);
    expect(args.choices.length).toBeLessThanOrEqual(4);
    for (const c of args.choices) {
      expect(typeof c.label).toBe("string");
      expect(typeof c.direction).toBe("string");
    }
  });

  it("offers tools with an auto choice through function calling: prose or well-formed calls (ReAct)", async () => {
    const result = await client.complete({
      ...prose("Gather what you need.", { maxTokens: 64 }),
      tools: REACT_TOOLS,
      toolChoice: "auto",
    });
    const names = REACT_TOOLS.map((t) => t.function.name);
    for (const call of result.message.tool_calls ?? []) {
      expect(names).toContain(call.function.name);
      expect(() => JSON.parse(call.function.arguments)).not.toThrow();
    }
    if ((result.message.tool_calls ?? []).length === 0) expect(typeof result.message.content).toBe("string");
  });

  it("rejects a forced tool that is not among the tools as a bad request", async () => {
    const request = client.complete({ ...prose("Go on."), tools: [offerChoicesTool], toolChoice: { name: "nope" } });
    await expect(request).rejects.toBeInstanceOf(ModelError);
    await expect(request).rejects.toMatchObject({ kind: "bad_request" });
  });

  it("stops generating when a chapter is cancelled mid-stream, and frees its sequence", async () => {
    const controller = new AbortController();
    const reason = new Error("chapter cancelled");
    let deltas = 0;
    const read = async () => {
      for await (const event of client.stream(
        prose("A long chapter.", { maxTokens: 2000, signal: controller.signal }),
      )) {
        if (event.type === "text" && ++deltas === 3) controller.abort(reason);
      }
    };
    await expect(read()).rejects.toBe(reason);
    expect(deltas).toBeLessThan(10);
    // Both sequences are free again: two stories still run at once.
    const both = await Promise.all([client.complete(prose("One.")), client.complete(prose("Two."))]);
    expect(both.map((r) => r.usage.completionTokens > 0)).toEqual([true, true]);
  });

  it("runs two stories at once on one model, and a third waits for a free sequence", async () => {
    const started = [
      client.complete(prose("The dragon.")),
      client.complete(prose("The lighthouse.")),
      client.complete(prose("The heist.")),
    ];
    const results = await Promise.all(started);
    for (const r of results) expect(r.usage.completionTokens).toBeGreaterThan(0);
  });

  it("stops the generation when the reader of a stream goes away", async () => {
    for await (const event of client.stream(prose("Going away.", { maxTokens: 2000 }))) {
      if (event.type === "text") break;
    }
    const after = await client.complete(prose("Still here."));
    expect(after.usage.completionTokens).toBeGreaterThan(0);
  });
});
