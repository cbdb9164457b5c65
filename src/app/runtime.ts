/**
 * What every long-running process shares (the front, `npm start`, and the worker, `npm run
 * worker`): the Redis connection for shared state, the health server, the queue metrics
 * logged every minute, and waiting for a stop signal.
 */

import { existsSync } from "node:fs";
import { Redis } from "ioredis";
import type { JobQueue, QueueMetrics } from "../jobs/job-queue.ts";
import { JobQueueUnavailableError } from "../jobs/job-queue.ts";
import type { Db } from "../store/db.ts";
import { DatabaseOpenError } from "../store/db.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { type HealthServer, type ReadinessCheck, startHealthServer } from "./health.ts";
import { createEngine, type Engine, type ProcessRole } from "./wiring.ts";

export type Log = (message: string) => void;

/** A process that cannot start: the status it exits with (its reason is on standard error). */
export interface ExitStatus {
  exit: number;
}

/** The process's environment, with `.env` applied when there is one. */
export function processEnv(): NodeJS.ProcessEnv {
  if (existsSync(".env")) process.loadEnvFile(".env");
  return process.env;
}

/** The configuration from `env` (`.env` and the environment); exit status 2 with the reason when it is wrong. */
export function loadProcessConfig(env: Record<string, string | undefined> = processEnv()): Config | ExitStatus {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return { exit: 2 };
  }
}

/**
 * The engine in this role; exit status 1 with the reason when its database or queue cannot
 * be opened, 2 when a stored model route cannot be served (a `local:` adapter, say).
 */
export async function openEngine(config: Config, log: Log, role: ProcessRole): Promise<Engine | ExitStatus> {
  try {
    return await createEngine(config, log, { role });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return { exit: 2 };
    }
    if (!(error instanceof DatabaseOpenError) && !(error instanceof JobQueueUnavailableError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return { exit: 1 };
  }
}

/** How often the queue metrics are logged. */
export const METRICS_INTERVAL_MS = 60_000;

/** The Redis connection shared state goes through; its errors are logged (once each in a row), never thrown. */
export function connectRedis(url: string, log: Log): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 2 });
  let last = "";
  redis.on("error", (error: Error) => {
    if (error.message !== last) log(`redis: ${error.message}`);
    last = error.message;
  });
  redis.on("ready", () => {
    last = "";
  });
  return redis;
}

/** Readiness of the database: one trivial query. */
export function databaseCheck(db: Db): ReadinessCheck {
  return {
    name: "database",
    check: async () => {
      await db.$queryRawUnsafe("SELECT 1");
    },
  };
}

/** Readiness of Redis: a PING answered. */
export function redisCheck(redis: Redis): ReadinessCheck {
  return {
    name: "redis",
    check: async () => {
      const answer = await redis.ping();
      if (answer !== "PONG") throw new Error(`redis answered ${answer}`);
    },
  };
}

/** Start the health server when HEALTH_PORT is set. */
export async function startHealth(
  config: Pick<Config, "healthPort">,
  checks: readonly ReadinessCheck[],
  role: string,
  log: Log,
): Promise<HealthServer | undefined> {
  if (config.healthPort === undefined) return undefined;
  const server = await startHealthServer(config.healthPort, checks, { role });
  log(`health: /healthz and /readyz on port ${server.port}`);
  return server;
}

/** One line of queue metrics: `chapters waiting=0 active=2 delayed=0 failed=0 stalled=0; ...`. */
export function formatMetrics(metrics: readonly QueueMetrics[]): string {
  return metrics
    .map(
      (m) =>
        `${m.queue} waiting=${m.waiting} active=${m.active} delayed=${m.delayed} failed=${m.failed} stalled=${m.stalled}`,
    )
    .join("; ");
}

/** Log the queues' metrics every `intervalMs`; returns the function that stops it. */
export function logQueueMetrics(queue: Pick<JobQueue, "metrics">, log: Log, intervalMs = METRICS_INTERVAL_MS) {
  const timer = setInterval(() => {
    queue.metrics().then(
      (metrics) => log(`queues: ${formatMetrics(metrics)}`),
      (error: unknown) => log(`queues: metrics unavailable: ${error instanceof Error ? error.message : String(error)}`),
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Resolves on the first SIGINT or SIGTERM. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(signal);
    };
    process.once("SIGINT", on);
    process.once("SIGTERM", on);
  });
}
