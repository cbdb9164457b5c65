/**
 * Telegram updates received by several fronts (webhook mode behind a load balancer, with
 * REDIS_URL): each update is handled once, and one chat's updates in the order Telegram
 * sent them, whichever fronts they reached.
 *
 * - Once: `SET <p>:update:<update_id> NX EX 86400`. Telegram sends an update again when
 *   the answer was slow or lost, possibly to another front; the front that set the key
 *   handles it, the others drop it.
 * - In order: Telegram sends a chat's next update only after the previous one was
 *   answered, and the front takes the update's turn (`INCR <p>:chat:<id>:line`) before it
 *   answers, so turns follow Telegram's order. A turn is handled once every earlier turn
 *   of the chat is done (`<p>:chat:<id>:served`), on any front: a waiting front polls.
 * - A front that dies leaves turns it never finishes: each turn holds a lease
 *   (`<p>:chat:<id>:turn:<n>`) that its front renews while the turn waits or runs, and a
 *   turn whose lease ran out is passed over, so the chat's later updates go on.
 *
 * When Redis does not answer, an update is handled on this front without these guarantees
 * (and the outage logged once a minute) rather than dropped.
 */
import type { Redis } from "ioredis";
import { OutageLog, RedisScript, withTimeout } from "./redis-script.ts";

export interface UpdateGateOptions {
  /** Key prefix; `telegramRedisPrefix(token)` for a bot. Every front of the bot must use the same. */
  prefix: string;
  /** How long an update id is remembered. Default 86 400 s (Telegram keeps updates 24 h). */
  dedupeSeconds?: number;
  /** A turn whose front stopped renewing it for this long is passed over. Default 10 000 ms. */
  leaseMs?: number;
  /** How often a waiting turn looks whether the chat's earlier turns are done. Default 20 ms. */
  pollMs?: number;
  /** Redis answers slower than this count as an outage. Default 2000 ms. */
  timeoutMs?: number;
  log?: (message: string) => void;
}

/** One update's place in its chat's line. */
export interface Turn {
  /** Resolves once every earlier update of the chat has been handled (on any front). */
  ready(): Promise<void>;
  /** This update is handled: the chat's next one may go. */
  done(): Promise<void>;
}

/** How long a chat's line (its counters) outlives its last update. */
const LINE_TTL_MS = 86_400_000;

/**
 * KEYS: update, line, served. ARGV: dedupe seconds, lease ms, turn key prefix, line ttl.
 * -1: taken already; 0: taken, no chat; n > 0: taken, the chat's turn n.
 */
const ADMIT = new RedisScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return -1 end
if #KEYS < 2 then return 0 end
local turn = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
-- A new line (or one whose counter outlived it) starts with every earlier turn done.
if turn == 1 or redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], turn - 1) end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('SET', ARGV[3] .. turn, '1', 'PX', ARGV[2])
return turn
`);

/**
 * KEYS: served. ARGV: turn, turn key prefix, line ttl. 1 when every turn before it is done,
 * passing over turns whose lease ran out (their front died); 0 otherwise.
 */
const READY = new RedisScript(`
local turn = tonumber(ARGV[1])
local served = tonumber(redis.call('GET', KEYS[1]) or '0')
local skipped = false
while served < turn - 1 do
  if redis.call('EXISTS', ARGV[2] .. (served + 1)) == 1 then
    if skipped then redis.call('SET', KEYS[1], served, 'PX', ARGV[3]) end
    return 0
  end
  served = served + 1
  skipped = true
end
if skipped then redis.call('SET', KEYS[1], served, 'PX', ARGV[3]) end
return 1
`);

/** KEYS: served, turn. ARGV: turn, line ttl. */
const DONE = new RedisScript(`
local served = tonumber(redis.call('GET', KEYS[1]) or '0')
if served < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('DEL', KEYS[2])
return 1
`);

export class RedisUpdateGate {
  private readonly prefix: string;
  private readonly dedupeSeconds: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly timeoutMs: number;
  private readonly outages: OutageLog;

  constructor(
    private readonly redis: Redis,
    options: UpdateGateOptions,
  ) {
    this.prefix = options.prefix;
    this.dedupeSeconds = options.dedupeSeconds ?? 86_400;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.pollMs = options.pollMs ?? 20;
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.outages = new OutageLog(
      options.log ?? (() => {}),
      "the update gate",
      "updates are handled on this front without de-duplication or cross-front order",
    );
  }

  /**
   * Take the update: "duplicate" when another front (or an earlier delivery) took it; its
   * chat's turn when it has a chat; undefined when it has none, or Redis did not answer.
   */
  async admit(updateId: number, chatId: number | undefined): Promise<Turn | "duplicate" | undefined> {
    const update = `${this.prefix}:update:${updateId}`;
    const chat = `${this.prefix}:chat:${chatId}`;
    const keys = chatId === undefined ? [update] : [update, `${chat}:line`, `${chat}:served`];
    let reply: unknown;
    try {
      reply = await withTimeout(
        ADMIT.run(this.redis, keys, [this.dedupeSeconds, this.leaseMs, `${chat}:turn:`, LINE_TTL_MS]),
        this.timeoutMs,
      );
    } catch (error) {
      this.outages.report("admit", error);
      return undefined;
    }
    if (reply === -1) return "duplicate";
    if (chatId === undefined || typeof reply !== "number" || reply < 1) return undefined;
    return this.turn(chat, reply);
  }

  private turn(chat: string, n: number): Turn {
    const lease = `${chat}:turn:${n}`;
    const served = `${chat}:served`;
    // Renewed until done, from the moment it was taken: while it waits behind other fronts too.
    const renew = setInterval(() => {
      this.redis.pexpire(lease, this.leaseMs).catch((error: unknown) => this.outages.report("renew", error));
    }, this.leaseMs / 3);
    renew.unref();
    return {
      ready: async () => {
        for (;;) {
          try {
            const ready = await withTimeout(
              READY.run(this.redis, [served], [n, `${chat}:turn:`, LINE_TTL_MS]),
              this.timeoutMs,
            );
            if (ready === 1) return;
          } catch (error) {
            // Without Redis the order cannot be known: handle it rather than hold the chat.
            this.outages.report("ready", error);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, this.pollMs));
        }
      },
      done: async () => {
        clearInterval(renew);
        try {
          await withTimeout(DONE.run(this.redis, [served, lease], [n, LINE_TTL_MS]), this.timeoutMs);
        } catch (error) {
          // Its lease runs out instead, and the next turn is let through then.
          this.outages.report("done", error);
        }
      },
    };
  }
}
