/**
 * LoRA adapters on the embedded model (src/llm/local-client.ts `adapterRoutes`), through
 * the real node-llama-cpp from LOCAL_RUNTIME_DIR: a tiny adapter written by
 * tests/helpers/gguf-writer.ts (`writeTinyLoraGguf`) loads on the tiny llama, the task
 * routed to it answers differently from the base model for the same seed and prompt, the
 * other tasks answer exactly as the base model does, and each run reports its route.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { continuityReportSchema, continuityResponseFormat } from "../../src/agent/schemas.ts";
import { adapterRoute, loraAdapterProblem } from "../../src/llm/local-adapters.ts";
import { LocalModelClient } from "../../src/llm/local-client.ts";
import { loadNodeLlamaCpp } from "../../src/llm/local-runtime.ts";
import { type ChatRequest, ModelError, type Task } from "../../src/llm/types.ts";
import { encodeGguf, TINY_VOCAB, tinyLora, writeTinyLlamaGguf, writeTinyLoraGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;

const ask = (task: Task, content = "The lighthouse keeper opens the letter."): ChatRequest => ({
  task,
  messages: [
    { role: "system", content: "You write an interactive story." },
    { role: "user", content },
  ],
  maxTokens: 24,
});

describe("LoRA adapters on the embedded model", () => {
  let dir: string;
  let modelPath: string;
  let adapterPath: string;
  let base: LocalModelClient;
  let adapted: LocalModelClient;

  const options = () => ({
    runtimeDir: RUNTIME_DIR ?? "",
    modelPath,
    sequences: 2,
    threads: 1,
    seed: 5,
  });

  beforeAll(async () => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-lora-"));
    modelPath = join(dir, "tiny.gguf");
    adapterPath = join(dir, "continue-lora.gguf");
    const shape = { contextLength: 4096, favour: [TINY_VOCAB.firstByte + 0x22] };
    writeTinyLlamaGguf(modelPath, shape);
    // Large weights on every attention and feed-forward matrix: the adapted model cannot
    // answer as the base one does.
    writeTinyLoraGguf(adapterPath, shape, {
      targets: ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"],
      scale: 2,
    });
    base = new LocalModelClient(options());
    adapted = new LocalModelClient({ ...options(), adapterRoutes: { continue: adapterRoute(adapterPath) } });
  });

  afterAll(async () => {
    await base?.dispose();
    await adapted?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("is a file the header check and node-llama-cpp both read as a LoRA adapter", async () => {
    expect(loraAdapterProblem(adapterPath, modelPath)).toBeUndefined();
    const info = await (await loadNodeLlamaCpp(RUNTIME_DIR ?? "")).readGgufFileInfo(adapterPath);
    expect(info.metadata).toMatchObject({
      general: { type: "adapter", architecture: "llama" },
      adapter: { type: "lora" },
    });
  });

  it("reports the adapter's route for its task, fine-tuned, and the base model's for the others", () => {
    expect(adapted.route("continue")).toEqual({
      model: `local:${adapterPath}`,
      baseUrl: "local://embedded",
      fineTuned: true,
    });
    expect(adapted.route("open")).toEqual({ model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false });
  });

  it("answers the adapter's task differently from the base model, same seed and prompt; other tasks as the base", async () => {
    const plain = await base.complete(ask("continue"));
    const withAdapter = await adapted.complete(ask("continue"));
    const otherTask = await adapted.complete(ask("open"));
    expect(plain.usage.completionTokens).toBeGreaterThan(0);
    expect(withAdapter.usage.completionTokens).toBeGreaterThan(0);
    expect(withAdapter.message.content).not.toBe(plain.message.content);
    // Seeded on one thread, the base model answers the same prompt the same way.
    expect(otherTask.message.content).toBe(plain.message.content);
    expect(withAdapter.usage.model).toBe(`local:${adapterPath}`);
    expect(otherTask.usage.model).toBe("local:tiny.gguf");
  });

  it("streams on the adapter, and follows a grammar there as on the base model", async () => {
    const deltas: string[] = [];
    for await (const event of adapted.stream(ask("continue"))) if (event.type === "text") deltas.push(event.delta);
    expect(deltas.join("")).not.toBe("");
    const result = await adapted.complete({
      task: "continue",
      messages: [{ role: "user", content: "Check the draft for continuity." }],
      responseFormat: continuityResponseFormat,
      maxTokens: 2000,
    });
    expect(continuityReportSchema.safeParse(JSON.parse(result.message.content ?? "")).success).toBe(true);
  });

  it("serves two stories at once on the adapter while the base model serves another task", async () => {
    const results = await Promise.all([
      adapted.complete(ask("continue", "One.")),
      adapted.complete(ask("continue", "Two.")),
      adapted.complete(ask("summarize", "Three.")),
    ]);
    for (const r of results) expect(r.usage.completionTokens).toBeGreaterThan(0);
  });

  it("fails the adapter's task with a clear error when the adapter does not fit the base model", async () => {
    // Shapes of another model (A and B transposed): llama.cpp refuses it when the context is made.
    const { metadata, tensors } = tinyLora({ contextLength: 4096 }, { rank: 3 });
    for (const t of tensors) t.shape = [t.shape[1] ?? 0, t.shape[0] ?? 0];
    const misfit = join(dir, "misfit.gguf");
    writeFileSync(misfit, encodeGguf(metadata, tensors));
    const client = new LocalModelClient({ ...options(), adapterRoutes: { continue: adapterRoute(misfit) } });
    try {
      const failed = client.complete(ask("continue"));
      await expect(failed).rejects.toBeInstanceOf(ModelError);
      await expect(failed).rejects.toThrow(/LoRA adapter .*misfit\.gguf could not be applied to tiny\.gguf/);
      // The base model still serves the other tasks.
      expect((await client.complete(ask("open"))).usage.completionTokens).toBeGreaterThan(0);
    } finally {
      await client.dispose();
    }
  });
});
