/**
 * Telegram in webhook mode behind several fronts sharing Redis (TEST_REDIS_URL): the
 * secret token is checked, an update two fronts receive is handled once, and one chat's
 * updates are handled in the order Telegram sent them whichever front got them. Each
 * front is its own TelegramAdapter with its own engine (on one database), Redis
 * connection and webhook port; the test posts updates to the fronts as a load balancer
 * would, waiting for each answer before it sends the chat's next update, as Telegram does.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TelegramAdapter } from "../../adapters/telegram/telegram-adapter.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { type FakeChat, FakeTelegramServer, type FakeUser, type TgUpdate } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { connectTestRedis, dropPrefix, freePort, testPrefix } from "../helpers/redis.ts";

const SECRET = "front-s3cret";

let model: FakeOpenAiServer;
let tg: FakeTelegramServer;
let redis: Redis;
let prefix: string;
let dir: string;
let fronts: Front[] = [];
const logs: string[] = [];

interface Front {
  engine: Engine;
  bot: TelegramAdapter;
  redis: Redis | undefined;
  /** Post an update to this front's webhook with `secret`; resolves with the HTTP status. */
  post(update: TgUpdate, secret?: string): Promise<number>;
}

/**
 * A front: engine, adapter in webhook mode, and (unless `shared` is false) its own Redis
 * connection. `slowMs` makes the front's handling of each update slower by that much.
 */
async function front(options: { shared?: boolean; slowMs?: number } = {}): Promise<Front> {
  const port = await freePort();
  const config = loadConfig({
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: `file:${join(dir, "fronts.db")}`,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_API_ROOT: tg.apiRoot,
    TELEGRAM_WEBHOOK_URL: `https://127.0.0.1:${port}/telegram`,
    TELEGRAM_WEBHOOK_PORT: String(port),
    TELEGRAM_WEBHOOK_SECRET: SECRET,
    INKLOOM_LOCALE: "en",
  });
  if (config.telegram === undefined) throw new Error("telegram not configured");
  const log = (m: string) => logs.push(m);
  const engine = await createEngine(config, log);
  const own = options.shared === false ? undefined : await connectTestRedis();
  const slowMs = options.slowMs ?? 0;
  const settings = engine.settings;
  const slowSettings = Object.assign(Object.create(settings) as typeof settings, {
    get: async (...args: Parameters<typeof settings.get>) => {
      await new Promise((resolve) => setTimeout(resolve, slowMs));
      return settings.get(...args);
    },
  });
  const bot = new TelegramAdapter(
    { ...config.telegram, ...(own === undefined ? {} : { shared: { redis: own, prefix } }) },
    { ...engine, ...(slowMs > 0 ? { settings: slowSettings } : {}), log },
  );
  await bot.start();
  const instance: Front = {
    engine,
    bot,
    redis: own,
    async post(update, secret) {
      const response = await fetch(`http://127.0.0.1:${port}/telegram`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(secret === undefined ? {} : { "X-Telegram-Bot-Api-Secret-Token": secret }),
        },
        body: JSON.stringify(update),
      });
      await response.arrayBuffer();
      return response.status;
    },
  };
  fronts.push(instance);
  return instance;
}

let nextUpdateId = 800_000_001;
let nextMessageId = 10_000;

/** An update as Telegram would post it: `from` writes `text` in `chat`. */
function update(chat: FakeChat, from: FakeUser, text: string): TgUpdate {
  const command = /^\/\w+/.exec(text);
  return {
    update_id: nextUpdateId++,
    message: {
      message_id: nextMessageId++,
      date: Math.floor(Date.now() / 1000),
      chat,
      from,
      text,
      ...(command === null ? {} : { entities: [{ type: "bot_command", offset: 0, length: command[0].length }] }),
    },
  };
}

const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text);

beforeEach(async () => {
  redis = await connectTestRedis();
  prefix = testPrefix();
  dir = mkdtempSync(join(tmpdir(), "inkloom-fronts-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ enforceLimits: true });
  logs.length = 0;
});

afterEach(async () => {
  for (const f of fronts) await f.bot.stop();
  for (const f of fronts) await f.engine.close();
  for (const f of fronts) f.redis?.disconnect();
  fronts = [];
  await tg.close();
  await model.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe("Telegram behind several fronts", { timeout: 60_000 }, () => {
  it("refuses (403) and does not handle a POST without the secret token or with a wrong one", async () => {
    const a = await front();
    const reader = tg.user({ first_name: "Ida" });
    const chat = tg.chat("private", { user: reader });

    expect(await a.post(update(chat, reader, "/help"))).toBe(403);
    expect(await a.post(update(chat, reader, "/help"), "not-the-secret")).toBe(403);
    expect(await a.post(update(chat, reader, "/help"), SECRET)).toBe(200);

    await tg.waitFor(() => texts(chat.id).length > 0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(texts(chat.id)).toEqual([expect.stringContaining("/rewrite")]);
  });

  it("handles an update once when two fronts receive it: one story started", async () => {
    const [a, b] = [await front(), await front()];
    const reader = tg.user({ first_name: "Jo" });
    const chat = tg.chat("private", { user: reader });
    const start = update(chat, reader, "/start a lighthouse keeper who hears the sea talk back");

    // Telegram sent it again (a slow answer), and the load balancer chose the other front.
    expect(await Promise.all([a.post(start, SECRET), b.post(start, SECRET)])).toEqual([200, 200]);

    await tg.waitFor(() => texts(chat.id).some((t) => t.startsWith("Chapter 1")), 20_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await a.engine.db.story.count()).toBe(1);
    expect(texts(chat.id).filter((t) => t.startsWith("Chapter 1"))).toHaveLength(1);
    expect(logs.filter((l) => l.includes("failed"))).toEqual([]);
  });

  it("hears on one front the answer to a question another front asked (sessions in Redis)", async () => {
    const [a, b] = [await front(), await front()];
    const reader = tg.user({ first_name: "Lu" });
    const chat = tg.chat("private", { user: reader });
    expect(await a.post(update(chat, reader, "/start horror"), SECRET)).toBe(200);
    await tg.waitFor(() => texts(chat.id).some((t) => (t ?? "").includes("Reply to this message with your scenario")));
    // The scenario reaches the other front: it knows the question, and the genre asked with it.
    expect(await b.post(update(chat, reader, "a diver finds a door on the seabed"), SECRET)).toBe(200);
    await tg.waitFor(() => texts(chat.id).some((t) => (t ?? "").startsWith("Chapter 1")), 20_000);
    const story = await b.engine.db.story.findFirstOrThrow();
    expect(story).toMatchObject({ genre: "horror", premise: "a diver finds a door on the seabed" });
  });

  it("handles one chat's updates in order across two fronts, though the first front is slower", async () => {
    const [a, b] = [await front({ slowMs: 800 }), await front()];
    const reader = tg.user({ first_name: "Kit" });
    const chat = tg.chat("private", { user: reader });

    expect(await a.post(update(chat, reader, "/help"), SECRET)).toBe(200);
    expect(await b.post(update(chat, reader, "/stories"), SECRET)).toBe(200);

    await tg.waitFor(() => texts(chat.id).length >= 2, 10_000);
    expect(texts(chat.id)[0]).toContain("/rewrite");
    expect(texts(chat.id)[1]).not.toContain("/rewrite");
  });

  it("(the same two fronts without Redis answer out of order: what the test above would catch)", async () => {
    const [a, b] = [await front({ shared: false, slowMs: 800 }), await front({ shared: false })];
    const reader = tg.user({ first_name: "Lou" });
    const chat = tg.chat("private", { user: reader });

    expect(await a.post(update(chat, reader, "/help"), SECRET)).toBe(200);
    expect(await b.post(update(chat, reader, "/stories"), SECRET)).toBe(200);

    await tg.waitFor(() => texts(chat.id).length >= 2, 10_000);
    expect(texts(chat.id)[0]).not.toContain("/rewrite");
    expect(texts(chat.id)[1]).toContain("/rewrite");
  });
});
