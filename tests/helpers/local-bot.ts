/**
 * What the bot end-to-end tests on the embedded model share (tests/local-model/
 * telegram-chapter.local.test.ts and discord-chapter.local.test.ts): a temporary folder
 * with a database and the chapter model, and the checks that hold on every platform: two
 * chapters done, every run on the embedded model, text a platform can carry, no failure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import type { Db } from "../../src/store/db.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { localModelEnv, localRuntimeDir, writeChapterModel } from "./local-terminal.ts";

/** A lone surrogate (a pair cut in two) is not UTF-8: no platform can carry it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Text without whitespace: a chapter split over messages loses only the whitespace at its cuts. */
export const squeeze = (text: string) => text.replace(/\s+/g, "");

export interface LocalBotFixture {
  readonly databaseUrl: string;
  /** LOCAL_MODEL at the chapter model, no endpoint. */
  readonly env: Record<string, string>;
}

/**
 * Before the file's tests: the runtime checked, a folder, a database and the chapter model;
 * after them, `stop` (the bot), then all of it removed.
 */
export function useLocalBotFixture(prefix: string, stop: () => Promise<void>): LocalBotFixture {
  let dir: string | undefined;
  let database: TestDatabase | undefined;
  let modelPath = "";
  beforeAll(async () => {
    localRuntimeDir();
    dir = mkdtempSync(join(tmpdir(), prefix));
    database = await createTestDatabase(dir, "inkloom");
    modelPath = join(dir, "tiny.gguf");
    writeChapterModel(modelPath);
  });
  afterAll(async () => {
    await stop();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get databaseUrl() {
      return database?.url ?? "";
    },
    get env() {
      return localModelEnv(modelPath);
    },
  };
}

/** Chapters 1 and 2 are done, and every task of them ran on the embedded model (there is no endpoint). */
export async function expectTwoLocalChapters(db: Db, seen: () => string) {
  const chapters = await db.chapter.findMany({ orderBy: { number: "asc" } });
  expect(
    chapters.map((c) => [c.number, c.status]),
    seen(),
  ).toEqual([
    [1, "done"],
    [2, "done"],
  ]);
  const runs = await db.agentRun.findMany();
  expect(runs.length).toBeGreaterThan(0);
  for (const run of runs) expect(run).toMatchObject({ model: "local:tiny.gguf", baseUrl: "local://embedded" });
  return chapters;
}

/** Every text shown is non-empty, within the platform's `max`, and UTF-8 the platform can carry. */
export function expectCarriable(texts: readonly (string | undefined)[], max: number): void {
  for (const text of texts) {
    expect(text?.length).toBeGreaterThan(0);
    expect(text?.length).toBeLessThanOrEqual(max);
    expect(LONE_SURROGATE.test(text ?? ""), JSON.stringify(text)).toBe(false);
  }
}

/** No message twice, no error notice, no call the platform refused, nothing logged as failing. */
export function expectNoFailure(
  texts: readonly string[],
  calls: readonly { status: number }[],
  logs: readonly string[],
  seen: () => string,
): void {
  expect(new Set(texts).size, seen()).toBe(texts.length);
  expect(texts.filter((text) => /could not be finished|went wrong|not finished/i.test(text))).toEqual([]);
  const refused = calls.filter((c) => c.status >= 400);
  expect(refused, JSON.stringify(refused)).toEqual([]);
  expect(logs.filter((line) => /fail|error|refused/i.test(line))).toEqual([]);
}
