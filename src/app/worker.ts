import { REST } from "discord.js";
import { Telegram } from "telegraf";
import { discordAudiences } from "../../adapters/discord/surfaces.ts";
import { telegramRedisPrefix } from "../../adapters/telegram/redis-budget.ts";
import { telegramAudiences, telegramOutboxFor } from "../../adapters/telegram/surfaces.ts";
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

const log = (message: string) => process.stderr.write(`[inkloom worker] ${message}\n`);

async function main(): Promise<number> {
  // LOCAL_MODEL: the runtime is installed if missing; a worker never asks (src/app/local-setup.ts).
  const local = await prepareLocalMode({
    env: processEnv(),
    role: "worker",
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  if ("exit" in local) return local.exit;
  const config = loadProcessConfig(local.env);
  if ("exit" in config) return config.exit;
  if (config.redis === undefined) {
    process.stderr.write(
      "npm run worker needs REDIS_URL (the queue it takes jobs from). Without it, npm start runs everything in one process.\n",
    );
    return 2;
  }
  // LOCAL_MODEL=default or hf:...: the model is downloaded now, unless it is on disk already.
  const model = await prepareLocalModel(config, log);
  if ("exit" in model) return model.exit;
  const engine = await openEngine(config, log, "worker");
  if ("exit" in engine) return engine.exit;
  const redis = connectRedis(config.redis.url, log);
  // Where stories are shown, reached over the platforms' REST APIs alone.
  const outbox =
    config.telegram === undefined
      ? undefined
      : telegramOutboxFor(config.telegram.token, log, {
          redis,
          prefix: telegramRedisPrefix(config.telegram.token, config.redis.prefix),
        });
  if (config.telegram !== undefined && outbox !== undefined) {
    const telegram = new Telegram(config.telegram.token, { apiRoot: config.telegram.apiRoot });
    engine.audiences.platform("telegram", telegramAudiences(telegram, outbox, engine.settings, log));
  }
  if (config.discord !== undefined) {
    const rest = new REST({ api: config.discord.apiRoot }).setToken(config.discord.token);
    engine.audiences.platform("discord", discordAudiences(rest, engine.settings, log));
  }
  const health = await startHealth(config, [databaseCheck(engine.db), redisCheck(redis)], "worker", log);
  const stopMetrics = logQueueMetrics(engine.queue, log);
  await engine.resume();
  log(`worker running (${config.redis.workerConcurrency} chapters at once)`);
  const signal = await stopSignal();
  log(`${signal}: finishing running jobs (up to ${config.shutdownGraceMs / 1000} s), then handing the rest back`);
  stopMetrics();
  await engine.close({ graceMs: config.shutdownGraceMs });
  await outbox?.close();
  await health?.close();
  await redis.quit().catch(() => redis.disconnect());
  log("worker stopped");
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
