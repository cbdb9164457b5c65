/**
 * `npm start` with `LOCAL_MODEL=hf:<owner>/<repo>/<file>.gguf` and no endpoint, as a user
 * runs it: the real process (src/app/main.ts) downloads the model from HF_ENDPOINT (a fake
 * Hub and CDN on loopback, tests/fakes/fake-hub-server.ts) into LOCAL_MODEL_DIR, with its
 * progress on standard error, before the terminal opens; the next start finds it without a
 * request. Two processes starting together download once. Ctrl-C keeps the part, and the
 * next start resumes it; a refused download exits 2
 * with the message, and a missing runtime is installed (npm, a stand-in here) before the download.
 *
 * The runtime prefix is a stand-in (node-llama-cpp is not a dependency): the terminal opens
 * without it, since the model is loaded at the first chapter. The chapter itself, on a
 * downloaded tiny model and the real runtime, is tests/local-model/terminal-download.local.test.ts.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { prebuiltPackage } from "../../src/llm/local-runtime.ts";
import { FakeHubServer } from "../fakes/fake-hub-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { writeFakeNpm } from "../helpers/fake-npm.ts";
import { ConsoleProcess, consoleEnv, runToExit } from "./console-process.ts";

const REPO = "inkloom-test/tiny-GGUF";
const FILE = "tiny.gguf";

describe("npm start with LOCAL_MODEL=hf:...", { timeout: 60_000 }, () => {
  let dir: string;
  let database: TestDatabase;
  let runtime: string;
  let bytes: Buffer;
  let hub: FakeHubServer;
  const running: ConsoleProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "inkloom-download-e2e-"));
    database = await createTestDatabase(dir, "inkloom");
    // A stand-in for the on-demand runtime: enough for the start-up check.
    runtime = join(dir, "runtime");
    mkdirSync(join(runtime, "node_modules", "node-llama-cpp", "dist"), { recursive: true });
    writeFileSync(join(runtime, "node_modules", "node-llama-cpp", "dist", "index.js"), "");
    const prebuilt = join(runtime, "node_modules", ...prebuiltPackage().split("/"));
    mkdirSync(prebuilt, { recursive: true });
    writeFileSync(join(prebuilt, "package.json"), "{}");
    bytes = randomBytes(1_500_000);
  });

  beforeEach(async () => {
    hub = await FakeHubServer.start();
    hub.addFile(REPO, FILE, bytes);
    rmSync(join(dir, "models"), { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const p of running.splice(0)) p.kill();
    await hub.close();
  });

  afterAll(async () => {
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const modelPath = () => join(dir, "models", "inkloom-test", "tiny-GGUF", FILE);

  function env(extra: Record<string, string> = {}): Record<string, string> {
    const e = consoleEnv("http://unused.invalid/v1", dir, database.url, {
      LOCAL_MODEL: `hf:${REPO}/${FILE}`,
      HF_ENDPOINT: hub.endpoint,
      LOCAL_MODEL_DIR: join(dir, "models"),
      LOCAL_RUNTIME_DIR: runtime,
      ...extra,
    });
    delete e.OPENAI_BASE_URL;
    delete e.OPENAI_API_KEY;
    delete e.OPENAI_MODEL;
    return e;
  }

  function start(extra: Record<string, string> = {}): ConsoleProcess {
    const p = new ConsoleProcess(env(extra));
    running.push(p);
    return p;
  }

  it("downloads the model before the terminal opens, and the next start finds it with no request", async () => {
    const first = start();
    expect(await first.ready(30_000)).toContain("Type /start to begin a story");
    expect(first.stderr).toContain(`downloading ${REPO}/${FILE}: 1.5 MB from 127.0.0.1:`);
    expect(first.stderr).toContain(`into ${modelPath()}`);
    // Standard error is a pipe here: plain lines every tenth, no bar.
    expect(first.stderr).toContain(`${FILE}: 50% (`);
    expect(first.stderr).toContain(`${FILE}: 100% (1.5 of 1.5 MB`);
    expect(first.stderr).not.toContain("\r");
    expect(first.stderr).toMatch(/is ready: .*tiny\.gguf \(1\.5 MB, sha256 [0-9a-f]{12}… checked\)/);
    expect(readFileSync(modelPath()).equals(bytes)).toBe(true);
    expect(await first.quit()).toBe(0);
    const seen = hub.requests.length;
    expect(seen).toBe(3);

    const second = start();
    await second.ready(30_000);
    expect(second.stderr).not.toContain("downloading");
    expect(hub.requests).toHaveLength(seen);
    expect(await second.quit()).toBe(0);
  });

  it("keeps the part on Ctrl-C (exit 130), and the next start resumes it", async () => {
    hub.faults.chunkDelayMs = 60;
    const first = start();
    await first.stderrContains(`${FILE}: 20%`, 30_000);
    expect(await first.interrupt("SIGINT")).toBe(130);
    expect(first.stderr).toContain(".part is kept and the next start resumes it");
    const kept = statSync(`${modelPath()}.part`).size;
    expect(kept).toBeGreaterThan(0);
    expect(existsSync(`${modelPath()}.lock`)).toBe(false);
    expect(existsSync(modelPath())).toBe(false);

    delete hub.faults.chunkDelayMs;
    const second = start();
    await second.ready(30_000);
    expect(second.stderr).toContain(`(resuming at ${(kept / 1e6).toFixed(1)} MB)`);
    expect(second.stderr).toContain(`${FILE}: resuming at `);
    const last = hub.requestsTo("cdn").at(-1);
    expect(last?.range).toBe(`bytes=${kept}-`);
    expect(last?.status).toBe(206);
    expect(readFileSync(modelPath()).equals(bytes)).toBe(true);
    expect(await second.quit()).toBe(0);
  });

  it("downloads once when two processes start together: the second waits for the first", async () => {
    // About 5 s of transfer: the second process starts (about 2 s) while the first downloads.
    hub.faults.chunkDelayMs = 200;
    const other = await createTestDatabase(dir, "inkloom-second");
    try {
      const first = start();
      await first.stderrContains(`downloading ${REPO}/${FILE}`, 30_000);
      const second = new ConsoleProcess({ ...env(), DATABASE_URL: other.url });
      running.push(second);
      await Promise.all([first.ready(30_000), second.ready(30_000)]);
      expect(second.stderr).toMatch(/another process \(pid \d+\) is downloading tiny\.gguf; waiting for it/);
      expect(second.stderr).not.toContain(`downloading ${REPO}`);
      expect(hub.requestsTo("cdn")).toHaveLength(1);
      expect(readFileSync(modelPath()).equals(bytes)).toBe(true);
      expect(await first.quit()).toBe(0);
      expect(await second.quit()).toBe(0);
    } finally {
      await other.drop();
    }
  });

  it("exits 2 with the Hub's refusal when the file is not in the repository", async () => {
    const { code, stderr } = await runToExit(env({ LOCAL_MODEL: `hf:${REPO}/absent.gguf` }));
    expect(code).toBe(2);
    expect(stderr).toContain(`absent.gguf is not in ${REPO} (revision main)`);
    expect(existsSync(join(dir, "models", "inkloom-test", "tiny-GGUF", "absent.gguf.lock"))).toBe(false);
  });

  it("installs a missing runtime first (npm, no question without a terminal), then downloads", async () => {
    const nowhere = join(dir, "no-runtime");
    const npm = writeFakeNpm(join(dir, "npm"), "ok");
    const first = start({ LOCAL_RUNTIME_DIR: nowhere, PATH: `${npm.bin}:${process.env.PATH ?? ""}` });
    expect(await first.ready(30_000)).toContain("Type /start to begin a story");
    expect(npm.runs()).toHaveLength(1);
    expect(npm.runs()[0]?.slice(0, 3)).toEqual(["install", "--prefix", nowhere]);
    const installed = first.stderr.indexOf("The local runtime is installed in");
    expect(installed).toBeGreaterThan(-1);
    expect(first.stderr.indexOf(`downloading ${REPO}/${FILE}`)).toBeGreaterThan(installed);
    expect(await first.quit()).toBe(0);
  });
});
