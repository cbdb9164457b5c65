/**
 * The real Redis the BullMQ tests run against (TEST_REDIS_URL, default
 * redis://127.0.0.1:6390, which `.ci/run` starts). A test that needs Redis fails,
 * naming the URL, when none answers: it is never skipped silently. Each test gets
 * its own key prefix and deletes its keys afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6390";

/** A client for the test Redis; throws a message saying how to start one when it does not answer. */
export async function connectTestRedis(url: string = TEST_REDIS_URL): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new Error(
      `These tests need Redis at ${url} (TEST_REDIS_URL), which did not answer: ${String(error)}.\n` +
        "Start one with: redis-server --port 6390 --save '' --appendonly no --daemonize yes",
    );
  }
}

/** A fresh key prefix: tests sharing one Redis never see each other's jobs. */
export function testPrefix(): string {
  return `inkloom-test-${randomUUID().slice(0, 8)}`;
}

/** Delete every key under `prefix`. */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

/** A spare TCP port on this machine. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject()));
    });
  });
}

/**
 * A redis-server of the test's own, on a spare port, that the test may kill and start
 * again. With `appendonly` it writes every change to an append-only file before
 * answering, so a restart finds what was there.
 */
export class OwnRedis {
  readonly dir = mkdtempSync(join(tmpdir(), "inkloom-redis-"));
  private process: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly appendonly: boolean,
  ) {}

  static async start(options: { appendonly: boolean }): Promise<OwnRedis> {
    const server = new OwnRedis(await freePort(), options.appendonly);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", ""];
    args.push(...(this.appendonly ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
    const child = spawn("redis-server", args, { stdio: "ignore" });
    this.process = child;
    let spawnError: Error | undefined;
    child.once("error", (error) => {
      spawnError = error;
    });
    const end = Date.now() + 10_000;
    for (;;) {
      if (spawnError !== undefined) {
        throw new Error(
          `redis-server did not start (${spawnError.message}): install it with apt-get install redis-server`,
        );
      }
      try {
        (await connectTestRedis(this.url)).disconnect();
        return;
      } catch (error) {
        if (Date.now() > end) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** SIGKILL: no shutdown save, as a crash. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.process = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
