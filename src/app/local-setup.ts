/**
 * The start-up step of local mode, before the configuration is read (docs/local-model.md):
 *
 * - With no endpoint and no `LOCAL_MODEL`, `npm start` in a terminal (standard input and
 *   output both a TTY) asks once whether to download and run the default model; the answer
 *   is remembered in `local-model.json` under `$XDG_CONFIG_HOME/inkloom` (default
 *   `~/.config/inkloom`). Yes goes on as `LOCAL_MODEL=default`; no prints the help and exits 2,
 *   now and on later starts. Without a terminal (bots, piped input, workers) nothing is
 *   asked and nothing remembered is used: `LOCAL_MODEL=default` opts in.
 * - When local mode is chosen and the runtime (node-llama-cpp) is not in `LOCAL_RUNTIME_DIR`,
 *   it is installed there (src/llm/local-install.ts): in the terminal after asking (the
 *   first-run yes covers it), elsewhere without asking, saying what and where.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import {
  installRuntime,
  isRuntimeInstalled,
  megabytes,
  RUNTIME_APPROX_BYTES,
  RuntimeInstallError,
} from "../llm/local-install.ts";
import { DEFAULT_LOCAL_MODEL, DEFAULT_LOCAL_MODEL_DIR, parseLocalModelSpec } from "../llm/local-models.ts";
import { RUNTIME_INSTALL_COMMAND } from "../llm/local-runtime.ts";
import { DEFAULT_LOCAL_RUNTIME_DIR, NO_ENDPOINT_HELP } from "./config.ts";

export type Env = Record<string, string | undefined>;

export interface LocalSetupOptions {
  /** The environment the configuration will be read from (`.env` already applied). */
  env: Env;
  /** `front`: `npm start` (the terminal, or the bots); `worker`: `npm run worker`, which never asks. */
  role: "front" | "worker";
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable;
  /** Put a question to the person at the terminal: the line they typed, or undefined at end of input. */
  ask?: (question: string) => Promise<string | undefined>;
  /** Install the runtime into a prefix; throws `RuntimeInstallError` (default: `installRuntime`). */
  install?: (dir: string) => Promise<unknown>;
  now?: () => Date;
}

/** The environment to read the configuration from, or the status to exit with (the reason is printed). */
export type LocalSetup = { env: Env } | { exit: number };

/** A yes/no answer longer than this is not one (the rest of the line is read and dropped). */
export const ANSWER_MAX_CHARS = 16;

/** The remembered first-run answer. */
export interface RememberedAnswer {
  localModel: "yes" | "no";
  answeredAt: string;
}

const set = (v: string | undefined): v is string => v !== undefined && v.trim() !== "";

/** Where the first-run answer is kept: `$XDG_CONFIG_HOME/inkloom/local-model.json`, or under `~/.config`. */
export function answerFile(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME?.trim();
  // The XDG spec ignores a relative path.
  const base = xdg && isAbsolute(xdg) ? xdg : join(set(env.HOME) ? env.HOME : homedir(), ".config");
  return join(base, "inkloom", "local-model.json");
}

/** The remembered answer, or undefined when there is none (or the file is not one of ours). */
export function readAnswer(path: string): RememberedAnswer | undefined {
  try {
    if (statSync(path).size > 4096) return undefined;
    const data = JSON.parse(readFileSync(path, "utf8")) as Partial<RememberedAnswer>;
    if (data.localModel !== "yes" && data.localModel !== "no") return undefined;
    return { localModel: data.localModel, answeredAt: String(data.answeredAt ?? "") };
  } catch {
    return undefined;
  }
}

function writeAnswer(path: string, answer: RememberedAnswer, warn: (message: string) => void): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify(answer, null, 2)}\n`);
    renameSync(temp, path);
  } catch (error) {
    warn(
      `Could not remember the answer in ${path} (${error instanceof Error ? error.message : String(error)}); ` +
        "it will be asked again next time.",
    );
  }
}

/** The first-run question: the model, its size, licence and place, and the runtime's. */
export function firstRunQuestion(p: {
  modelDir: string;
  runtimeDir: string;
  runtimeInstalled: boolean;
  answerPath: string;
}): string {
  const m = DEFAULT_LOCAL_MODEL;
  const runtime = p.runtimeInstalled
    ? `the runtime node-llama-cpp is already in ${p.runtimeDir}.`
    : `the runtime node-llama-cpp (about ${megabytes(RUNTIME_APPROX_BYTES)}) goes to ${p.runtimeDir}. One yes installs both.`;
  return [
    `No model endpoint is configured. Download and run ${m.name} locally?`,
    `  About ${megabytes(m.approxBytes)} (${m.licence}, ${m.licenceUrl}), stored in ${p.modelDir};`,
    `  ${runtime}`,
    `  Your answer is remembered in ${p.answerPath}.`,
    "Download and run it? [y/N] ",
  ].join("\n");
}

/** The line telling someone who said no how to change their mind. */
export function saidNoLine(path: string): string {
  return `You answered no to the local model (remembered in ${path}): delete that file to be asked again, or start with LOCAL_MODEL=default.`;
}

/**
 * Decide local mode before the configuration is read, asking and installing as the module
 * comment says. Never throws for a failed install: the message is printed and 1 returned.
 */
export async function prepareLocalMode(o: LocalSetupOptions): Promise<LocalSetup> {
  const env = o.env;
  const say = (text: string) => o.stderr.write(`${text}\n`);
  if (set(env.OPENAI_BASE_URL) || set(env.OPENAI_API_KEY)) return { env };
  const bots = set(env.TELEGRAM_BOT_TOKEN) || set(env.DISCORD_TOKEN);
  // INKLOOM_ASSUME_TTY=1 is for tests only: they drive the question through a pipe.
  const tty = env.INKLOOM_ASSUME_TTY === "1" || (o.stdin.isTTY === true && o.stdout.isTTY === true);
  const interactive = o.role === "front" && !bots && tty;
  const ask = o.ask ?? ((question: string) => askLine(o.stdin, o.stdout, question));
  const runtimeDir = resolve(set(env.LOCAL_RUNTIME_DIR) ? env.LOCAL_RUNTIME_DIR.trim() : DEFAULT_LOCAL_RUNTIME_DIR);
  let localEnv = env;
  let installAgreed = false;
  if (!set(env.LOCAL_MODEL)) {
    // Nothing configured: the configuration prints the help (which names LOCAL_MODEL=default).
    if (!interactive) return { env };
    const path = answerFile(env);
    const remembered = readAnswer(path);
    if (remembered?.localModel === "no") {
      say(`${NO_ENDPOINT_HELP}\n\n${saidNoLine(path)}`);
      return { exit: 2 };
    }
    if (remembered?.localModel === "yes") {
      say(`Using the local model (you said yes on ${remembered.answeredAt}, remembered in ${path}).`);
    } else {
      const modelDir = resolve(set(env.LOCAL_MODEL_DIR) ? env.LOCAL_MODEL_DIR.trim() : DEFAULT_LOCAL_MODEL_DIR);
      const question = firstRunQuestion({
        modelDir,
        runtimeDir,
        runtimeInstalled: isRuntimeInstalled(runtimeDir),
        answerPath: path,
      });
      const answer = await askYesNo(ask, question, o.stdout);
      if (answer === undefined) {
        // End of input is no, but not remembered: nobody answered.
        say(`\n${NO_ENDPOINT_HELP}`);
        return { exit: 2 };
      }
      writeAnswer(path, { localModel: answer, answeredAt: (o.now?.() ?? new Date()).toISOString() }, say);
      if (answer === "no") {
        say(`${NO_ENDPOINT_HELP}\n\n${saidNoLine(path)}`);
        return { exit: 2 };
      }
    }
    installAgreed = true;
    localEnv = { ...env, LOCAL_MODEL: "default" };
  }
  const spec = parseLocalModelSpec(localEnv.LOCAL_MODEL ?? "");
  // A LOCAL_MODEL that cannot work is named by the configuration, before anything is installed.
  if ("error" in spec || (spec.kind === "file" && !isGgufFile(spec.path))) return { env: localEnv };
  if (!isRuntimeInstalled(runtimeDir)) {
    if (interactive && !installAgreed) {
      const answer = await askYesNo(
        ask,
        `LOCAL_MODEL needs the runtime node-llama-cpp (about ${megabytes(RUNTIME_APPROX_BYTES)}), which is not in ${runtimeDir}.\n` +
          "Install it there now with npm? [y/N] ",
        o.stdout,
      );
      if (answer !== "yes") {
        say(
          `${answer === undefined ? "\n" : ""}Not installed. Install it by hand with:\n  ${RUNTIME_INSTALL_COMMAND(runtimeDir)}\n` +
            "or set LOCAL_RUNTIME_DIR to where it is installed.",
        );
        return { exit: 2 };
      }
    } else if (!interactive) {
      say(`LOCAL_MODEL is set and the local runtime is not in ${runtimeDir}: installing it.`);
    }
    const install = o.install ?? ((dir: string) => installRuntime(dir, { output: o.stderr }));
    try {
      await install(runtimeDir);
    } catch (error) {
      if (!(error instanceof RuntimeInstallError)) throw error;
      say(error.message);
      return { exit: 1 };
    }
  }
  if (localEnv !== env) say(`Going on as with LOCAL_MODEL=default: ${DEFAULT_LOCAL_MODEL.name}.`);
  return { env: localEnv };
}

function isGgufFile(path: string): boolean {
  try {
    return path.endsWith(".gguf") && statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Ask until the answer is yes or no (empty is no); undefined at end of input. */
async function askYesNo(
  ask: (question: string) => Promise<string | undefined>,
  question: string,
  stdout: Writable,
): Promise<"yes" | "no" | undefined> {
  for (;;) {
    const line = await ask(question);
    if (line === undefined) return undefined;
    const answer = line.trim().toLowerCase();
    if (answer === "y" || answer === "yes") return "yes";
    if (answer === "n" || answer === "no" || answer === "") return "no";
    stdout.write("Please answer y (yes) or n (no).\n");
  }
}

/** Write the question, read one line of the answer. */
export async function askLine(input: Readable, output: Writable, question: string): Promise<string | undefined> {
  output.write(question);
  return readLine(input, ANSWER_MAX_CHARS);
}

/**
 * One line from `input`, without the newline: at most `maxChars` + 1 characters of it are
 * kept (the rest is read and dropped), and what follows the newline is put back for the next
 * reader (the terminal's own). A last line without a newline counts; undefined at end of input.
 */
export function readLine(input: Readable, maxChars: number): Promise<string | undefined> {
  if (input.readableEnded) return Promise.resolve(undefined);
  return new Promise((resolvePromise, reject) => {
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let seen = false;
    // UTF-8 takes at most 4 bytes a character.
    const maxBytes = (maxChars + 1) * 4;
    const stop = () => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onError);
      // Paused, standard input stops reading (until the next reader resumes it), so a
      // process that exits now is not held open by it.
      input.pause();
    };
    const text = () => [...Buffer.concat(kept).toString("utf8").replace(/\r$/, "")].slice(0, maxChars + 1).join("");
    const onData = (chunk: Buffer | string) => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      seen = true;
      const newline = buffer.indexOf(10);
      const part = newline === -1 ? buffer : buffer.subarray(0, newline);
      if (keptBytes < maxBytes) {
        const take = part.subarray(0, maxBytes - keptBytes);
        kept.push(take);
        keptBytes += take.length;
      }
      if (newline === -1) return;
      stop();
      const rest = buffer.subarray(newline + 1);
      if (rest.length > 0) input.unshift(rest);
      resolvePromise(text());
    };
    const onEnd = () => {
      stop();
      resolvePromise(seen ? text() : undefined);
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("error", onError);
    // A listener alone does not restart a stream paused by the question before.
    input.resume();
  });
}
