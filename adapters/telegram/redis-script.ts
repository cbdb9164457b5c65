/**
 * A Lua script run atomically in Redis: by its SHA1 (EVALSHA), sent whole (EVAL) only the
 * first time a server has not seen it. The shared Telegram budget and the update gate use
 * these so that a check and the write it allows are one step for every process.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

export class RedisScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash("sha1").update(lua).digest("hex");
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return await redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/** The server's clock in milliseconds, in Lua: one clock for every process. */
export const LUA_NOW =
  "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/** `work`, or a rejection once `ms` pass without its answer (a Redis that hangs is an outage too). */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Reports a Redis outage in the operator's log at most once a minute: what failed and what happens meanwhile. */
export class OutageLog {
  private last = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly log: (message: string) => void,
    private readonly what: string,
    private readonly meanwhile: string,
  ) {}

  report(step: string, error: unknown): void {
    const now = Date.now();
    if (now - this.last < 60_000) return;
    this.last = now;
    const reason = error instanceof Error ? error.message : String(error);
    this.log(
      `telegram: ${this.what} in Redis failed (${step}: ${reason}); ${this.meanwhile} until Redis answers again`,
    );
  }
}
