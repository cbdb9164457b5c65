/**
 * The first run as a newcomer takes it: `npm start` (src/app/main.ts) with nothing
 * configured, in a terminal, asks whether to download and run the local model; a yes
 * installs the runtime with npm into LOCAL_RUNTIME_DIR and goes on as LOCAL_MODEL=default.
 *
 * Two stand-ins, both said here: the terminal is a pipe (a pseudo-terminal is not available
 * to Node without a native module), so INKLOOM_ASSUME_TTY=1, documented for tests only, makes
 * main.ts take it for one; and npm is a stand-in first on PATH that records its arguments
 * and writes what the real install leaves behind (tests/helpers/fake-npm.ts). The real npm
 * and registry run the same installer in CI (`npm run local:install` before
 * `npm run test:local`), and tests/unit/local-install.test.ts runs the real npm against an
 * unreachable registry.
 */

import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { saidNoLine } from "../../src/app/local-setup.ts";
import { DEFAULT_LOCAL_MODEL, hubModelPath } from "../../src/llm/local-models.ts";
import { prebuiltPackage } from "../../src/llm/local-runtime.ts";
import { FakeHubServer } from "../fakes/fake-hub-server.ts";
import { type FakeNpm, writeFakeNpm } from "../helpers/fake-npm.ts";
import { ConsoleProcess, runToExit } from "./console-process.ts";

const QUESTION_END = "Download and run it? [y/N] ";

let dir: string;
let npm: FakeNpm;

/** A newcomer's environment: no endpoint, no LOCAL_MODEL; every folder under the test's own. */
function newcomer(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: `${npm.bin}:${process.env.PATH ?? ""}`,
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "config"),
    LOCAL_RUNTIME_DIR: join(dir, "runtime"),
    LOCAL_MODEL_DIR: join(dir, "models"),
    DATABASE_URL: `file:${join(dir, "inkloom.db")}`,
    INKLOOM_LOCALE: "en",
    INKLOOM_ASSUME_TTY: "1",
    ...extra,
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-firstrun-"));
  npm = writeFakeNpm(dir, "ok");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("npm start with nothing configured, in a terminal", () => {
  it("asks once; yes installs the runtime with npm, downloads the default model and opens the terminal; the next start asks nothing", async () => {
    // The default model, as the Hub serves it (random bytes: nothing loads it before a chapter).
    const hub = await FakeHubServer.start();
    const bytes = randomBytes(300_000);
    hub.addFile(DEFAULT_LOCAL_MODEL.repo, DEFAULT_LOCAL_MODEL.file, bytes);
    try {
      await firstRunYes(hub, bytes);
    } finally {
      await hub.close();
    }
  }, 90_000);

  async function firstRunYes(hub: FakeHubServer, bytes: Buffer): Promise<void> {
    const first = new ConsoleProcess(newcomer({ HF_ENDPOINT: hub.endpoint }));
    await first.stdoutContains(QUESTION_END, 20_000);
    expect(first.stdout).toContain("Download and run Qwen2.5 1.5B Instruct (Q4_K_M) locally?");
    expect(first.stdout).toContain(`About 1.1 GB (Apache-2.0, `);
    expect(first.stdout).toContain(`stored in ${join(dir, "models")}`);
    expect(first.stdout).toContain(`goes to ${join(dir, "runtime")}. One yes installs both.`);
    first.type("sure\n");
    await first.stdoutContains("Please answer y (yes) or n (no).");
    first.type("y\n");
    expect(await first.ready(30_000)).toContain("Type /start to begin a story");
    expect(npm.runs()).toEqual([
      [
        "install",
        "--prefix",
        join(dir, "runtime"),
        "--omit=optional",
        "--no-audit",
        "--no-fund",
        "node-llama-cpp@3.22.1",
        `${prebuiltPackage()}@3.22.1`,
      ],
    ]);
    expect(first.stderr).toContain(`Installing the local runtime: node-llama-cpp ${prebuiltPackage()}`);
    expect(first.stderr).toContain("added 117 packages");
    expect(first.stderr).toContain(`The local runtime is installed in ${join(dir, "runtime")}`);
    expect(first.stderr).toContain("Going on as with LOCAL_MODEL=default: Qwen2.5 1.5B Instruct (Q4_K_M).");
    expect(first.stderr).toContain(`downloading ${DEFAULT_LOCAL_MODEL.name}`);
    const model = hubModelPath(join(dir, "models"), DEFAULT_LOCAL_MODEL.repo, DEFAULT_LOCAL_MODEL.file);
    expect(readFileSync(model).equals(bytes)).toBe(true);
    expect(await first.quit()).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "config", "inkloom", "local-model.json"), "utf8")).localModel).toBe("yes");
    const requests = hub.requests.length;

    const second = new ConsoleProcess(newcomer({ HF_ENDPOINT: hub.endpoint }));
    await second.ready(30_000);
    expect(second.stdout).not.toContain(QUESTION_END);
    expect(second.stderr).toContain("Using the local model (you said yes on");
    expect(second.stderr).toContain("Going on as with LOCAL_MODEL=default");
    expect(await second.quit()).toBe(0);
    expect(npm.runs()).toHaveLength(1);
    expect(hub.requests).toHaveLength(requests);
  }

  it("no prints the help and exits 2; the next start does not ask and says how to be asked again", async () => {
    const first = new ConsoleProcess(newcomer());
    await first.stdoutContains(QUESTION_END, 20_000);
    first.type("n\n");
    expect(await first.exited).toBe(2);
    expect(first.stderr).toContain("Inkloom needs an OpenAI-compatible model endpoint");
    expect(first.stderr).toContain("LOCAL_MODEL=default npm start");
    const answers = join(dir, "config", "inkloom", "local-model.json");
    expect(first.stderr).toContain(saidNoLine(answers));

    const second = await runToExit(newcomer());
    expect(second.code).toBe(2);
    expect(second.stdout).not.toContain(QUESTION_END);
    expect(second.stderr).toContain("Inkloom needs an OpenAI-compatible model endpoint");
    expect(second.stderr).toContain(saidNoLine(answers));
    expect(npm.runs()).toEqual([]);
  }, 60_000);

  it("with LOCAL_MODEL at a file and no runtime, asks to install it, then plays in the terminal on the same input", async () => {
    const model = join(dir, "model.gguf");
    writeFileSync(model, "GGUF");
    const p = new ConsoleProcess(newcomer({ LOCAL_MODEL: model }));
    await p.stdoutContains("Install it there now with npm? [y/N] ", 20_000);
    // The answer and the terminal's first command in one write: the question reads one line only.
    p.type("y\n/quit\n");
    expect(await p.exited).toBe(0);
    expect(npm.runs()).toHaveLength(1);
    expect(p.stdout).toContain("\n> ");
    expect(existsSync(join(dir, "config", "inkloom", "local-model.json"))).toBe(false);
  }, 60_000);

  it("without a terminal asks nothing: the help, which names LOCAL_MODEL=default, and exit 2", async () => {
    const { INKLOOM_ASSUME_TTY: _, ...piped } = newcomer();
    const run = await runToExit(piped);
    expect(run.code).toBe(2);
    expect(run.stdout).not.toContain(QUESTION_END);
    expect(run.stderr).toContain("LOCAL_MODEL=default npm start");
    expect(npm.runs()).toEqual([]);
  }, 60_000);
});
