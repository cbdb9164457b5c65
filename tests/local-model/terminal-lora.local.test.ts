/**
 * FireAct's loop closed on one machine, end to end through the terminal: the real
 * `npm start` process with `LOCAL_MODEL` at the tiny llama and `MODEL_CONTINUE=local:<adapter>`
 * (a path relative to the process's working directory), no endpoint. Chapter 1 (`open`)
 * is written by the base model; the choice's chapter 2 (`continue`) by the base model with
 * the LoRA adapter, on the fine-tuned route's zero-shot prompt, and its AgentRun records
 * that route, as the training export will read it.
 *
 * The adapter is mild (attn_q only, small weights): it changes what the model writes but
 * keeps the knobs that let a random model finish a chapter (tests/helpers/local-terminal.ts).
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROMPT_VERSION } from "../../src/agent/prompts.ts";
import { openDatabase } from "../../src/store/db.ts";
import { ConsoleProcess } from "../e2e/console-process.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { writeTinyLoraGguf } from "../helpers/gguf-writer.ts";
import {
  CHAPTER_MODEL,
  localRuntimeDir,
  localTerminalEnv,
  playTwoChapters,
  writeChapterModel,
} from "../helpers/local-terminal.ts";

/** Where the terminal runs (tests/e2e/console-process.ts): the repository's root. */
const ROOT = join(import.meta.dirname, "..", "..");

describe("a LoRA adapter as the continue route, in the terminal", { timeout: 120_000 }, () => {
  let dir: string;
  let database: TestDatabase;
  let modelPath: string;
  let adapterPath: string;
  const running: ConsoleProcess[] = [];

  beforeAll(async () => {
    localRuntimeDir();
    dir = mkdtempSync(join(tmpdir(), "inkloom-lora-e2e-"));
    database = await createTestDatabase(dir, "inkloom");
    modelPath = join(dir, "tiny.gguf");
    adapterPath = join(dir, "continue-lora.gguf");
    writeChapterModel(modelPath);
    writeTinyLoraGguf(adapterPath, CHAPTER_MODEL, { targets: ["attn_q"], scale: 0.5 });
  });

  afterAll(async () => {
    for (const p of running.splice(0)) p.kill();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("writes chapter 2 with the adapter, and its run records the adapter's route", async () => {
    const p = new ConsoleProcess(
      localTerminalEnv(dir, database.url, modelPath, { MODEL_CONTINUE: `local:${relative(ROOT, adapterPath)}` }),
    );
    running.push(p);
    await playTwoChapters(p);

    const db = await openDatabase(database.url);
    try {
      const chapter2 = await db.chapter.findFirstOrThrow({ where: { number: 2 } });
      const runs = await db.agentRun.findMany({ where: { storyId: chapter2.storyId } });
      expect(chapter2.task).toBe("continue");
      const written = runs.filter((r) => r.task === "continue");
      expect(written.filter((r) => r.chapterId === chapter2.id).length).toBeGreaterThan(0);
      for (const run of written) {
        expect(run).toMatchObject({
          model: `local:${adapterPath}`,
          baseUrl: "local://embedded",
          fineTuned: true,
          promptVersion: `continue.react.ft@${PROMPT_VERSION}`,
        });
      }
      // Chapter 1 and the other tasks ran on the base model, prompted.
      const open = runs.filter((r) => r.task === "open");
      expect(open.length).toBeGreaterThan(0);
      for (const run of open) expect(run).toMatchObject({ model: "local:tiny.gguf", fineTuned: false });
      for (const run of runs.filter((r) => r.task !== "continue")) expect(run.model).toBe("local:tiny.gguf");
    } finally {
      await db.$disconnect();
    }
  });
});
