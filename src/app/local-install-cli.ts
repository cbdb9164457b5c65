/**
 * `npm run local:install`: install the embedded runtime (node-llama-cpp and this machine's
 * prebuilt) into LOCAL_RUNTIME_DIR with the code `npm start` uses when local mode is chosen,
 * then print how long it took and what it weighs. CI installs the runtime for
 * `npm run test:local` this way.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { installRuntime, isRuntimeInstalled, megabytes, RuntimeInstallError } from "../llm/local-install.ts";
import { DEFAULT_LOCAL_RUNTIME_DIR } from "./config.ts";
import { processEnv } from "./runtime.ts";

/** Bytes of the files under `path` (as `du -sb` counts them). */
function sizeOf(path: string): number {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.size;
  let total = stat.size;
  for (const name of readdirSync(path)) total += sizeOf(join(path, name));
  return total;
}

async function main(): Promise<number> {
  const env = processEnv();
  const dir = resolve(env.LOCAL_RUNTIME_DIR?.trim() || DEFAULT_LOCAL_RUNTIME_DIR);
  if (isRuntimeInstalled(dir)) {
    process.stdout.write(`The local runtime is already installed in ${dir}.\n`);
    return 0;
  }
  try {
    const { ms } = await installRuntime(dir);
    const bytes = sizeOf(join(dir, "node_modules"));
    process.stdout.write(
      `${JSON.stringify({ dir, seconds: Number((ms / 1000).toFixed(1)), nodeModulesBytes: bytes, size: megabytes(bytes) })}\n`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof RuntimeInstallError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`local:install: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
