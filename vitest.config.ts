import { configDefaults, defineConfig } from "vitest/config";

const onPostgres = process.env.TEST_DATABASE === "postgres" || process.env.TEST_DATABASE === "postgresql";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // A test for one database only lives in a `*.postgres.test.ts` or `*.sqlite.test.ts`
    // file, left out of the other database's pass: not run there, rather than reported
    // skipped (a skipped test counts as a failing one here).
    // `*.local.test.ts` need the on-demand local runtime (node-llama-cpp), which is not a
    // dependency: they run with `npm run test:local` (vitest.local.config.ts), not here.
    exclude: [
      ...configDefaults.exclude,
      onPostgres ? "**/*.sqlite.test.ts" : "**/*.postgres.test.ts",
      "**/*.local.test.ts",
    ],
    // Redis for the BullMQ tests: TEST_REDIS_URL, or a redis-server started for the run.
    globalSetup: ["tests/helpers/redis-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: e2e tests spawn processes; keep parallelism modest.
    maxWorkers: 2,
  },
});
