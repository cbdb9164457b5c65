/** The whole Telegram bot (engine + telegraf adapter) against fakes, for e2e tests. */
import { TelegramAdapter } from "../../adapters/telegram/telegram-adapter.ts";
import type { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { launchTestFront, stopTestFront, type TestFront } from "./topology.ts";

export type TelegramApp = TestFront<TelegramAdapter>;

/**
 * The bot as `npm start` runs it, configured from the environment it would see, polling.
 * With REDIS_URL in `extra` (tests/helpers/topology.ts queueEnv: the PostgreSQL pass) it is
 * the front only, and two worker processes write the chapters; their log lines go to
 * `log` too. The caller stops all three (stopTelegramApp).
 *
 * Without `fakes.model` the environment names no endpoint (no OPENAI_* at all): `extra`
 * says which model serves the stories (LOCAL_MODEL, tests/helpers/local-terminal.ts).
 */
export async function launchTelegramApp(
  fakes: { model?: FakeOpenAiServer; tg: FakeTelegramServer },
  /** DATABASE_URL of the test's database (tests/helpers/database.ts). */
  databaseUrl: string,
  log: (message: string) => void,
  extra: Record<string, string> = {},
): Promise<TelegramApp> {
  const { model, tg } = fakes;
  const env = {
    ...(model === undefined ? {} : { OPENAI_BASE_URL: model.baseUrl, OPENAI_MODEL: "fake", OPENAI_MAX_RETRIES: "0" }),
    DATABASE_URL: databaseUrl,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_API_ROOT: tg.apiRoot,
    INKLOOM_LOCALE: "en",
    ...extra,
  };
  return launchTestFront(env, log, (config, engine) => {
    if (config.telegram === undefined) throw new Error("telegram not configured");
    return new TelegramAdapter(config.telegram, { ...engine, log });
  });
}

/** Stop what launchTelegramApp started: the platform first, then the engine and the workers. */
export const stopTelegramApp = stopTestFront;
