/**
 * One process of a bot that sends to Telegram: a telegraf client and an outbox of its own,
 * pacing through the shared budget in Redis (or alone, with SHARED=0). Run by the
 * shared-limits test as a child (`tsx tests/helpers/telegram-sender-process.ts`), several
 * at once, to show that processes sending to one chat together stay within its limits.
 *
 * Environment: API_ROOT, TOKEN, REDIS_URL, PREFIX, CHATS (comma-separated chat ids), COUNT
 * (messages to each chat), SHARED (1 or 0), and the budget's PER_CHAT_MS / GROUP_LIMIT /
 * GROUP_WINDOW_MS / GLOBAL_PER_SECOND when a test shortens them. It prints "ready", waits
 * for a line on standard input (so every process starts at once), sends, and prints its
 * outbox's stats as JSON.
 */
import { once } from "node:events";
import { Redis } from "ioredis";
import { Telegram } from "telegraf";
import { chatKindOf, TelegramOutbox } from "../../adapters/telegram/outbox.ts";
import { type RedisBudgetOptions, RedisTelegramBudget } from "../../adapters/telegram/redis-budget.ts";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const telegram = new Telegram(env("TOKEN"), { apiRoot: env("API_ROOT") });
const shared = process.env.SHARED !== "0";
const redis = shared ? new Redis(env("REDIS_URL"), { maxRetriesPerRequest: 1 }) : undefined;
const budget: RedisBudgetOptions = { prefix: env("PREFIX"), log: (line) => process.stderr.write(`${line}\n`) };
const shortened = {
  PER_CHAT_MS: "perChatIntervalMs",
  GROUP_LIMIT: "groupPerMinute",
  GROUP_WINDOW_MS: "groupWindowMs",
  GLOBAL_PER_SECOND: "globalPerSecond",
} as const;
for (const [name, option] of Object.entries(shortened)) {
  const value = process.env[name];
  if (value !== undefined) budget[option] = Number(value);
}
const outbox = new TelegramOutbox(redis === undefined ? {} : { shared: new RedisTelegramBudget(redis, budget) });
if (redis !== undefined) await redis.ping();

process.stdout.write("ready\n");
process.stdin.setEncoding("utf8");
await once(process.stdin, "data");

const chats = env("CHATS").split(",").map(Number);
const count = Number(env("COUNT"));
const sends: Promise<unknown>[] = [];
for (let n = 0; n < count; n++) {
  for (const chat of chats) {
    sends.push(outbox.send(chat, chatKindOf(chat), () => telegram.sendMessage(chat, `pid ${process.pid} #${n}`)));
  }
}
const results = await Promise.allSettled(sends);
await outbox.close();
const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
process.stdout.write(`${JSON.stringify({ ...outbox.stats(), failed })}\n`);
redis?.disconnect();
process.stdin.pause();
