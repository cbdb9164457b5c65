/**
 * Telegram's flood limits shared by several processes of one bot through Redis
 * (adapters/telegram/redis-budget.ts), against a real Redis (TEST_REDIS_URL) and the fake
 * Bot API server with its flood control on (it answers 429 with retry_after as Telegram
 * does). Without Redis these tests fail, naming the URL; they never skip.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { Telegram } from "telegraf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chatKindOf, TelegramOutbox } from "../../adapters/telegram/outbox.ts";
import { type RedisBudgetOptions, RedisTelegramBudget } from "../../adapters/telegram/redis-budget.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { connectTestRedis, dropPrefix, freePort, testPrefix, testRedisUrl } from "../helpers/redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SENDER = join(ROOT, "tests", "helpers", "telegram-sender-process.ts");

let redis: Redis;
let prefix: string;
let tg: FakeTelegramServer;
const clients: Redis[] = [];
const outboxes: TelegramOutbox[] = [];
const children: ChildProcessWithoutNullStreams[] = [];

beforeEach(async () => {
  redis = await connectTestRedis();
  prefix = testPrefix();
  tg = await FakeTelegramServer.start({ enforceLimits: true });
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  for (const outbox of outboxes.splice(0)) await outbox.close();
  for (const client of clients.splice(0)) client.disconnect();
  await tg.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

/** What one process of the bot has: its own Redis connection, budget, outbox and client. */
async function process_(budget: Partial<RedisBudgetOptions> = {}, logs: string[] = []) {
  const client = await connectTestRedis();
  clients.push(client);
  const outbox = new TelegramOutbox({
    shared: new RedisTelegramBudget(client, { prefix, log: (line) => logs.push(line), ...budget }),
  });
  outboxes.push(outbox);
  const telegram = new Telegram(tg.token, { apiRoot: tg.apiRoot });
  const send = (chatId: number, text: string) =>
    outbox.send(chatId, chatKindOf(chatId), () => telegram.sendMessage(chatId, text));
  return { outbox, send };
}

/** Times (ms) of the fake's accepted sendMessage calls, to one chat or all. */
function accepted(chatId?: number): number[] {
  return tg.calls
    .filter((c) => c.method === "sendMessage" && c.status === 200 && (chatId === undefined || c.chatId === chatId))
    .map((c) => c.at)
    .sort((a, b) => a - b);
}

/** At most `limit` of the sorted `times` in any window of `spanMs`. */
function expectAtMostPerWindow(times: number[], limit: number, spanMs: number): void {
  for (let i = 0; i + limit < times.length; i++) {
    expect((times[i + limit] as number) - (times[i] as number)).toBeGreaterThanOrEqual(spanMs);
  }
}

interface SenderResult {
  sent: number;
  rateLimited: number;
  failed: string[];
}

/** Start `n` sender processes, wait until all are ready, then let them send at once. */
async function senders(n: number, env: Record<string, string>): Promise<SenderResult[]> {
  const results = Array.from({ length: n }, () => {
    const child = spawn(process.execPath, ["--import", "tsx", SENDER], {
      cwd: ROOT,
      env: {
        ...process.env,
        API_ROOT: tg.apiRoot,
        TOKEN: tg.token,
        REDIS_URL: testRedisUrl(),
        PREFIX: prefix,
        ...env,
      },
    });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      err += chunk;
    });
    const ready = new Promise<void>((resolveReady, reject) => {
      const check = () => {
        if (out.includes("ready\n")) resolveReady();
        else if (child.exitCode !== null) reject(new Error(`sender exited before it was ready: ${err}`));
        else setTimeout(check, 20);
      };
      check();
    });
    const done = new Promise<SenderResult>((resolveDone, reject) => {
      child.on("exit", (code) => {
        const last = out.trim().split("\n").at(-1) ?? "";
        if (code === 0) resolveDone(JSON.parse(last) as SenderResult);
        else reject(new Error(`sender exited with ${code}: ${err}`));
      });
    });
    return { child, ready, done };
  });
  await Promise.all(results.map((r) => r.ready));
  for (const r of results) r.child.stdin.write("go\n");
  return Promise.all(results.map((r) => r.done));
}

describe("the shared limiter with 3 processes sending to one chat", { timeout: 60_000 }, () => {
  it("keeps the chat at most 1 message/s, with no 429", async () => {
    const chat = tg.chat("private");
    const results = await senders(3, { CHATS: String(chat.id), COUNT: "4" });

    const times = accepted(chat.id);
    expect(times).toHaveLength(12);
    expectAtMostPerWindow(times, 1, 1_000);
    expect(tg.rateLimited).toBe(0);
    expect(results.map((r) => r.sent)).toEqual([4, 4, 4]);
    expect(results.flatMap((r) => [r.rateLimited, ...r.failed])).toEqual([0, 0, 0]);
    // 12 messages in a little over 11 s: the chat's budget is used, not wasted.
    const rate = (times.length - 1) / (((times.at(-1) as number) - (times[0] as number)) / 1_000);
    expect(rate).toBeLessThanOrEqual(1);
    expect(rate).toBeGreaterThan(0.8);
  });

  it("is what keeps them there: without it the same processes are refused (the fake counts)", async () => {
    const chat = tg.chat("private");
    const results = await senders(3, { CHATS: String(chat.id), COUNT: "2", SHARED: "0" });

    expect(tg.rateLimited).toBeGreaterThan(0);
    // Each process alone still waits out retry_after and delivers.
    expect(results.map((r) => r.sent)).toEqual([2, 2, 2]);
  });
});

describe("the shared limiter's other budgets", { timeout: 60_000 }, () => {
  it("a group: at most its limit in any sliding window across processes, not twice that across a window's edge", async () => {
    const group = tg.chat("group");
    // A shortened window (3 per 2 s, 100 ms apart) that the fake, counting Telegram's minute, does not know.
    tg.enforceLimits = false;
    const budget = { groupPerMinute: 3, groupWindowMs: 2_000, perChatIntervalMs: 100 };
    const [a, b] = [await process_(budget), await process_(budget)];
    const sends = [];
    for (let n = 0; n < 5; n++) sends.push(a?.send(group.id, `a${n}`), b?.send(group.id, `b${n}`));
    await Promise.all(sends);

    const times = accepted(group.id);
    expect(times).toHaveLength(10);
    expectAtMostPerWindow(times, 3, 2_000);
    // The budget is used: three at a time, a window apart.
    expect((times[9] as number) - (times[0] as number)).toBeLessThan(8_000);
  });

  it("the whole bot: at most its limit in any sliding second across processes, every chat served", async () => {
    const chats = Array.from({ length: 12 }, () => tg.chat("private"));
    const budget = { globalPerSecond: 5 };
    const [a, b] = [await process_(budget), await process_(budget)];
    await Promise.all(chats.flatMap((chat) => [a?.send(chat.id, "a"), b?.send(chat.id, "b")]));

    const times = accepted();
    expect(times).toHaveLength(24);
    expectAtMostPerWindow(times, 5, 1_000);
    for (const chat of chats) expectAtMostPerWindow(accepted(chat.id), 1, 1_000);
    expect(tg.rateLimited).toBe(0);
  });

  it("a 429 seen by one process holds the chat for every process until retry_after has passed", async () => {
    const chat = tg.chat("private");
    const [a, b] = [await process_(), await process_()];
    tg.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 2", retry_after: 2 });
    const first = a?.send(chat.id, "first");
    await tg.waitFor(() => tg.rateLimited === 1);
    const refusedAt = tg.calls.find((c) => c.status === 429)?.at ?? 0;
    await b?.send(chat.id, "second");
    await first;

    const times = accepted(chat.id);
    expect(times).toHaveLength(2);
    expect(Math.min(...times) - refusedAt).toBeGreaterThanOrEqual(2_000);
  });

  it("429s in three chats within a second pause the whole bot for every process", async () => {
    const logs: string[] = [];
    const [a, b] = [await process_({}, logs), await process_()];
    const refused = [tg.chat("private"), tg.chat("private"), tg.chat("private")];
    for (let n = 0; n < 3; n++) {
      tg.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 2", retry_after: 2 });
    }
    const retried = refused.map((chat) => a?.send(chat.id, "refused, then retried"));
    // The third refusal paused the bot (A says so once it is stored).
    await tg.waitFor(() => logs.length > 0);
    const lastRefusal = Math.max(...tg.calls.filter((c) => c.status === 429).map((c) => c.at));
    const other = tg.chat("private");
    await b?.send(other.id, "another chat, another process");
    await Promise.all(retried);

    expect(Math.min(...accepted(other.id)) - lastRefusal).toBeGreaterThanOrEqual(1_900);
    expect(logs).toEqual([expect.stringContaining("429 in 3 chats within a second")]);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Counts the Redis commands that touch this test's keys, those run inside the budget's
 * scripts included (as the bench's `INFO commandstats` counts them), and the scripts run.
 */
async function countCommands() {
  const monitor = await redis.monitor();
  const counts = { commands: 0, scripts: 0 };
  monitor.on("monitor", (_time: string, args: string[]) => {
    if (!args.some((arg) => arg.startsWith(prefix))) return;
    counts.commands++;
    if (/^eval(sha)?$/i.test(args[0] ?? "")) counts.scripts++;
  });
  return { counts, stop: () => monitor.disconnect() };
}

describe("a sender waiting for the shared budget", { timeout: 60_000 }, () => {
  it("asks Redis a bounded number of times per call, however long the call ahead is in flight", async () => {
    const budget = { perChatIntervalMs: 700 };
    const outboxes = [await process_(budget), await process_(budget)].map((p) => p.outbox);
    const monitor = await countCommands();
    // Each call is in flight for 600 ms: a waiter polling every 50 ms would ask ~12 times.
    const slow = async () => {
      await sleep(600);
      return "sent";
    };
    await Promise.all(outboxes.flatMap((outbox) => [outbox.send(7, "private", slow), outbox.send(7, "private", slow)]));
    monitor.stop();

    // Per call: its granted take and its settle, and about two refused takes (the least wait, then the rest).
    expect(monitor.counts.scripts).toBeLessThanOrEqual(4 * 5);
    expect(monitor.counts.commands).toBeLessThanOrEqual(4 * 60);
  });

  it("with the bot's second full, processes take turns instead of all asking for each place that frees", async () => {
    const budget = { globalPerSecond: 4 };
    const [a, b, c] = [await process_(budget), await process_(budget), await process_(budget)];
    const monitor = await countCommands();
    // Each process to chats of its own, so only the bot's limit holds them back.
    const chats = Array.from({ length: 24 }, () => tg.chat("private"));
    await Promise.all(chats.map((chat, i) => [a, b, c][i % 3]?.send(chat.id, "hello")));
    monitor.stop();

    const times = accepted();
    expect(times).toHaveLength(24);
    expectAtMostPerWindow(times, 4, 1_000);
    expect(tg.rateLimited).toBe(0);
    // 24 calls in ~6 s. Per call: its take and settle, and on average one or two refused takes
    // (up to three when the machine is busy and waiters come late). Asking all at once: ~8 per call.
    expect(monitor.counts.scripts).toBeLessThanOrEqual(24 * 5.5);
  });
});

describe("RedisTelegramBudget", { timeout: 30_000 }, () => {
  it("holds a chat while another process's call is in flight, then for the interval after it settled", async () => {
    const budget = () => new RedisTelegramBudget(redis, { prefix, perChatIntervalMs: 800 });
    const [a, b] = [budget(), budget()];
    const taken = await a.take(7, "private");
    expect(taken.granted).toBe(true);

    // The call in flight ends now or later and then holds the chat for the interval: the
    // least wait is the interval, so the waiter sleeps that long instead of polling.
    const inFlight = await b.take(7, "private");
    expect(inFlight).toEqual({ granted: false, waitMs: 800, scope: "chat" });
    expect((await b.take(8, "private")).granted).toBe(true);

    if (taken.granted) await taken.settle();
    const after = await b.take(7, "private");
    expect(after.granted).toBe(false);
    if (!after.granted) expect(after.waitMs).toBeGreaterThan(700);
  });

  it("promises the waiters of a full bot second its places in turn, and keeps a due place from newcomers", async () => {
    const budget = () => new RedisTelegramBudget(redis, { prefix, globalPerSecond: 2 });
    const [a, b, c, d] = [budget(), budget(), budget(), budget()];
    for (const chat of [1, 2]) {
      const taken = await a.take(chat, "private");
      if (taken.granted) await taken.settle();
      await sleep(150);
    }

    // Told different times: the first place to free, then the second; not both the first.
    const first = await b.take(3, "private");
    const second = await c.take(4, "private");
    expect([first.granted, second.granted]).toEqual([false, false]);
    if (first.granted || second.granted) return;
    expect([first.scope, second.scope]).toEqual(["bot", "bot"]);
    expect(first.waitMs).toBeGreaterThan(550);
    expect(second.waitMs - first.waitMs).toBeGreaterThan(100);

    // At B's time its place is free, but kept for B: D, who was promised nothing, waits.
    await sleep(first.waitMs + 5);
    const newcomer = await d.take(5, "private");
    expect(newcomer).toMatchObject({ granted: false, scope: "bot" });
    expect(await b.take(3, "private")).toMatchObject({ granted: true, full: true });
    await sleep(second.waitMs - first.waitMs);
    expect(await c.take(4, "private")).toMatchObject({ granted: true, full: true });
  });

  it("releases the place of a call whose process died (never settled) when its lease ends", async () => {
    const budget = new RedisTelegramBudget(redis, { prefix, leaseMs: 300, perChatIntervalMs: 200 });
    expect((await budget.take(7, "private")).granted).toBe(true);
    await new Promise((r) => setTimeout(r, 550));
    expect((await budget.take(7, "private")).granted).toBe(true);
  });

  it("without an answer from Redis, lets the call go on this process's limits and says so once", async () => {
    const port = await freePort();
    const down = new Redis(`redis://127.0.0.1:${port}`, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    down.on("error", () => {});
    const logs: string[] = [];
    const outbox = new TelegramOutbox({
      shared: new RedisTelegramBudget(down, { prefix, log: (line) => logs.push(line) }),
    });
    outboxes.push(outbox);

    expect(
      await Promise.all([outbox.send(1, "private", async () => "sent"), outbox.send(2, "private", async () => "sent")]),
    ).toEqual(["sent", "sent"]);
    expect(logs).toEqual([expect.stringContaining("the shared send budget in Redis failed")]);
    down.disconnect();
  });
});
