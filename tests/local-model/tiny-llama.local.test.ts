/**
 * The embedded runtime (node-llama-cpp, installed on demand into LOCAL_RUNTIME_DIR) on a
 * tiny random-weight llama written by tests/helpers/gguf-writer.ts: it loads, streams,
 * follows a JSON-schema grammar, stops on an abort signal, and serves two sequences of one
 * model at once. The text is gibberish by design; the flow is what is tested. No network:
 * the model is generated here and the prebuilt CPU binary ships in the npm package.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, when the
 * runtime is missing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type LlamaContextLike,
  type LlamaLike,
  type LlamaModelLike,
  loadNodeLlamaCpp,
  type NodeLlamaCpp,
} from "../../src/llm/local-runtime.ts";
import { writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;

describe("node-llama-cpp on a tiny random llama", () => {
  let dir: string;
  let modelPath: string;
  let lib: NodeLlamaCpp;
  let llama: LlamaLike;
  let model: LlamaModelLike;
  let context: LlamaContextLike;

  beforeAll(async () => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-gguf-"));
    modelPath = join(dir, "tiny.gguf");
    writeTinyLlamaGguf(modelPath);
    lib = await loadNodeLlamaCpp(RUNTIME_DIR);
    llama = await lib.getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: "error" });
    model = await llama.loadModel({ modelPath });
    // One thread: llama.cpp's worker threads spin, and on a busy two-core runner more
    // threads made a 20-token generation take seconds instead of milliseconds.
    context = await model.createContext({ contextSize: 512, sequences: 2, threads: 1, batchSize: 128 });
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("reads the written file back as GGUF v3 llama", async () => {
    const info = await lib.readGgufFileInfo(modelPath);
    expect(info.version).toBe(3);
    expect(model.trainContextSize).toBe(1024);
    expect(model.detokenize(model.tokenize("Once upon a time"))).toBe("Once upon a time");
  });

  it("streams text chunk by chunk up to maxTokens", async () => {
    const sequence = context.getSequence();
    const completion = new lib.LlamaCompletion({ contextSequence: sequence });
    const chunks: string[] = [];
    try {
      const { response, metadata } = await completion.generateCompletionWithMeta("Once upon a time", {
        maxTokens: 24,
        seed: 1,
        temperature: 0.8,
        onTextChunk: (text) => chunks.push(text),
      });
      expect(chunks.length).toBeGreaterThan(1);
      expect(chunks.join("")).toBe(response);
      expect(["maxTokens", "eogToken"]).toContain(metadata.stopReason);
    } finally {
      completion.dispose();
      sequence.dispose();
    }
  });

  it("answers JSON that follows a JSON-schema grammar", async () => {
    const schema = {
      type: "object",
      properties: {
        mood: { enum: ["calm", "tense", "eerie"] },
        cliffhanger: { type: "boolean" },
        choices: { type: "array", items: { enum: ["run", "hide", "fight"] }, minItems: 1, maxItems: 3 },
      },
    };
    const grammar = await llama.createGrammarForJsonSchema(schema);
    const sequence = context.getSequence();
    const completion = new lib.LlamaCompletion({ contextSequence: sequence });
    try {
      const { response } = await completion.generateCompletionWithMeta("Plan the next chapter as JSON: ", {
        grammar,
        maxTokens: 200,
        seed: 3,
        temperature: 1,
      });
      const parsed = grammar.parse(response) as { mood: string; cliffhanger: boolean; choices: string[] };
      expect(["calm", "tense", "eerie"]).toContain(parsed.mood);
      expect(typeof parsed.cliffhanger).toBe("boolean");
      expect(parsed.choices.length).toBeGreaterThanOrEqual(1);
      for (const c of parsed.choices) expect(["run", "hide", "fight"]).toContain(c);
    } finally {
      completion.dispose();
      sequence.dispose();
    }
  });

  it("stops generating when its signal is aborted mid-stream", async () => {
    const sequence = context.getSequence();
    const completion = new lib.LlamaCompletion({ contextSequence: sequence });
    const controller = new AbortController();
    let chunks = 0;
    try {
      const { metadata } = await completion.generateCompletionWithMeta("Once upon a time", {
        maxTokens: 400,
        seed: 1,
        signal: controller.signal,
        stopOnAbortSignal: true,
        onTextChunk: () => {
          if (++chunks === 3) controller.abort();
        },
      });
      expect(metadata.stopReason).toBe("abort");
      expect(chunks).toBeLessThan(10);
    } finally {
      completion.dispose();
      sequence.dispose();
    }
  });

  it("serves two stories at once from one model through two context sequences", async () => {
    const a = context.getSequence();
    const b = context.getSequence();
    expect(context.sequencesLeft).toBe(0);
    const ca = new lib.LlamaCompletion({ contextSequence: a });
    const cb = new lib.LlamaCompletion({ contextSequence: b });
    try {
      const [ra, rb] = await Promise.all([
        ca.generateCompletionWithMeta("The dragon", { maxTokens: 16, seed: 1, temperature: 0.8 }),
        cb.generateCompletionWithMeta("The lighthouse keeper", { maxTokens: 16, seed: 2, temperature: 0.8 }),
      ]);
      expect(ra.response.length).toBeGreaterThan(0);
      expect(rb.response.length).toBeGreaterThan(0);
      expect(a.contextTokens.length).toBeGreaterThan(model.tokenize("The dragon").length);
      expect(b.contextTokens.length).toBeGreaterThan(model.tokenize("The lighthouse keeper").length);
    } finally {
      ca.dispose();
      cb.dispose();
      a.dispose();
      b.dispose();
    }
  });
});
