/**
 * `npm start`: loads configuration, opens the database, and runs the Telegram
 * bot when TELEGRAM_BOT_TOKEN is set, or else the terminal session on standard
 * input/output. Operator messages go to standard error; the story to standard output.
 */
import { existsSync } from "node:fs";
import { ConsoleAdapter } from "../../adapters/console/console-adapter.ts";
import { ConsoleSurface } from "../../adapters/console/console-surface.ts";
import { TelegramAdapter } from "../../adapters/telegram/telegram-adapter.ts";
import { DatabaseOpenError } from "../store/db.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { createEngine } from "./wiring.ts";

const log = (message: string) => process.stderr.write(`[inkloom] ${message}\n`);

async function main(): Promise<number> {
  if (existsSync(".env")) process.loadEnvFile(".env");
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let engine: Awaited<ReturnType<typeof createEngine>>;
  try {
    engine = await createEngine(config, log);
  } catch (error) {
    if (error instanceof DatabaseOpenError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  if (config.telegram !== undefined) {
    const telegram = new TelegramAdapter(config.telegram, { ...engine, log });
    try {
      await telegram.start();
    } catch (error) {
      process.stderr.write(
        `Telegram did not accept the bot: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      await engine.close();
      return 1;
    }
    log(`telegram bot running (${config.telegram.webhook ? "webhook" : "long polling"})`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await telegram.stop();
    await engine.close();
    return 0;
  }

  const conversation = { platform: "console", workspaceId: "local", id: "local" };
  const surface = new ConsoleSurface(process.stdout, config.locale, config.exportDir);
  engine.audiences.set(`${conversation.platform}:${conversation.id}`, { surface, locale: config.locale });
  const adapter = new ConsoleAdapter(
    process.stdin,
    surface,
    {
      actor: { platform: "console", id: "local", name: "reader" },
      // The terminal's reader owns everything they see.
      moderator: true,
      conversation,
      locale: config.locale,
      stories: engine.stories,
      settings: engine.settings,
    },
    log,
  );
  await adapter.run();
  await engine.close();
  process.stdout.write("\n");
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    log(`fatal: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
