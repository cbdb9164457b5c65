/**
 * A whole story turn on the embedded model, end to end through the terminal: the real
 * `npm start` process (src/app/main.ts) with `LOCAL_MODEL` pointing at a tiny random
 * llama written here (tests/helpers/gguf-writer.ts) and no endpoint, so every task runs
 * on node-llama-cpp from LOCAL_RUNTIME_DIR. `/start <scenario>` plans the story
 * (`plan_story` through a grammar with the schema's string lengths and a language enum,
 * src/llm/strict-schema.ts `grammarJsonSchema`), streams chapter 1, checks it, offers its
 * choices; picking one writes chapter 2. The text is gibberish by design: what is proven
 * is that the agent's flow accepts what a grammar-bound weak model gives it.
 *
 * The model and its knobs (favoured tokens, a 16k context, a seed) are explained in
 * tests/helpers/local-terminal.ts, shared with the LoRA end to end.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { ConsoleProcess } from "../e2e/console-process.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { localRuntimeDir, localTerminalEnv, playTwoChapters, writeChapterModel } from "../helpers/local-terminal.ts";

describe("a chapter on the embedded model, in the terminal", { timeout: 120_000 }, () => {
  let dir: string;
  let database: TestDatabase;
  let modelPath: string;
  const running: ConsoleProcess[] = [];

  beforeAll(async () => {
    localRuntimeDir();
    dir = mkdtempSync(join(tmpdir(), "inkloom-local-e2e-"));
    database = await createTestDatabase(dir, "inkloom");
    modelPath = join(dir, "tiny.gguf");
    writeChapterModel(modelPath);
  });

  afterAll(async () => {
    for (const p of running.splice(0)) p.kill();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("/start <scenario> shows chapter 1 and its choices; a choice writes chapter 2", async () => {
    const p = new ConsoleProcess(localTerminalEnv(dir, database.url, modelPath));
    running.push(p);
    await playTwoChapters(p);
  });
});
