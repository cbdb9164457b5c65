/**
 * The start-up step of local mode (src/app/local-setup.ts): the first-run question in the
 * terminal, the remembered answer, no question without a terminal, and the runtime's install
 * when local mode is chosen. The question and the installer are injected; the reading of an
 * answer from standard input is tested on a stream.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NO_ENDPOINT_HELP } from "../../src/app/config.ts";
import {
  answerFile,
  askLine,
  type Env,
  firstRunQuestion,
  type LocalSetupOptions,
  prepareLocalMode,
  readLine,
  saidNoLine,
} from "../../src/app/local-setup.ts";
import { RuntimeInstallError } from "../../src/llm/local-install.ts";
import { DEFAULT_LOCAL_MODEL } from "../../src/llm/local-models.ts";
import { prebuiltPackage, RUNTIME_INSTALL_COMMAND } from "../../src/llm/local-runtime.ts";

let dir: string;
let env: Env;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-setup-"));
  env = {
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "config"),
    LOCAL_RUNTIME_DIR: join(dir, "runtime"),
    LOCAL_MODEL_DIR: join(dir, "models"),
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What a real install leaves in the prefix. */
function fakeInstalled(prefix: string): void {
  const entry = join(prefix, "node_modules", "node-llama-cpp", "dist");
  mkdirSync(entry, { recursive: true });
  writeFileSync(join(entry, "index.js"), "");
  const prebuilt = join(prefix, "node_modules", ...prebuiltPackage().split("/"));
  mkdirSync(prebuilt, { recursive: true });
  writeFileSync(join(prebuilt, "package.json"), "{}");
}

interface Run {
  result: Awaited<ReturnType<typeof prepareLocalMode>>;
  questions: string[];
  installs: string[];
  stdout: string;
  stderr: string;
}

/** One start: `answers` are typed in turn (undefined: end of input); `tty` says whether stdin and stdout are a terminal. */
async function start(
  options: {
    env?: Env;
    answers?: (string | undefined)[];
    tty?: boolean;
    role?: "front" | "worker";
    install?: (dir: string) => Promise<unknown>;
  } = {},
): Promise<Run> {
  const questions: string[] = [];
  const installs: string[] = [];
  const answers = [...(options.answers ?? [])];
  const stdin = Object.assign(new PassThrough(), { isTTY: options.tty ?? true });
  const stdout = Object.assign(new PassThrough(), { isTTY: options.tty ?? true });
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const setup: LocalSetupOptions = {
    env: options.env ?? env,
    role: options.role ?? "front",
    stdin,
    stdout,
    stderr,
    ask: async (question) => {
      questions.push(question);
      if (answers.length === 0) throw new Error(`asked once too often: ${question}`);
      return answers.shift();
    },
    install:
      options.install ??
      (async (prefix) => {
        installs.push(prefix);
        fakeInstalled(prefix);
      }),
    now: () => new Date("2026-12-06T10:00:00Z"),
  };
  const result = await prepareLocalMode(setup);
  return { result, questions, installs, stdout: out, stderr: err };
}

describe("the first-run question", () => {
  it("names the model, its size, licence and place, the runtime's size and place, and where the answer goes", async () => {
    const run = await start({ answers: ["n"] });
    expect(run.questions).toHaveLength(1);
    const q = run.questions[0] as string;
    expect(q).toContain("No model endpoint is configured. Download and run Qwen2.5 1.5B Instruct (Q4_K_M) locally?");
    expect(q).toContain(
      `About 1.1 GB (Apache-2.0, ${DEFAULT_LOCAL_MODEL.licenceUrl}), stored in ${join(dir, "models")}`,
    );
    expect(q).toContain(
      `the runtime node-llama-cpp (about 80 MB) goes to ${join(dir, "runtime")}. One yes installs both.`,
    );
    expect(q).toContain(join(dir, "config", "inkloom", "local-model.json"));
    expect(q).toMatch(/\[y\/N\] $/);
  });

  it("says the runtime is already there when it is", () => {
    const q = firstRunQuestion({ modelDir: "/m", runtimeDir: "/r", runtimeInstalled: true, answerPath: "/a.json" });
    expect(q).toContain("the runtime node-llama-cpp is already in /r.");
    expect(q).not.toContain("80 MB");
  });

  it("yes: goes on as LOCAL_MODEL=default, installs the runtime without a second question, remembers the answer", async () => {
    const run = await start({ answers: ["y"] });
    expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: "default" } });
    expect(run.questions).toHaveLength(1);
    expect(run.installs).toEqual([join(dir, "runtime")]);
    expect(run.stderr).toContain("Going on as with LOCAL_MODEL=default: Qwen2.5 1.5B Instruct (Q4_K_M).");
    expect(JSON.parse(readFileSync(answerFile(env), "utf8"))).toEqual({
      localModel: "yes",
      answeredAt: "2026-12-06T10:00:00.000Z",
    });
  });

  it("yes, remembered: the next start asks nothing and goes on as LOCAL_MODEL=default", async () => {
    await start({ answers: ["yes"] });
    const second = await start();
    expect(second.questions).toEqual([]);
    expect(second.installs).toEqual([]);
    expect(second.result).toEqual({ env: { ...env, LOCAL_MODEL: "default" } });
    expect(second.stderr).toContain(`you said yes on 2026-12-06T10:00:00.000Z, remembered in ${answerFile(env)}`);
  });

  it("yes, remembered, and the runtime gone: installs it again without asking", async () => {
    await start({ answers: ["Y"] });
    rmSync(join(dir, "runtime"), { recursive: true });
    const second = await start();
    expect(second.questions).toEqual([]);
    expect(second.installs).toEqual([join(dir, "runtime")]);
  });

  it("no: prints the help and exits 2; the next start does not ask, and says how to be asked again", async () => {
    const first = await start({ answers: ["n"] });
    expect(first.result).toEqual({ exit: 2 });
    expect(first.installs).toEqual([]);
    expect(first.stderr).toContain(NO_ENDPOINT_HELP);
    expect(JSON.parse(readFileSync(answerFile(env), "utf8")).localModel).toBe("no");
    const second = await start();
    expect(second.questions).toEqual([]);
    expect(second.result).toEqual({ exit: 2 });
    expect(second.stderr).toContain(NO_ENDPOINT_HELP);
    expect(second.stderr).toContain(saidNoLine(answerFile(env)));
    expect(saidNoLine("/x.json")).toContain("delete that file to be asked again, or start with LOCAL_MODEL=default");
  });

  it("an empty answer is no", async () => {
    const run = await start({ answers: [""] });
    expect(run.result).toEqual({ exit: 2 });
    expect(JSON.parse(readFileSync(answerFile(env), "utf8")).localModel).toBe("no");
  });

  it("end of input is no, and nothing is remembered", async () => {
    const run = await start({ answers: [undefined] });
    expect(run.result).toEqual({ exit: 2 });
    expect(run.stderr).toContain(NO_ENDPOINT_HELP);
    expect(existsSync(answerFile(env))).toBe(false);
    expect((await start({ answers: ["n"] })).questions).toHaveLength(1);
  });

  it("another answer asks again", async () => {
    const run = await start({ answers: ["maybe", "oui", "  YES  "] });
    expect(run.questions).toHaveLength(3);
    expect(run.stdout.split("Please answer y (yes) or n (no).")).toHaveLength(3);
    expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: "default" } });
  });

  it("a file that is not an answer of ours asks again", async () => {
    mkdirSync(join(dir, "config", "inkloom"), { recursive: true });
    writeFileSync(answerFile(env), '{"localModel":"perhaps"}');
    expect((await start({ answers: ["n"] })).questions).toHaveLength(1);
  });

  it("an answer that cannot be written is still taken, with a warning", async () => {
    writeFileSync(join(dir, "config"), "a file where the folder should be");
    const run = await start({ answers: ["y"] });
    expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: "default" } });
    expect(run.stderr).toContain("Could not remember the answer");
  });
});

describe("without a terminal", () => {
  it("never asks, and leaves the help to the configuration (it names LOCAL_MODEL=default)", async () => {
    const run = await start({ tty: false });
    expect(run.questions).toEqual([]);
    expect(run.result).toEqual({ env });
    expect(NO_ENDPOINT_HELP).toContain("LOCAL_MODEL=default npm start");
  });

  it("does not use a remembered yes (a piped run behaves the same on every machine)", async () => {
    await start({ answers: ["y"] });
    const piped = await start({ tty: false });
    expect(piped.result).toEqual({ env });
  });

  it("with only one of standard input and output a terminal, does not ask", async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    const result = await prepareLocalMode({
      env,
      role: "front",
      stdin,
      stdout,
      stderr: new PassThrough(),
      ask: () => Promise.reject(new Error("asked")),
    });
    expect(result).toEqual({ env });
  });

  it("INKLOOM_ASSUME_TTY=1 (tests only) asks through a pipe", async () => {
    const run = await start({ tty: false, env: { ...env, INKLOOM_ASSUME_TTY: "1" }, answers: ["n"] });
    expect(run.questions).toHaveLength(1);
  });

  it("a bot never asks, even from a terminal", async () => {
    for (const token of [{ TELEGRAM_BOT_TOKEN: "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ" }, { DISCORD_TOKEN: "t" }]) {
      const run = await start({ env: { ...env, ...token } });
      expect(run.questions).toEqual([]);
      expect(run.result).toEqual({ env: { ...env, ...token } });
    }
  });

  it("a configured endpoint wins: nothing is asked or installed", async () => {
    for (const endpoint of [{ OPENAI_API_KEY: "sk-test" }, { OPENAI_BASE_URL: "http://localhost:11434/v1" }]) {
      const run = await start({ env: { ...env, ...endpoint, LOCAL_MODEL: "default" } });
      expect(run.questions).toEqual([]);
      expect(run.installs).toEqual([]);
    }
  });
});

describe("LOCAL_MODEL set and the runtime missing", () => {
  it("without a terminal (a bot), installs it without asking and says what and where", async () => {
    const run = await start({
      tty: false,
      env: { ...env, LOCAL_MODEL: "default", TELEGRAM_BOT_TOKEN: "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ" },
    });
    expect(run.questions).toEqual([]);
    expect(run.installs).toEqual([join(dir, "runtime")]);
    expect(run.stderr).toContain(
      `LOCAL_MODEL is set and the local runtime is not in ${join(dir, "runtime")}: installing it.`,
    );
    expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: "default", TELEGRAM_BOT_TOKEN: expect.any(String) } });
  });

  it("a worker installs it without asking, even from a terminal", async () => {
    const run = await start({
      role: "worker",
      env: { ...env, LOCAL_MODEL: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/x.gguf" },
    });
    expect(run.questions).toEqual([]);
    expect(run.installs).toHaveLength(1);
  });

  it("a worker with nothing configured asks nothing", async () => {
    const run = await start({ role: "worker" });
    expect(run.questions).toEqual([]);
    expect(run.result).toEqual({ env });
  });

  it("in the terminal, asks first; yes installs", async () => {
    const model = join(dir, "model.gguf");
    writeFileSync(model, "GGUF");
    const run = await start({ env: { ...env, LOCAL_MODEL: model }, answers: ["y"] });
    expect(run.questions).toEqual([
      `LOCAL_MODEL needs the runtime node-llama-cpp (about 80 MB), which is not in ${join(dir, "runtime")}.\nInstall it there now with npm? [y/N] `,
    ]);
    expect(run.installs).toEqual([join(dir, "runtime")]);
    expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: model } });
  });

  it("in the terminal, no (or end of input) installs nothing, prints the command and exits 2", async () => {
    const model = join(dir, "model.gguf");
    writeFileSync(model, "GGUF");
    for (const answer of ["n", undefined]) {
      const run = await start({ env: { ...env, LOCAL_MODEL: model }, answers: [answer] });
      expect(run.installs).toEqual([]);
      expect(run.result).toEqual({ exit: 2 });
      expect(run.stderr).toContain(RUNTIME_INSTALL_COMMAND(join(dir, "runtime")));
    }
  });

  it("installs nothing when LOCAL_MODEL names no .gguf file (the configuration says what is wrong)", async () => {
    for (const spec of [join(dir, "absent.gguf"), "hf:not-a-reference"]) {
      const run = await start({ tty: false, env: { ...env, LOCAL_MODEL: spec } });
      expect(run.installs).toEqual([]);
      expect(run.result).toEqual({ env: { ...env, LOCAL_MODEL: spec } });
    }
  });

  it("asks and installs nothing when the runtime is there", async () => {
    fakeInstalled(join(dir, "runtime"));
    const run = await start({ env: { ...env, LOCAL_MODEL: "default" } });
    expect(run.questions).toEqual([]);
    expect(run.installs).toEqual([]);
  });

  it("a failed install prints its message and exits 1", async () => {
    const run = await start({
      tty: false,
      env: { ...env, LOCAL_MODEL: "default" },
      install: () => Promise.reject(new RuntimeInstallError("offline", "the npm registry could not be reached")),
    });
    expect(run.result).toEqual({ exit: 1 });
    expect(run.stderr).toContain("the npm registry could not be reached");
  });
});

describe("where the answer is remembered", () => {
  it("under XDG_CONFIG_HOME, else ~/.config (a relative XDG_CONFIG_HOME is ignored)", () => {
    expect(answerFile({ XDG_CONFIG_HOME: "/x", HOME: "/h" })).toBe("/x/inkloom/local-model.json");
    expect(answerFile({ HOME: "/h" })).toBe("/h/.config/inkloom/local-model.json");
    expect(answerFile({ XDG_CONFIG_HOME: "rel", HOME: "/h" })).toBe("/h/.config/inkloom/local-model.json");
  });
});

describe("reading an answer from standard input", () => {
  it("takes one line and leaves the rest for the terminal's own reader", async () => {
    const input = new PassThrough();
    input.end("y\n/start a lighthouse\n/quit\n");
    const output = new PassThrough();
    expect(await askLine(input, output, "Download? [y/N] ")).toBe("y");
    expect(output.read()?.toString()).toBe("Download? [y/N] ");
    const lines: string[] = [];
    for await (const line of createInterface({ input, terminal: false })) lines.push(line);
    expect(lines).toEqual(["/start a lighthouse", "/quit"]);
  });

  it("keeps at most a few characters of a long line, drops the rest, and reads the next line", async () => {
    const input = new PassThrough();
    input.write(`${"y".repeat(100_000)}`);
    input.write("yyy\nn\r\n");
    const long = await readLine(input, 16);
    expect(long).toBe("y".repeat(17));
    expect(await readLine(input, 16)).toBe("n");
  });

  it("reads a second answer typed after the first (reading one paused the stream)", async () => {
    const input = new PassThrough();
    input.write("maybe\n");
    expect(await readLine(input, 16)).toBe("maybe");
    setTimeout(() => input.write("y\n"), 20);
    expect(await readLine(input, 16)).toBe("y");
  });

  it("a last line without a newline counts; end of input is undefined", async () => {
    const input = new PassThrough();
    input.end("yes");
    expect(await readLine(input, 16)).toBe("yes");
    expect(await readLine(input, 16)).toBeUndefined();
    const empty = new PassThrough();
    empty.end();
    expect(await readLine(empty, 16)).toBeUndefined();
  });

  it("a long garbage line asks again in the whole flow", async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = Object.assign(new PassThrough(), { isTTY: true });
    let out = "";
    stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    stdin.end(`${"yes".repeat(1000)}\nn\n`);
    const result = await prepareLocalMode({ env, role: "front", stdin, stdout, stderr: new PassThrough() });
    expect(result).toEqual({ exit: 2 });
    expect(out).toContain("Please answer y (yes) or n (no).");
    expect(out.split("Download and run it? [y/N]")).toHaveLength(3);
  });
});
