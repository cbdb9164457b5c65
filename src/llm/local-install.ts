/**
 * The on-demand install of the embedded runtime (node-llama-cpp and this machine's CPU
 * prebuilt, about 80 MB) into its own npm prefix, `LOCAL_RUNTIME_DIR`: Inkloom runs npm
 * itself when local mode is chosen (src/app/local-setup.ts) and `npm run local:install`
 * runs the same code (CI installs the runtime for `npm run test:local` this way).
 *
 * npm does the network work (its registry, proxy and retry settings apply: without a
 * network it gives up after about two minutes of retries); this file bounds it with a
 * timeout, streams its output, and turns a failure into a message that says what to do.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { nodeLlamaCppEntry, prebuiltPackage, RUNTIME_INSTALL_ARGS, RUNTIME_INSTALL_COMMAND } from "./local-runtime.ts";

/** What the lean install weighs (docs/local-model.md: `du -sb` of its node_modules). */
export const RUNTIME_APPROX_BYTES = 80_400_000;

/** How long npm may take before it is stopped (a slow home line: 80 MB in well under this). */
export const RUNTIME_INSTALL_TIMEOUT_MS = 10 * 60_000;

/** Why the install failed; each kind has its own advice in the message. */
export type RuntimeInstallFailure = "npm_missing" | "offline" | "timeout" | "npm_failed" | "incomplete";

/** The install did not leave a usable runtime; `message` tells the user what to do. */
export class RuntimeInstallError extends Error {
  override readonly name = "RuntimeInstallError";
  constructor(
    readonly kind: RuntimeInstallFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface RuntimeInstallOptions {
  /** The npm executable (default `npm` on PATH). */
  npm?: string;
  /** Stop npm after this long (default `RUNTIME_INSTALL_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** After the timeout's SIGTERM, how long npm has before SIGKILL. */
  killGraceMs?: number;
  /** Where npm's own output is streamed (default standard error). */
  output?: Writable;
  /** One line about what is happening (default: to `output`). */
  log?: (message: string) => void;
  /** npm's environment (default this process's). */
  env?: NodeJS.ProcessEnv;
  /** How often a process waiting for another's install looks again. */
  lockPollMs?: number;
}

/** node-llama-cpp and this machine's prebuilt are both in the prefix `dir`. */
export function isRuntimeInstalled(dir: string): boolean {
  return (
    nodeLlamaCppEntry(dir) !== undefined &&
    existsSync(join(dir, "node_modules", ...prebuiltPackage().split("/"), "package.json"))
  );
}

/**
 * Install the runtime into the npm prefix `dir` unless it is there. One process installs at
 * a time (a lock file in `dir`): a front and its workers starting together wait for the
 * first one's install instead of running npm over each other. Throws `RuntimeInstallError`.
 */
export async function installRuntime(dir: string, options: RuntimeInstallOptions = {}): Promise<{ ms: number }> {
  const output = options.output ?? process.stderr;
  const log = options.log ?? ((message: string) => output.write(`${message}\n`));
  const timeoutMs = options.timeoutMs ?? RUNTIME_INSTALL_TIMEOUT_MS;
  const started = Date.now();
  if (isRuntimeInstalled(dir)) return { ms: 0 };
  mkdirSync(dir, { recursive: true });
  const release = await takeLock(dir, timeoutMs, options.lockPollMs ?? 1000, log);
  try {
    // Another process may have installed it while this one waited.
    if (isRuntimeInstalled(dir)) return { ms: Date.now() - started };
    log(
      `Installing the local runtime: node-llama-cpp ${prebuiltPackage()} (about ${megabytes(RUNTIME_APPROX_BYTES)}) into ${dir}\n` +
        `  ${RUNTIME_INSTALL_COMMAND(dir)}`,
    );
    await runNpm(dir, { ...options, output, timeoutMs });
    if (!isRuntimeInstalled(dir)) {
      throw new RuntimeInstallError(
        "incomplete",
        `npm finished, but node-llama-cpp and ${prebuiltPackage()} are not both in ${dir}. ` +
          `Install them by hand:\n  ${RUNTIME_INSTALL_COMMAND(dir)}`,
      );
    }
    const ms = Date.now() - started;
    log(`The local runtime is installed in ${dir} (${(ms / 1000).toFixed(1)} s).`);
    return { ms };
  } finally {
    release();
  }
}

/** npm's output worth reading for the reason of a failure: its last lines. */
const TAIL_CHARS = 16_384;
const NETWORK_ERROR =
  /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT)\b/;

async function runNpm(
  dir: string,
  options: RuntimeInstallOptions & { output: Writable; timeoutMs: number },
): Promise<void> {
  const byHand = `Then install it by hand:\n  ${RUNTIME_INSTALL_COMMAND(dir)}\nor set OPENAI_BASE_URL (and OPENAI_API_KEY) to use a model endpoint instead.`;
  const windows = process.platform === "win32";
  const npm = options.npm ?? (windows ? "npm.cmd" : "npm");
  const args = RUNTIME_INSTALL_ARGS(dir);
  // npm is a .cmd script on Windows, which only a shell runs: a path with spaces is quoted for it.
  const child = spawn(npm, windows ? args.map((a) => (/[\s"]/.test(a) ? `"${a.replaceAll('"', '""')}"` : a)) : args, {
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    shell: windows,
  });
  let tail = "";
  const keep = (chunk: Buffer) => {
    options.output.write(chunk);
    tail = (tail + chunk.toString("utf8")).slice(-TAIL_CHARS);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
    killTimer = setTimeout(() => child.kill("SIGKILL"), options.killGraceMs ?? 5000);
  }, options.timeoutMs);
  const outcome = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.on("error", (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
    child.on("close", (code) => resolve({ code }));
  });
  clearTimeout(timer);
  clearTimeout(killTimer);
  if (outcome.error?.code === "ENOENT") {
    throw new RuntimeInstallError(
      "npm_missing",
      `Could not install the local runtime (node-llama-cpp): npm was not found (${npm}); it comes with Node.js. ${byHand}`,
    );
  }
  if (outcome.error !== undefined) {
    throw new RuntimeInstallError("npm_failed", `Could not run npm (${outcome.error.message}). ${byHand}`);
  }
  if (timedOut) {
    throw new RuntimeInstallError(
      "timeout",
      `The install of the local runtime (node-llama-cpp) did not finish within ${duration(options.timeoutMs)} and was stopped. ` +
        `Check the network (npm's registry and proxy settings). ${byHand}`,
    );
  }
  if (outcome.code !== 0) {
    const network = NETWORK_ERROR.exec(tail);
    if (network !== null) {
      throw new RuntimeInstallError(
        "offline",
        `Could not install the local runtime (node-llama-cpp): the npm registry could not be reached (${network[1]}). ` +
          `Check the network, or npm's registry and proxy settings (npm config get registry). ${byHand}`,
      );
    }
    const last = tail.trim().split("\n").slice(-5).join("\n");
    throw new RuntimeInstallError(
      "npm_failed",
      `npm could not install the local runtime (node-llama-cpp; exit code ${outcome.code}). Its last lines:\n${last}\n${byHand}`,
    );
  }
}

/** The lock of one install at a time in a prefix. */
const LOCK_FILE = ".inkloom-install.lock";

/**
 * Take the prefix's install lock, waiting while another live process holds it. A lock older
 * than an install may take, or left by a process of this host that is gone, is taken over.
 */
async function takeLock(
  dir: string,
  timeoutMs: number,
  pollMs: number,
  log: (message: string) => void,
): Promise<() => void> {
  const path = join(dir, LOCK_FILE);
  let told = false;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = readLock(path);
    if (holder === undefined || isStale(holder, timeoutMs)) {
      rmSync(path, { force: true });
      continue;
    }
    if (!told) {
      const who = holder.pid > 0 ? ` (pid ${holder.pid} on ${holder.host})` : "";
      log(`Another Inkloom process${who} is installing the local runtime into ${dir}; waiting for it.`);
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    if (isRuntimeInstalled(dir) && !existsSync(path)) return () => {};
  }
}

interface LockHolder {
  pid: number;
  host: string;
  startedAt: number;
}

function readLock(path: string): LockHolder | undefined {
  try {
    const data = JSON.parse(readFileSync(path, "utf8")) as { pid?: unknown; host?: unknown; startedAt?: unknown };
    const startedAt = typeof data.startedAt === "string" ? Date.parse(data.startedAt) : Number.NaN;
    if (typeof data.pid !== "number" || typeof data.host !== "string" || Number.isNaN(startedAt)) return undefined;
    return { pid: data.pid, host: data.host, startedAt };
  } catch {
    // Being written this instant, or unreadable: judge it by its age.
    try {
      return Date.now() - statSync(path).mtimeMs < 10_000 ? { pid: -1, host: "", startedAt: Date.now() } : undefined;
    } catch {
      return undefined;
    }
  }
}

function isStale(holder: LockHolder, timeoutMs: number): boolean {
  if (Date.now() - holder.startedAt > timeoutMs + 60_000) return true;
  if (holder.host !== hostname() || holder.pid <= 0) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

export function megabytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

function duration(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${(ms / 1000).toFixed(1)} s`;
}
