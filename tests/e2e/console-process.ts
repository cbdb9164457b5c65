/**
 * Drives `src/app/main.ts` as a person would: a spawned process fed through
 * standard input, read from standard output. Every handled line ends with the
 * "> " prompt, so `say` returns exactly what one line produced.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { queueEnv } from "../helpers/topology.ts";

const ROOT = join(import.meta.dirname, "..", "..");

/** The environment of a terminal session against a model at `baseUrl`, its database at `databaseUrl`, its files under `dir`. */
export function consoleEnv(
  baseUrl: string,
  dir: string,
  databaseUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    OPENAI_BASE_URL: baseUrl,
    OPENAI_API_KEY: "test-key",
    OPENAI_MODEL: "fake-story-model",
    DATABASE_URL: databaseUrl,
    EXPORT_DIR: join(dir, "exports"),
    INKLOOM_LOCALE: "en",
    OPENAI_MAX_RETRIES: "1",
    OPENAI_TIMEOUT_MS: "5000",
    // BullMQ in the PostgreSQL pass: the terminal runs its jobs itself (it has no workers).
    ...queueEnv(dir),
    ...extra,
  };
}
const PROMPT = "\n> ";

export class ConsoleProcess {
  stdout = "";
  stderr = "";
  readonly exited: Promise<number>;
  private readonly child: ChildProcessWithoutNullStreams;
  private waiters: (() => void)[] = [];

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src", "app", "main.ts")], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    });
    this.child.stdout.setEncoding("utf8");
    this.child.stderr.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.child.stderr.on("data", (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code) => {
        this.notify();
        resolve(code ?? -1);
      });
    });
  }

  /** Wait for the first prompt (the welcome has been shown). */
  async ready(timeoutMs = 20_000): Promise<string> {
    await this.until(() => this.stdout.includes(PROMPT), timeoutMs, "the first prompt");
    return this.stdout;
  }

  /** Send one line; resolve with everything it printed up to the next prompt. */
  async say(line: string, timeoutMs = 20_000): Promise<string> {
    const from = this.stdout.length;
    this.child.stdin.write(`${line}\n`);
    await this.until(
      () => this.stdout.indexOf(PROMPT, from) !== -1,
      timeoutMs,
      `the prompt after "${line.slice(0, 40)}"`,
    );
    return this.stdout.slice(from, this.stdout.indexOf(PROMPT, from));
  }

  /** Wait until standard error contains `text` (it is a separate pipe from standard output). */
  async stderrContains(text: string, timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.stderr.includes(text), timeoutMs, `"${text}" on stderr`);
  }

  /** Wait until standard output contains `text` (output that comes after a prompt, like a picture). */
  async stdoutContains(text: string | RegExp, timeoutMs = 10_000): Promise<void> {
    const found = () => (typeof text === "string" ? this.stdout.includes(text) : text.test(this.stdout));
    await this.until(found, timeoutMs, `${String(text)} on stdout`);
  }

  /** Write raw text to standard input without waiting for anything. */
  type(text: string): void {
    this.child.stdin.write(text);
  }

  /** Send a line that ends the session (/quit) and wait for the exit code. */
  async quit(line = "/quit"): Promise<number> {
    this.child.stdin.write(`${line}\n`);
    return this.exited;
  }

  /** Close standard input (end of a piped script). */
  async endInput(): Promise<number> {
    this.child.stdin.end();
    return this.exited;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }

  /** Send a signal (SIGINT: Ctrl-C in a terminal) and wait for the exit code. */
  async interrupt(signal: NodeJS.Signals = "SIGINT"): Promise<number> {
    this.child.kill(signal);
    return this.exited;
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.child.exitCode !== null) {
        throw new Error(
          `process exited (${this.child.exitCode}) before ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** Run the process with no input and collect its output and exit code. */
export async function runToExit(
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = new ConsoleProcess(env);
  const code = await p.endInput();
  return { code, stdout: p.stdout, stderr: p.stderr };
}
