/**
 * What the end-to-end tests on the embedded model share (tests/local-model/terminal-*.local.test.ts,
 * telegram-chapter.local.test.ts and discord-chapter.local.test.ts): the tiny llama they play on, tuned so a weak random
 * model finishes a chapter, the LOCAL_MODEL settings that go with it, and the terminal's
 * environment with them and no endpoint at all.
 *
 * The model favours `"` (JSON strings end after a few characters) and, a little, its
 * end-of-sequence token (free prose ends after some tens of tokens rather than at the
 * chapter's 3,000-token limit). Its byte vocabulary makes a prompt about one token per
 * byte, so the context is 16k tokens (`LOCAL_MODEL_CONTEXT`). Sampling is seeded
 * (`LOCAL_MODEL_SEED`, one thread), so every run gives the same story: unseeded, one run in
 * eight ended a chapter at its first token ("the model wrote an empty chapter").
 */
import { expect } from "vitest";
import { type ConsoleProcess, consoleEnv } from "../e2e/console-process.ts";
import { TINY_VOCAB, type TinyLlamaOptions, writeTinyLlamaGguf } from "./gguf-writer.ts";

/** Tokens per story: a chapter's ReAct prompt after a 3,000-token chapter, one token per byte. */
export const CHAPTER_CONTEXT = 16_384;

/** One line's wait: a chapter on the tiny model takes a few seconds on one thread. */
export const TURN_MS = 45_000;

/** The tiny llama's shape for a whole chapter (an adapter for it takes the same options). */
export const CHAPTER_MODEL: Partial<TinyLlamaOptions> = {
  contextLength: CHAPTER_CONTEXT,
  favour: [TINY_VOCAB.firstByte + 0x22],
  favourLogits: { [TINY_VOCAB.eos]: 0.5 },
};

/** Write the chapter model to `path`. */
export function writeChapterModel(path: string): void {
  writeTinyLlamaGguf(path, CHAPTER_MODEL);
}

/** The runtime prefix, or a failure saying what to set (these tests never skip). */
export function localRuntimeDir(): string {
  const dir = process.env.LOCAL_RUNTIME_DIR;
  if (!dir) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
  return dir;
}

/** LOCAL_MODEL at `modelPath` (the chapter model) with the settings a chapter on it needs, on one thread. */
export function localModelEnv(modelPath: string): Record<string, string> {
  return {
    LOCAL_MODEL: modelPath,
    LOCAL_RUNTIME_DIR: localRuntimeDir(),
    LOCAL_MODEL_CONTEXT: String(CHAPTER_CONTEXT),
    LOCAL_MODEL_THREADS: "1",
    // Seeded: the same answers every run (checked: identical output for seeds 3, 7 and 11).
    LOCAL_MODEL_SEED: "7",
  };
}

/** The terminal's environment: LOCAL_MODEL at `modelPath`, no OPENAI_* at all, plus `extra`. */
export function localTerminalEnv(
  dir: string,
  databaseUrl: string,
  modelPath: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env = consoleEnv("http://unused.invalid/v1", dir, databaseUrl, { ...localModelEnv(modelPath), ...extra });
  delete env.OPENAI_BASE_URL;
  delete env.OPENAI_API_KEY;
  delete env.OPENAI_MODEL;
  return env;
}

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

/**
 * A reader's first turn, in a started terminal `p`: `/start <scenario>` shows chapter 1
 * and its choices, `1` writes chapter 2 with its own, `/quit` exits 0 with the story saved.
 * What each line printed is returned.
 */
export async function playTwoChapters(p: ConsoleProcess): Promise<{ ch1: string; ch2: string }> {
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
  return { ch1, ch2 };
}
