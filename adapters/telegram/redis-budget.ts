/**
 * Telegram's flood limits shared by every process of one bot, in Redis (REDIS_URL): fronts
 * answering readers and workers streaming chapters all send as the same bot, and Telegram
 * counts them together. `TelegramOutbox` asks this budget before each call (`shared`
 * option); without Redis the outbox paces alone, as it always did.
 *
 * Keys (all under one prefix, `inkloom:{tg:<bot id>}` by default: the braces keep one bot's
 * keys in one Redis Cluster slot, so each script touches one slot):
 * - `<p>:chat:<chat id>`  sorted set: the chat's calls (score: when each finished)
 * - `<p>:bot`             sorted set: the bot's calls, every chat
 * - `<p>:chat:<chat id>:until`, `<p>:bot:until`  "paused until" (ms) after a 429
 * - `<p>:429`             sorted set: chats answered 429 in the last second
 *
 * The windows are sliding logs, as Telegram counts (and as the in-process outbox does), not
 * rate-limiter-flexible's fixed windows: a fixed minute lets 20 group messages at its end
 * and 20 at the start of the next one through in a few seconds, and Telegram refuses that.
 * A call takes its place when it starts, scored at the end of a lease while in flight, and
 * counts from when it finished once settled: Telegram counts a call when it arrives,
 * somewhere between the two, so spacing from completion cannot be refused however the
 * network delays a request. One script checks the chat's pause, interval and group minute
 * and the bot's pause and second, and takes the place only when all have room, so no
 * budget is spent for a call that then waits for another.
 *
 * A refused take says how long to wait (exactly, or `pollMs` while the call ahead is still
 * in flight): the outbox waits that long and asks again. A 429 pauses the chat for every
 * process for `retry_after`; 429s in three chats within a second pause the whole bot,
 * because that is the bot-wide limit answering. Redis's clock is the one clock.
 *
 * When Redis does not answer (an error, or `timeoutMs`), the call goes ahead on this
 * process's own limits and the outage is logged once a minute: delivery degrades to the
 * single-process pacing (and 429s are still waited out) rather than stopping.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { type ChatId, type ChatKind, OUTBOX_DEFAULTS, type SharedBudget, type SharedTake } from "./outbox.ts";
import { LUA_NOW, OutageLog, RedisScript, withTimeout } from "./redis-script.ts";

export interface RedisBudgetOptions {
  /** Key prefix; `telegramRedisPrefix(token)` for a bot. Every process of the bot must use the same. */
  prefix: string;
  /** Minimum time between one call's completion and the next call's start, in one chat. Default 1000. */
  perChatIntervalMs?: number;
  /** Calls per `groupWindowMs` in a group. Default 20. */
  groupPerMinute?: number;
  /** The group window. Default 60 000 (Telegram's minute); shorter in tests. */
  groupWindowMs?: number;
  /** Calls per sliding second for the whole bot, in flight included. Default 30. */
  globalPerSecond?: number;
  /** The longest a call in flight holds its place (a process that died mid-call releases it then). Default 30 000. */
  leaseMs?: number;
  /** How soon a waiter asks again while the call ahead of it is still in flight. Default 50. */
  pollMs?: number;
  /** Redis answers slower than this count as an outage. Default 2000. */
  timeoutMs?: number;
  /** Operator messages (outages, bot-wide pauses). */
  log?: (message: string) => void;
}

/** 429s in this many chats within `BOT_PAUSE_WINDOW_MS` pause the whole bot. */
const BOT_PAUSE_CHATS = 3;
const BOT_PAUSE_WINDOW_MS = 1_000;
/** The bot-wide window. */
const SECOND_MS = 1_000;

/** The key prefix of a bot (its numeric id, never the token's secret part). */
export function telegramRedisPrefix(token: string, namespace = "inkloom"): string {
  return `${namespace}:{tg:${token.split(":")[0] ?? "bot"}}`;
}

const WINDOW = `
-- How long until key holds fewer than limit calls in the last span ms (0: now). A call in
-- flight is scored at its lease's end: it counts until it settles, and a waiter behind it
-- looks again after poll ms rather than at the lease's end.
local function window(key, span, limit, poll)
  local from = string.format('(%d', now - span)
  local n = redis.call('ZCOUNT', key, from, '+inf')
  if n < limit then return 0 end
  local oldest = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', n - limit, 1)
  local at = tonumber(oldest[2])
  if at > now then return poll end
  return at + span - now
end
local function paused(key)
  local at = tonumber(redis.call('GET', key) or '0')
  if at > now then return at - now end
  return 0
end
`;

/**
 * KEYS: chat log, chat pause, bot log, bot pause. ARGV: member, group (1/0), interval,
 * group limit, group window, global limit, lease, poll.
 * Returns {1, now} when taken, {0, wait ms, 1 (chat) | 2 (bot)} when not.
 */
const TAKE = new RedisScript(`${LUA_NOW}${WINDOW}
local member, group = ARGV[1], ARGV[2] == '1'
local interval, groupLimit, groupWindow = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local globalLimit, lease, poll = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local wait = paused(KEYS[4])
if wait > 0 then return {0, wait, 2} end
wait = paused(KEYS[2])
if wait > 0 then return {0, wait, 1} end
if interval > 0 then wait = window(KEYS[1], interval, 1, poll) end
if wait == 0 and group then wait = window(KEYS[1], groupWindow, groupLimit, poll) end
if wait > 0 then return {0, wait, 1} end
wait = window(KEYS[3], ${SECOND_MS}, globalLimit, poll)
if wait > 0 then return {0, wait, 2} end
local held = now + lease
local span = math.max(interval, groupWindow)
redis.call('ZADD', KEYS[1], held, member)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
redis.call('PEXPIRE', KEYS[1], span + lease)
redis.call('ZADD', KEYS[3], held, member)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ${SECOND_MS})
redis.call('PEXPIRE', KEYS[3], ${SECOND_MS} + lease)
return {1, now}
`);

/** KEYS: chat log, bot log. ARGV: member. The call finished now: it counts from here. */
const SETTLE = new RedisScript(`${LUA_NOW}
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', now, ARGV[1])
return now
`);

/**
 * KEYS: chat pause, bot pause, recent 429s. ARGV: chat id, ms, chats, window.
 * Returns 1 when the whole bot paused too.
 */
const PAUSE = new RedisScript(`${LUA_NOW}
local ms = tonumber(ARGV[2])
local untilAt = now + ms
local function extend(key)
  local at = tonumber(redis.call('GET', key) or '0')
  if untilAt > at then redis.call('SET', key, string.format('%d', untilAt), 'PX', ms) end
end
extend(KEYS[1])
local window = tonumber(ARGV[4])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  extend(KEYS[2])
  return 1
end
return 0
`);

export class RedisTelegramBudget implements SharedBudget {
  private readonly prefix: string;
  private readonly limits: {
    interval: number;
    groupLimit: number;
    groupWindow: number;
    globalLimit: number;
    lease: number;
    poll: number;
    timeout: number;
  };
  private readonly log: (message: string) => void;
  /** This process's part of every member name. */
  private readonly tag = randomUUID().slice(0, 8);
  private seq = 0;
  private readonly outages: OutageLog;

  constructor(
    private readonly redis: Redis,
    options: RedisBudgetOptions,
  ) {
    this.prefix = options.prefix;
    this.limits = {
      interval: options.perChatIntervalMs ?? OUTBOX_DEFAULTS.perChatIntervalMs,
      groupLimit: options.groupPerMinute ?? OUTBOX_DEFAULTS.groupPerMinute,
      groupWindow: options.groupWindowMs ?? 60_000,
      globalLimit: options.globalPerSecond ?? OUTBOX_DEFAULTS.globalPerSecond,
      lease: options.leaseMs ?? 30_000,
      poll: options.pollMs ?? 50,
      timeout: options.timeoutMs ?? 2_000,
    };
    const { interval, groupLimit, groupWindow, globalLimit, lease, poll, timeout } = this.limits;
    if (!(groupLimit >= 1 && globalLimit >= 1 && groupWindow >= 1 && lease >= 1 && poll >= 1 && timeout >= 1)) {
      throw new RangeError("RedisTelegramBudget: limits, windows, lease, poll and timeout must be at least 1");
    }
    if (!(interval >= 0)) throw new RangeError("RedisTelegramBudget: perChatIntervalMs must not be negative");
    this.log = options.log ?? (() => {});
    this.outages = new OutageLog(this.log, "the shared send budget", "this process paces by its own limits");
  }

  async take(chatId: ChatId, kind: ChatKind): Promise<SharedTake> {
    const member = `${this.tag}:${this.seq++}`;
    const { interval, groupLimit, groupWindow, globalLimit, lease, poll } = this.limits;
    try {
      const reply = await withTimeout(
        TAKE.run(
          this.redis,
          [this.key(`chat:${chatId}`), this.key(`chat:${chatId}:until`), this.key("bot"), this.key("bot:until")],
          [member, kind === "group" ? 1 : 0, interval, groupLimit, groupWindow, globalLimit, lease, poll],
        ),
        this.limits.timeout,
      );
      const [taken, waitMs, scope] = reply as [number, number, number?];
      if (taken !== 1) return { granted: false, waitMs, scope: scope === 2 ? "bot" : "chat" };
      return { granted: true, settle: () => this.settle(chatId, member) };
    } catch (error) {
      this.outages.report("take", error);
      return { granted: true, settle: async () => {} };
    }
  }

  async pause(chatId: ChatId, ms: number): Promise<void> {
    try {
      const bot = await withTimeout(
        PAUSE.run(
          this.redis,
          [this.key(`chat:${chatId}:until`), this.key("bot:until"), this.key("429")],
          [String(chatId), Math.max(1, Math.ceil(ms)), BOT_PAUSE_CHATS, BOT_PAUSE_WINDOW_MS],
        ),
        this.limits.timeout,
      );
      if (bot === 1) {
        this.log(
          `telegram: 429 in ${BOT_PAUSE_CHATS} chats within a second: every process pauses the bot for ${Math.ceil(ms / 1000)} s`,
        );
      }
    } catch (error) {
      this.outages.report("pause", error);
    }
  }

  private async settle(chatId: ChatId, member: string): Promise<void> {
    try {
      await withTimeout(
        SETTLE.run(this.redis, [this.key(`chat:${chatId}`), this.key("bot")], [member]),
        this.limits.timeout,
      );
    } catch (error) {
      // The place stays held until its lease ends: later calls wait longer, none goes early.
      this.outages.report("settle", error);
    }
  }

  private key(suffix: string): string {
    return `${this.prefix}:${suffix}`;
  }
}
