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
 * The model favours `"` (JSON strings end after a few characters) and, a little, its
 * end-of-sequence token (free prose ends after some tens of tokens rather than at the
 * chapter's 3,000-token limit). Its byte vocabulary makes a prompt about one token per
 * byte, so the context is 16k tokens (`LOCAL_MODEL_CONTEXT`). Sampling is seeded
 * (`LOCAL_MODEL_SEED`, one thread), so every run gives the same story: unseeded, one run in
 * eight ended a chapter at its first token ("the model wrote an empty chapter").
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsoleProcess, consoleEnv } from "../e2e/console-process.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { TINY_VOCAB, writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;
const CONTEXT = 16_384;
/** One line's wait: a chapter on the tiny model takes a few seconds on one thread. */
const TURN_MS = 45_000;

/** The chapter's text: what stands between its heading and its first choice. */
function chapterText(output: string, n: number): string {
  const start = output.indexOf(`Chapter ${n}`);
  const end = output.indexOf("\n  1. ", start);
  return start === -1 || end === -1 ? "" : output.slice(start + `Chapter ${n}`.length, end);
}

/** The labels of the offered choices, in order. */
function choiceLabels(output: string): string[] {
  return [...output.matchAll(/^ {2}(\d)\. (.*)$/gm)].map((m) => m[2] ?? "");
}

describe("a chapter on the embedded model, in the terminal", { timeout: 120_000 }, () => {
  let dir: string;
  let database: TestDatabase;
  let modelPath: string;
  const running: ConsoleProcess[] = [];

  beforeAll(async () => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-local-e2e-"));
    database = await createTestDatabase(dir, "inkloom");
    modelPath = join(dir, "tiny.gguf");
    writeTinyLlamaGguf(modelPath, {
      contextLength: CONTEXT,
      favour: [TINY_VOCAB.firstByte + 0x22],
      favourLogits: { [TINY_VOCAB.eos]: 0.5 },
    });
  });

  afterAll(async () => {
    for (const p of running.splice(0)) p.kill();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The terminal's environment: LOCAL_MODEL and no endpoint at all. */
  function localEnv(): Record<string, string> {
    const env = consoleEnv("http://unused.invalid/v1", dir, database.url, {
      LOCAL_MODEL: modelPath,
      LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "",
      LOCAL_MODEL_CONTEXT: String(CONTEXT),
      LOCAL_MODEL_THREADS: "1",
      // Seeded: the same answers every run (checked: identical output for seeds 3, 7 and 11).
      LOCAL_MODEL_SEED: "7",
    });
    delete env.OPENAI_BASE_URL;
    delete env.OPENAI_API_KEY;
    delete env.OPENAI_MODEL;
    return env;
  }

  it("/start <scenario> shows chapter 1 and its choices; a choice writes chapter 2", async () => {
    const p = new ConsoleProcess(localEnv());
    running.push(p);
    expect(await p.ready()).toContain("Type /start to begin a story");

    const ch1 = await p.say("/start a lighthouse keeper finds a letter from the future", TURN_MS);
    expect(ch1, p.stderr).toContain("Chapter 1");
    expect(ch1).not.toContain("could not be finished");
    expect(chapterText(ch1, 1).trim()).not.toBe("");
    const first = choiceLabels(ch1);
    expect(first.length).toBeGreaterThanOrEqual(2);
    expect(first.every((label) => label.trim() !== "")).toBe(true);
    expect(ch1).toContain(`Pick 1-${first.length}`);

    const ch2 = await p.say("1", TURN_MS);
    expect(ch2, p.stderr).toContain("Chapter 2");
    expect(ch2).not.toContain("could not be finished");
    expect(chapterText(ch2, 2).trim()).not.toBe("");
    const second = choiceLabels(ch2);
    expect(second.length).toBeGreaterThanOrEqual(2);
    expect(ch2).toContain(`Pick 1-${second.length}`);

    expect(await p.quit()).toBe(0);
    expect(p.stdout).toContain("Your story is saved");
  });
});
