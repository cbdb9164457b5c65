/**
 * vitest globalSetup: the Redis the BullMQ tests use. TEST_REDIS_URL when set (CI may
 * start one); otherwise a redis-server of this run's own, on a spare port, stopped at
 * the end. Without either, the Redis tests fail with the reason (never skipped).
 */
import type { TestProject } from "vitest/node";
import { OwnRedis } from "./own-redis.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the BullMQ tests find Redis, or why there is none. */
    redis: { url: string } | { problem: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.TEST_REDIS_URL;
  if (url !== undefined && url !== "") {
    project.provide("redis", { url });
    return async () => {};
  }
  try {
    const server = await OwnRedis.start({ appendonly: false });
    project.provide("redis", { url: server.url });
    return () => server.stop();
  } catch (error) {
    project.provide("redis", { problem: error instanceof Error ? error.message : String(error) });
    return async () => {};
  }
}
