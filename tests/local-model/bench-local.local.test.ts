/**
 * `npm run bench:local` (bench/local.ts) as CI runs it: a spawned process on the real
 * node-llama-cpp from LOCAL_RUNTIME_DIR, measuring the tiny test model it writes itself.
 * What is checked is the harness: one JSON document on stdout, every figure positive and
 * finite, a chapter and its successor written through the engine, and what it says about
 * the model LOCAL_MODEL names (measured when downloaded, "not downloaded" otherwise).
 * The figures themselves are this machine's and are not asserted.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubModelPath } from "../../src/llm/local-models.ts";
import { RUNTIME_INSTALL_COMMAND } from "../../src/llm/local-runtime.ts";
import { writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The bench as `npm run -s bench:local` runs it, with only the given LOCAL_* / BENCH_LOCAL_* settings. */
function runBench(env: Record<string, string>, args: string[] = []): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(base)) {
    if (name.startsWith("LOCAL_") || name.startsWith("BENCH_LOCAL_")) delete base[name];
  }
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench", "local.ts"), ...args], {
    cwd: ROOT,
    env: { ...base, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

const positive = (value: unknown) => {
  expect(typeof value).toBe("number");
  expect(Number.isFinite(value)).toBe(true);
  expect(value as number).toBeGreaterThan(0);
};

// biome-ignore lint/suspicious/noExplicitAny: the bench's JSON, checked field by field
type Json = any;

function expectRaw(raw: Json, promptTokens: number, genTokens: number): void {
  positive(raw.loadMs);
  positive(raw.trainContextSize);
  expect(raw.context.threads).toBe(1);
  expect(raw.context.sequences).toBe(1);
  positive(raw.context.batchSize);
  expect(raw.context.contextSize).toBeGreaterThan(promptTokens + genTokens);
  expect(raw.promptProcessing.tokens).toBe(promptTokens);
  positive(raw.promptProcessing.ms.p50);
  positive(raw.promptProcessing.tokensPerSecond);
  expect(raw.generation.tokens).toBe(genTokens);
  positive(raw.generation.ms.p50);
  positive(raw.generation.tokensPerSecond);
  positive(raw.timeToFirstToken.promptTokens);
  positive(raw.timeToFirstToken.ms.p50);
}

describe("npm run bench:local", { timeout: 180_000 }, () => {
  let dir: string;

  beforeAll(() => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-bench-local-test-"));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("measures the tiny model, a chapter and its successor included, and says the default model is not downloaded", async () => {
    const models = join(dir, "empty-models");
    const run = await runBench({
      LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "",
      LOCAL_MODEL: "default",
      LOCAL_MODEL_DIR: models,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain("[bench:local] chapter 2: done");
    const result = JSON.parse(run.stdout);

    expect(result.benchmark).toBe("local");
    expect(result.settings).toMatchObject({ threads: 1, promptTokens: 512, genTokens: 128, repeats: 3 });
    expect(result.runtime.nodeLlamaCpp).toMatch(/^\d+\.\d+\.\d+/);
    expect(result.runtime.gpu).toBe(false);
    expect(result.machine.cpuModel).not.toBe("");
    positive(result.machine.cores);
    for (const load of [...result.machine.loadAverageStart, ...result.machine.loadAverageEnd]) {
      expect(Number.isFinite(load)).toBe(true);
    }

    const [tiny, local] = result.models;
    expect(tiny).toMatchObject({ name: "tiny", status: "measured" });
    positive(tiny.fileBytes);
    expectRaw(tiny.raw, 512, 128);
    // The time to first token is measured on the prompt the story agent really sent.
    expect(tiny.raw.timeToFirstToken.source).toContain("chapter 2's prose request");

    const chapter = tiny.chapter;
    expect(chapter.ok, JSON.stringify(chapter.failures)).toBe(true);
    expect(chapter.settings).toMatchObject({ threads: 1, sequences: 2, contextSize: 16_384, seed: 7 });
    positive(chapter.loadMs);
    expect(chapter.chapters.map((c: Json) => [c.number, c.action, c.ok])).toEqual([
      [1, "start", true],
      [2, "choose", true],
    ]);
    for (const c of chapter.chapters) {
      positive(c.wallMs);
      positive(c.firstProseMs);
      expect(c.firstProseMs).toBeLessThanOrEqual(c.choicesMs);
      expect(c.choicesMs).toBeLessThanOrEqual(c.wallMs);
      expect(c.modelRequests).toBeGreaterThanOrEqual(3);
      expect(c.requestsByShape.text).toBeGreaterThanOrEqual(1);
      positive(c.promptTokens);
      positive(c.completionTokens);
      positive(c.prose.promptTokens);
      positive(c.prose.completionTokens);
      positive(c.prose.firstTokenMs);
      expect(c.requests).toHaveLength(c.modelRequests);
      for (const request of c.requests) positive(request.ms);
    }

    expect(local).toEqual({
      name: "LOCAL_MODEL",
      spec: "default",
      path: hubModelPath(models, "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf"),
      status: "not downloaded",
    });
  });

  it("measures a Hub model already in LOCAL_MODEL_DIR, with the sizes and thread count asked for", async () => {
    const models = join(dir, "models");
    const path = hubModelPath(models, "someone/tiny-GGUF", "tiny.gguf");
    await mkdir(dirname(path), { recursive: true });
    writeTinyLlamaGguf(path, { contextLength: 4096, seed: 5 });
    const run = await runBench(
      {
        LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "",
        LOCAL_MODEL: "hf:someone/tiny-GGUF/tiny.gguf",
        LOCAL_MODEL_DIR: models,
        BENCH_LOCAL_REPEATS: "1",
      },
      ["--skip-chapter", "--prompt-tokens", "64", "--gen-tokens", "16", "--threads", "1"],
    );
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.settings).toMatchObject({ promptTokens: 64, genTokens: 16, repeats: 1, skipChapter: true });
    const [tiny, local] = result.models;
    expect(tiny.chapter).toEqual({ skipped: true });
    expect(local).toMatchObject({
      name: "LOCAL_MODEL",
      spec: "hf:someone/tiny-GGUF/tiny.gguf",
      path,
      status: "measured",
    });
    expect(local.chapter).toEqual({ skipped: true });
    for (const model of [tiny, local]) {
      expectRaw(model.raw, 64, 16);
      expect(model.raw.promptProcessing.ms.n).toBe(1);
      // No chapter ran: the documented synthetic chapter prompt.
      expect(model.raw.timeToFirstToken).toMatchObject({ promptTokens: 1344 });
      expect(model.raw.timeToFirstToken.source).toContain("synthetic");
    }
  });

  it("without the runtime, exits 1 with the command that installs it", async () => {
    const missing = join(dir, "no-runtime");
    const run = await runBench({ LOCAL_RUNTIME_DIR: missing });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain(`node-llama-cpp is not installed in ${missing}`);
    expect(run.stderr).toContain(RUNTIME_INSTALL_COMMAND(missing));
  });

  it("refuses a generation too short to time, naming the flag", async () => {
    const run = await runBench({ LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "" }, ["--gen-tokens", "1"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("--gen-tokens / BENCH_LOCAL_GEN_TOKENS must be a whole number from 2 to 8192, got 1");
  });

  it("refuses a LOCAL_MODEL that is not a .gguf file", async () => {
    const run = await runBench({ LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "", LOCAL_MODEL: join(dir, "absent.gguf") });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `LOCAL_MODEL must be the path of a .gguf file; ${join(dir, "absent.gguf")} is not one`,
    );
  });

  it("refuses LOCAL_MODEL's own settings before it measures anything", async () => {
    const path = join(dir, "settings.gguf");
    writeTinyLlamaGguf(path);
    const run = await runBench({ LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "", LOCAL_MODEL: path, LOCAL_MODEL_CONTEXT: "12" });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("LOCAL_MODEL_CONTEXT must be a whole number from 512");
    expect(run.stderr).not.toContain("[bench:local] tiny");
  });
});
