import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // Redis for the BullMQ tests: TEST_REDIS_URL, or a redis-server started for the run.
    globalSetup: ["tests/helpers/redis-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: e2e tests spawn processes; keep parallelism modest.
    maxWorkers: 2,
  },
});
