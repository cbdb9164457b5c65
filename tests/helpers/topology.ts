/**
 * How a test pass runs the engine. `npm test`: SQLite and the in-process queue, one
 * process. `npm run test:postgres` (TEST_QUEUE=bullmq): PostgreSQL and BullMQ on the
 * test Redis, each test under a fresh key prefix; the end-to-end suites run a front
 * in the test and two `npm run worker` processes beside it (startTestWorkers).
 *
 * Integration suites that watch a FakeSurface in the test's memory keep the jobs in
 * their own process (role "all" on BullMQ): a worker in another process could not
 * draw on it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { type Config, loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine, jobLanes } from "../../src/app/wiring.ts";
import { InProcessJobQueue } from "../../src/jobs/in-process-queue.ts";
import type { JobQueue } from "../../src/jobs/job-queue.ts";
import { testPrefix, testRedisUrl } from "./redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");

export type TestQueueKind = "in-process" | "bullmq";

/** This pass's job queue: TEST_QUEUE=bullmq, else the in-process one. */
export function testQueueKind(): TestQueueKind {
  const wanted = process.env.TEST_QUEUE ?? "in-process";
  if (wanted === "in-process" || wanted === "bullmq") return wanted;
  throw new Error(`TEST_QUEUE must be in-process or bullmq, not ${wanted}`);
}

/**
 * The environment that puts an engine on this pass's queue: nothing for the in-process
 * one, REDIS_URL and a fresh REDIS_PREFIX for BullMQ. Spread it into `loadConfig`; give
 * the same object to every process of one test so they share the queue: or name a
 * `scope` (the test's folder), and every call with it gives the same.
 */
export function queueEnv(scope?: string): Record<string, string> {
  if (testQueueKind() === "in-process") return {};
  if (scope === undefined) return { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix() };
  let env = scoped.get(scope);
  if (env === undefined) {
    env = queueEnv();
    scoped.set(scope, env);
  }
  return env;
}

/** queueEnv by scope: one queue for everything one test starts (a test's folder, say). */
const scoped = new Map<string, Record<string, string>>();

/** A job queue for a test that builds the services by hand, on this pass's queue. */
export async function createTestQueue(options: { concurrency?: number } = {}): Promise<JobQueue> {
  if (testQueueKind() === "in-process") return new InProcessJobQueue(options);
  const { BullMqJobQueue } = await import("../../src/jobs/bullmq-queue.ts");
  return BullMqJobQueue.open({
    url: testRedisUrl(),
    prefix: testPrefix(),
    lanes: jobLanes(options.concurrency ?? 4),
    idlePollMs: 20,
  });
}

export interface TestWorkers {
  /** Everything the workers printed. */
  output(): string;
  /** SIGTERM, then wait for them to exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

/**
 * `count` `npm run worker` processes with `env` (which holds REDIS_URL), resolved
 * once each printed that it runs. In the in-process pass there are none: the engine
 * in the test writes the chapters itself.
 */
export async function startTestWorkers(
  env: Record<string, string>,
  count = 2,
  /** Given each line a worker logs. */
  log: (line: string) => void = () => {},
): Promise<TestWorkers> {
  if (env.REDIS_URL === undefined) return { output: () => "", stop: async () => {} };
  const children: { child: ChildProcess; exited: Promise<void> }[] = [];
  let output = "";
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, ["--import", "tsx", "src/app/worker.ts"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let partial = "";
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) log(line);
    };
    child.stdout?.on("data", take);
    child.stderr?.on("data", take);
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    children.push({ child, exited });
  }
  const workers: TestWorkers = {
    output: () => output,
    async stop() {
      for (const { child } of children) if (child.exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => {
        for (const { child } of children) if (child.exitCode === null) child.kill("SIGKILL");
      }, 15_000);
      await Promise.all(children.map((c) => c.exited));
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 30_000;
  while ((output.match(/worker running/g) ?? []).length < count) {
    const dead = children.find((c) => c.child.exitCode !== null);
    if (dead !== undefined || Date.now() > deadline) {
      await workers.stop();
      throw new Error(`the test workers did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return workers;
}

/** A platform adapter as the front runs it. */
interface FrontAdapter {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestFront<B extends FrontAdapter> {
  engine: Engine;
  bot: B;
  /** The `npm run worker` processes beside it when `env` holds REDIS_URL (none otherwise). */
  workers: TestWorkers;
}

/**
 * The bot as `npm start` runs it, from the environment it would see: the engine (the front
 * only, with two worker processes beside it, when `env` holds REDIS_URL) and the platform
 * adapter `adapter` makes, started. Stop it with stopTestFront.
 */
export async function launchTestFront<B extends FrontAdapter>(
  env: Record<string, string>,
  log: (message: string) => void,
  adapter: (config: Config, engine: Engine) => B,
): Promise<TestFront<B>> {
  const config = loadConfig(env);
  const workers = await startTestWorkers(env, 2, log);
  const engine = await createEngine(config, log, { role: config.redis === undefined ? "all" : "front" });
  try {
    const bot = adapter(config, engine);
    await bot.start();
    return { engine, bot, workers };
  } catch (error) {
    await engine.close();
    await workers.stop();
    throw error;
  }
}

/** Stop what launchTestFront started: the platform first, then the engine and the workers. */
export async function stopTestFront(front: TestFront<FrontAdapter>): Promise<void> {
  await front.bot.stop();
  await front.engine.close();
  await front.workers.stop();
}
