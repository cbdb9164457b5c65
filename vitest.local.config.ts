import { defineConfig } from "vitest/config";

/**
 * The tests that need the embedded runtime (node-llama-cpp), installed on demand into its
 * own prefix, not a dependency: `LOCAL_RUNTIME_DIR=<prefix> npm run test:local`. They are
 * left out of the default run (vitest.config.ts) rather than skipped there, and fail here
 * when the runtime is missing. docs/local-model.md says how to install it.
 */
export default defineConfig({
  test: {
    include: ["tests/local-model/**/*.local.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
