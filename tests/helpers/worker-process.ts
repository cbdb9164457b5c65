/**
 * A BullMQ worker in a process of its own (tests/helpers/bullmq-worker-process.ts), for
 * a test to kill mid-job with SIGKILL, as a crash or an OOM kill would.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

export interface WorkerProcess {
  /** Resolves once the worker printed `text` ("ready", "started <key> <attempt>"). */
  printed(text: string): Promise<void>;
  /** SIGKILL: no shutdown, no hand-back. */
  kill(): void;
}

export function startWorkerProcess(options: {
  url: string;
  prefix: string;
  job: string;
  lockMs: number;
  stalledMs: number;
}): WorkerProcess {
  const script = join(ROOT, "tests", "helpers", "bullmq-worker-process.ts");
  const args = [options.url, options.prefix, options.job, String(options.lockMs), String(options.stalledMs)];
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  return {
    async printed(text) {
      while (!output.includes(text)) {
        if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}) before "${text}": ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    kill() {
      child.kill("SIGKILL");
    },
  };
}
