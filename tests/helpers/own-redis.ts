/**
 * A redis-server of a test's (or a test run's) own, on a spare port. Free of vitest, so
 * the global setup can use it too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

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
        await ping(this.url);
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

async function ping(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
}
