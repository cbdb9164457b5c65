/**
 * Runs one of the `npm run train:*` tools (src/training/cli/<script>) as a child process,
 * the way a person would, with a clean environment plus `env`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runTrainingCli(
  script: string,
  args: string[],
  env: Record<string, string> = {},
  /** Called with everything printed so far on each stdout chunk (to send a signal mid-run, say). */
  onStdout?: (stdout: string, child: ChildProcess) => void,
): Promise<CliResult> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src", "training", "cli", script), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    onStdout?.(stdout, child);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
