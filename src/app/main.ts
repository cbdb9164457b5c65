import { ConsoleAdapter } from "../../adapters/console/console-adapter.ts";
import { ConsoleSurface } from "../../adapters/console/console-surface.ts";
import { DiscordAdapter } from "../../adapters/discord/discord-adapter.ts";
import { telegramRedisPrefix } from "../../adapters/telegram/redis-budget.ts";
import { TelegramAdapter } from "../../adapters/telegram/telegram-adapter.ts";
import { commandServices } from "../../commands/types.ts";
import type { ReadinessCheck } from "./health.ts";
import { prepareLocalModel } from "./local-model-setup.ts";
import { prepareLocalMode } from "./local-setup.ts";
import {
  connectRedis,
  databaseCheck,
  loadProcessConfig,
  logQueueMetrics,
  openEngine,
  processEnv,
  redisCheck,
  startHealth,
  stopSignal,
} from "./runtime.ts";
import type { ProcessRole } from "./wiring.ts";

const log = (message: string) => process.stderr.write(`[inkloom] ${message}\n`);

async function main(): Promise<number> {
  // Local mode first: the first-run question, the runtime's install (src/app/local-setup.ts).
  const local = await prepareLocalMode({
    env: processEnv(),
    role: "front",
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  if ("exit" in local) return local.exit;
  const config = loadProcessConfig(local.env);
  if ("exit" in config) return config.exit;
  const hasBots = config.telegram !== undefined || config.discord !== undefined;
  // With REDIS_URL the bots' process is the front only; workers write the chapters.
  const role: ProcessRole = config.redis !== undefined && hasBots ? "front" : "all";
  // LOCAL_MODEL=default or hf:...: the model is downloaded now, unless it is on disk already.
  const model = await prepareLocalModel(config, log);
  if ("exit" in model) return model.exit;
  const engine = await openEngine(config, log, role);
  if ("exit" in engine) return engine.exit;
  const bots: Bot[] = [];
  // REDIS_URL: this process shares the bots' limits (and Telegram's updates) with the others.
  const redis = config.redis === undefined ? undefined : connectRedis(config.redis.url, log);
  const checks: ReadinessCheck[] = [databaseCheck(engine.db), ...(redis === undefined ? [] : [redisCheck(redis)])];
  if (config.telegram !== undefined) {
    // Keys under REDIS_PREFIX, so deployments (and test runs) sharing one Redis stay apart.
    const shared =
      redis === undefined || config.redis === undefined
        ? undefined
        : { redis, prefix: telegramRedisPrefix(config.telegram.token, config.redis.prefix) };
    const telegram = { ...config.telegram, ...(shared === undefined ? {} : { shared }) };
    bots.push({ name: "Telegram", ...bind(new TelegramAdapter(telegram, { ...engine, log })) });
  }
  if (config.discord !== undefined) {
    bots.push({ name: "Discord", ...bind(new DiscordAdapter(config.discord, { ...engine, log })) });
  }
  if (bots.length > 0) {
    for (const bot of bots) {
      try {
        await bot.start();
        log(`${bot.name} bot running`);
      } catch (error) {
        process.stderr.write(
          `${bot.name} did not accept the bot: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        for (const b of bots) await b.stop().catch((e: unknown) => log(`${b.name} did not stop cleanly: ${String(e)}`));
        await engine.close();
        redis?.disconnect();
        return 1;
      }
    }
    for (const bot of bots) checks.push({ name: bot.name.toLowerCase(), check: () => bot.ready() });
    const health = await startHealth(config, checks, role, log);
    const stopMetrics = logQueueMetrics(engine.queue, log);
    // A front runs no job: the workers resume what a crash interrupted.
    if (role === "all") await engine.resume();
    else log("front running: chapters are written by `npm run worker` processes");
    await stopSignal();
    // Stop taking events first, then let running chapters finish within the grace.
    for (const bot of bots)
      await bot.stop().catch((e: unknown) => log(`${bot.name} did not stop cleanly: ${String(e)}`));
    stopMetrics();
    await engine.close({ graceMs: config.shutdownGraceMs });
    await health?.close();
    await redis?.quit().catch(() => redis.disconnect());
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
      ...commandServices(engine),
      // The terminal's reader decides for themselves.
      ageRestricted: true,
      // One reader: the owner's theme catalogue is offered at /start.
      privateChat: true,
    },
    log,
  );
  // After the welcome: an interrupted chapter continues below it.
  const session = adapter.run();
  const health = await startHealth(config, checks, role, log);
  await engine.resume();
  await session;
  await engine.close();
  await health?.close();
  await redis?.quit().catch(() => redis.disconnect());
  process.stdout.write("\n");
  return 0;
}

interface Bot {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when the platform connection is up (readiness). */
  ready(): Promise<void>;
}

function bind(adapter: Omit<Bot, "name">): Omit<Bot, "name"> {
  return { start: () => adapter.start(), stop: () => adapter.stop(), ready: () => adapter.ready() };
}

main()
  .then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      log(`fatal: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  )
  // Once the first-run question has read standard input, a paused pipe may still be read
  // ahead; the process ends with main, not when its input does.
  .finally(() => process.stdin.destroy());
