/**
 * The update gate (adapters/telegram/update-gate.ts) against a real Redis (TEST_REDIS_URL):
 * each update once, each chat's turns in order, and a turn whose front died passed over.
 */
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RedisUpdateGate, type Turn } from "../../adapters/telegram/update-gate.ts";
import { connectTestRedis, dropPrefix, testPrefix } from "../helpers/redis.ts";

let redis: Redis;
let prefix: string;

beforeEach(async () => {
  redis = await connectTestRedis();
  prefix = testPrefix();
});

afterEach(async () => {
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

function turnOf(admitted: Turn | "duplicate" | undefined): Turn {
  if (admitted === undefined || admitted === "duplicate") throw new Error(`expected a turn, got ${admitted}`);
  return admitted;
}

describe("RedisUpdateGate", { timeout: 20_000 }, () => {
  it("admits an update once, on whichever front asks first; an update without a chat has no turn", async () => {
    const [a, b] = [new RedisUpdateGate(redis, { prefix }), new RedisUpdateGate(redis, { prefix })];
    const [first, second] = await Promise.all([a.admit(1, 42), b.admit(1, 42)]);
    expect([first, second].filter((t) => t === "duplicate")).toHaveLength(1);
    await turnOf(first === "duplicate" ? second : first).done();

    expect(await a.admit(2, undefined)).toBeUndefined();
    expect(await b.admit(2, undefined)).toBe("duplicate");
  });

  it("lets a chat's turn go only when the earlier ones are done, on any front; other chats are not held", async () => {
    const [a, b] = [new RedisUpdateGate(redis, { prefix }), new RedisUpdateGate(redis, { prefix })];
    const one = turnOf(await a.admit(10, 42));
    const two = turnOf(await b.admit(11, 42));
    const elsewhere = turnOf(await b.admit(12, 43));
    const order: string[] = [];
    const second = two.ready().then(() => order.push("two"));

    await elsewhere.ready();
    await one.ready();
    order.push("one");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(order).toEqual(["one"]);
    await one.done();
    await second;
    expect(order).toEqual(["one", "two"]);
    await Promise.all([two.done(), elsewhere.done()]);
  });

  it("passes over a turn whose front died (its lease ran out), so the chat goes on", async () => {
    const dying = await connectTestRedis();
    const dead = new RedisUpdateGate(dying, { prefix, leaseMs: 300 });
    const alive = new RedisUpdateGate(redis, { prefix, leaseMs: 300 });
    const lost = turnOf(await dead.admit(20, 42));
    dying.disconnect();
    const next = turnOf(await alive.admit(21, 42));

    const started = Date.now();
    await next.ready();
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(2_000);
    await next.done();
    await lost.done();
  });
});
