/** The whole Telegram bot (engine + telegraf adapter) against fakes, for e2e tests. */
import { TelegramAdapter } from "../../adapters/telegram/telegram-adapter.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import type { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { startTestWorkers, type TestWorkers } from "./topology.ts";

export interface TelegramApp {
  engine: Engine;
  bot: TelegramAdapter;
  /** The `npm run worker` processes beside it when `extra` holds REDIS_URL (none otherwise). */
  workers: TestWorkers;
}

/**
 * The bot as `npm start` runs it, configured from the environment it would see, polling.
 * With REDIS_URL in `extra` (tests/helpers/topology.ts queueEnv: the PostgreSQL pass) it is
 * the front only, and two worker processes write the chapters; their log lines go to
 * `log` too. The caller stops all three (stopTelegramApp).
 */
export async function launchTelegramApp(
  fakes: { model: FakeOpenAiServer; tg: FakeTelegramServer },
  /** DATABASE_URL of the test's database (tests/helpers/database.ts). */
  databaseUrl: string,
  log: (message: string) => void,
  extra: Record<string, string> = {},
): Promise<TelegramApp> {
  const { model, tg } = fakes;
  const env = {
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: databaseUrl,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_API_ROOT: tg.apiRoot,
    INKLOOM_LOCALE: "en",
    ...extra,
  };
  const config = loadConfig(env);
  const workers = await startTestWorkers(env, 2, log);
  const engine = await createEngine(config, log, { role: config.redis === undefined ? "all" : "front" });
  if (config.telegram === undefined) throw new Error("telegram not configured");
  const bot = new TelegramAdapter(config.telegram, { ...engine, log });
  try {
    await bot.start();
  } catch (error) {
    await engine.close();
    await workers.stop();
    throw error;
  }
  return { engine, bot, workers };
}

/** Stop what launchTelegramApp started: polling first, then the engine and the workers. */
export async function stopTelegramApp(app: TelegramApp): Promise<void> {
  await app.bot.stop();
  await app.engine.close();
  await app.workers.stop();
}
