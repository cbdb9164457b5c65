/**
 * The whole path of `LOCAL_MODEL=hf:<owner>/<repo>/<file>.gguf` with no endpoint: the real
 * `npm start` process downloads the model from HF_ENDPOINT (a fake Hub and CDN on loopback,
 * tests/fakes/fake-hub-server.ts, serving the tiny random llama of
 * tests/helpers/gguf-writer.ts) into LOCAL_MODEL_DIR, checks its sha256, and plays a
 * chapter on it through the real node-llama-cpp. The model and its settings are those of
 * terminal-chapter.local.test.ts (favoured `"` and end-of-sequence, 16k context, seed 7).
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsoleProcess, consoleEnv } from "../e2e/console-process.ts";
import { FakeHubServer } from "../fakes/fake-hub-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { TINY_VOCAB, writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;
const CONTEXT = 16_384;
const TURN_MS = 45_000;
const REPO = "inkloom-test/tiny-llama-GGUF";
const FILE = "tiny-llama-f32.gguf";

describe("a chapter on a model downloaded from the Hub, in the terminal", { timeout: 120_000 }, () => {
  let dir: string;
  let database: TestDatabase;
  let hub: FakeHubServer;
  let served: Buffer;
  const running: ConsoleProcess[] = [];

  beforeAll(async () => {
    if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
    dir = mkdtempSync(join(tmpdir(), "inkloom-local-download-"));
    database = await createTestDatabase(dir, "inkloom");
    const source = join(dir, "source.gguf");
    writeTinyLlamaGguf(source, {
      contextLength: CONTEXT,
      favour: [TINY_VOCAB.firstByte + 0x22],
      favourLogits: { [TINY_VOCAB.eos]: 0.5 },
    });
    served = readFileSync(source);
    hub = await FakeHubServer.start();
    hub.addFile(REPO, FILE, served);
  });

  afterAll(async () => {
    for (const p of running.splice(0)) p.kill();
    await hub?.close();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("downloads the model at start, then /start writes chapter 1 on it", async () => {
    const env = consoleEnv("http://unused.invalid/v1", dir, database.url, {
      LOCAL_MODEL: `hf:${REPO}/${FILE}`,
      HF_ENDPOINT: hub.endpoint,
      LOCAL_MODEL_DIR: join(dir, "models"),
      LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "",
      LOCAL_MODEL_CONTEXT: String(CONTEXT),
      LOCAL_MODEL_THREADS: "1",
      LOCAL_MODEL_SEED: "7",
    });
    delete env.OPENAI_BASE_URL;
    delete env.OPENAI_API_KEY;
    delete env.OPENAI_MODEL;
    const p = new ConsoleProcess(env);
    running.push(p);
    expect(await p.ready(30_000)).toContain("Type /start to begin a story");
    expect(p.stderr).toContain(`downloading ${REPO}/${FILE}`);
    expect(p.stderr).toMatch(/is ready: .* sha256 [0-9a-f]{12}… checked/);
    const downloaded = join(dir, "models", "inkloom-test", "tiny-llama-GGUF", FILE);
    expect(readFileSync(downloaded).equals(served)).toBe(true);
    expect(hub.requestsTo("cdn").map((r) => r.status)).toEqual([200]);

    const ch1 = await p.say("/start a lighthouse keeper finds a letter from the future", TURN_MS);
    expect(ch1, p.stderr).toContain("Chapter 1");
    expect(ch1).not.toContain("could not be finished");
    expect(ch1).toMatch(/Pick 1-\d/);
    expect(await p.quit()).toBe(0);
  });
});
