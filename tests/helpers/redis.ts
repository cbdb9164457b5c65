/**
 * The real Redis the BullMQ tests run against: TEST_REDIS_URL, or a redis-server the
 * test run starts itself (tests/helpers/redis-global-setup.ts). A test that needs
 * Redis fails, saying why, when there is none: it is never skipped silently. Each test
 * gets its own key prefix and deletes its keys afterwards.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, inject } from "vitest";

export { freePort, OwnRedis } from "./own-redis.ts";

const HOW_TO =
  "Install redis-server (apt-get install redis-server) so the tests start their own, " +
  "or point TEST_REDIS_URL at a running one.";

/** The test run's Redis URL; throws why there is none. */
export function testRedisUrl(): string {
  const redis = inject("redis");
  if ("url" in redis) return redis.url;
  throw new Error(`These tests need Redis, and none could be started: ${redis.problem}\n${HOW_TO}`);
}

/** A client for the test Redis; throws, saying how to get one, when it does not answer. */
export async function connectTestRedis(url: string = testRedisUrl()): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new Error(`These tests need Redis at ${url}, which did not answer: ${String(error)}.\n${HOW_TO}`);
  }
}

/** A fresh key prefix: tests sharing one Redis never see each other's jobs. */
export function testPrefix(): string {
  return `inkloom-test-${randomUUID().slice(0, 8)}`;
}

/** Delete every key under `prefix`. */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

/**
 * The hooks of a test file that uses Redis: it is checked once (failing the file, with
 * the reason, when absent), each test gets a fresh key prefix, and its keys are deleted
 * after it (after the test's own hooks closed its queues). Read `url` and `prefix` in tests.
 */
export function useTestRedis(): { readonly url: string; readonly prefix: string } {
  let redis: Redis | undefined;
  let url = "";
  let prefix = "";
  beforeAll(async () => {
    url = testRedisUrl();
    redis = await connectTestRedis(url);
  });
  afterAll(() => redis?.disconnect());
  beforeEach(() => {
    prefix = testPrefix();
  });
  afterEach(async () => {
    if (redis !== undefined) await dropPrefix(redis, prefix);
  });
  return {
    get url() {
      return url;
    },
    get prefix() {
      return prefix;
    },
  };
}
