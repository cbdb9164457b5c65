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
 * - `<p>:bot:queue`       sorted set: waiters promised a place in the bot's second (score: when)
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
 * A refused take says how long to wait, and the outbox sleeps that long before it asks again:
 * no waiter polls. The wait is exact when the call that must leave the window has settled
 * (its score plus the window); while it is still in flight its end is unknown, but it counts
 * for a whole window after it settles, so the wait is the window: a lower bound, after which
 * one more take learns the exact rest. A waiter therefore asks about twice per call, whatever
 * the wait. (Waking on a release through pub/sub would save that second take only for calls
 * in flight longer than the window, and costs every process a subscriber connection.)
 *
 * The bot's second is shared by every process, so when it is spent all of them wait for the
 * same freed place, and told the same time they would all ask at once and all but one be
 * refused again. Instead a waiter refused there is promised a place in a queue: it is told
 * the time the place for its rank frees (the k-th call to leave the window, k counting the
 * waiters ahead), and a place due to a waiter is kept for it (`QUEUE_GRACE_MS` after its
 * time, so a waiter that died costs little): a take without a due promise ahead of it is
 * granted only when the window has room besides the promised places. Promises only ever
 * refuse more, so the limits stay exact. The budget keeps its promises (tickets) and hands
 * the earliest to its next take; a grant says when it took the last free place (`full`), and
 * the outbox then asks one call at a time until the bot has room again.
 *
 * A 429 pauses the chat for every process for `retry_after`; 429s in three chats within a
 * second pause the whole bot, because that is the bot-wide limit answering. Redis's clock is
 * the one clock.
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
/**
 * How long past its time a waiter's promised place in the bot's second stays kept for it: the
 * waiter's timer and round trip must fit; a waiter later than this (or gone) loses it.
 */
export const QUEUE_GRACE_MS = 250;

/** The key prefix of a bot (its numeric id, never the token's secret part). */
export function telegramRedisPrefix(token: string, namespace = "inkloom"): string {
  return `${namespace}:{tg:${token.split(":")[0] ?? "bot"}}`;
}

const WINDOW = `
-- The score of the k-th (1-based) call to leave key's window of span ms, or nil when there are
-- fewer. A call in flight is scored at its lease's end.
local function leaving(key, span, k)
  local e = redis.call('ZRANGEBYSCORE', key, string.format('(%d', now - span), '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
  return tonumber(e[2])
end
-- How long until a call fits in key's window once the k-th call in it has left (0: now). A call
-- in flight counts for span after it settles, which is now or later: span is then the least
-- wait, and the waiter asks again for the rest rather than polling.
local function wait_for(key, span, k)
  if k <= 0 then return 0 end
  local at = leaving(key, span, k)
  if at == nil or at > now then return span end
  return math.max(1, at + span - now)
end
-- How long until key holds fewer than limit calls in the last span ms (0: now).
local function window(key, span, limit)
  local n = redis.call('ZCOUNT', key, string.format('(%d', now - span), '+inf')
  return wait_for(key, span, n - limit + 1)
end
local function paused(key)
  local at = tonumber(redis.call('GET', key) or '0')
  if at > now then return at - now end
  return 0
end
`;

/**
 * KEYS: chat log, chat pause, bot log, bot pause, bot queue. ARGV: member, group (1/0),
 * interval, group limit, group window, global limit, lease, ticket, ticket held before (1/0),
 * queue grace.
 * Returns {1, now, full (1/0)} when taken, {0, wait ms, 1 (chat) | 2 (bot)} when not; a wait
 * for the bot's second promises the ticket that place.
 */
const TAKE = new RedisScript(`${LUA_NOW}${WINDOW}
local member, group = ARGV[1], ARGV[2] == '1'
local interval, groupLimit, groupWindow = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local globalLimit, lease, ticket, holding = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9] == '1'
local grace = tonumber(ARGV[10])
local wait = paused(KEYS[4])
if wait > 0 then return {0, wait, 2} end
wait = paused(KEYS[2])
if wait > 0 then return {0, wait, 1} end
if interval > 0 then wait = window(KEYS[1], interval, 1) end
if wait == 0 and group then wait = window(KEYS[1], groupWindow, groupLimit) end
if wait > 0 then return {0, wait, 1} end

-- Promises older than the grace are void: every count below starts after them.
local queue, live = KEYS[5], string.format('(%d', now - grace)
local mine = nil
if holding then
  mine = redis.call('ZSCORE', queue, ticket)
  if mine then mine = tonumber(mine) else mine = nil end
  if mine ~= nil and mine <= now - grace then mine = nil end
end
-- Waiters whose places are due and come before this caller keep them.
local dueBefore = string.format('%d', now)
if mine ~= nil and mine <= now then dueBefore = string.format('(%d', mine) end
local kept = redis.call('ZCOUNT', queue, live, dueBefore)
local n = redis.call('ZCOUNT', KEYS[3], string.format('(%d', now - ${SECOND_MS}), '+inf')
if n + kept >= globalLimit then
  if mine ~= nil and mine > now then return {0, mine - now, 2} end
  local ahead
  if mine ~= nil then
    ahead = redis.call('ZCOUNT', queue, live, string.format('(%d', mine))
  else
    ahead = redis.call('ZCOUNT', queue, live, '+inf')
  end
  wait = wait_for(KEYS[3], ${SECOND_MS}, n + ahead + 1 - globalLimit)
  if wait == 0 then wait = 1 end
  redis.call('ZREMRANGEBYSCORE', queue, '-inf', now - grace)
  redis.call('ZADD', queue, now + wait, ticket)
  -- No promise is further than a window ahead.
  redis.call('PEXPIRE', queue, ${SECOND_MS} + grace)
  return {0, wait, 2}
end

if mine ~= nil then redis.call('ZREM', queue, ticket) end
local held = now + lease
local span = math.max(interval, groupWindow)
redis.call('ZADD', KEYS[1], held, member)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
redis.call('PEXPIRE', KEYS[1], span + lease)
redis.call('ZADD', KEYS[3], held, member)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ${SECOND_MS})
redis.call('PEXPIRE', KEYS[3], ${SECOND_MS} + lease)
if n + 1 + kept >= globalLimit then return {1, now, 1} end
return {1, now, 0}
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
    timeout: number;
  };
  private readonly log: (message: string) => void;
  /** This process's part of every member name. */
  private readonly tag = randomUUID().slice(0, 8);
  private seq = 0;
  /** This process's promised places in the bot's second: ticket -> when due (local clock). */
  private readonly tickets = new Map<string, number>();
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
      timeout: options.timeoutMs ?? 2_000,
    };
    const { interval, groupLimit, groupWindow, globalLimit, lease, timeout } = this.limits;
    if (!(groupLimit >= 1 && globalLimit >= 1 && groupWindow >= 1 && lease >= 1 && timeout >= 1)) {
      throw new RangeError("RedisTelegramBudget: limits, windows, lease and timeout must be at least 1");
    }
    if (!(interval >= 0)) throw new RangeError("RedisTelegramBudget: perChatIntervalMs must not be negative");
    this.log = options.log ?? (() => {});
    this.outages = new OutageLog(this.log, "the shared send budget", "this process paces by its own limits");
  }

  async take(chatId: ChatId, kind: ChatKind): Promise<SharedTake> {
    const member = `${this.tag}:${this.seq++}`;
    const [ticket, due] = this.checkOutTicket();
    const { interval, groupLimit, groupWindow, globalLimit, lease } = this.limits;
    try {
      const reply = await withTimeout(
        TAKE.run(
          this.redis,
          [
            this.key(`chat:${chatId}`),
            this.key(`chat:${chatId}:until`),
            this.key("bot"),
            this.key("bot:until"),
            this.key("bot:queue"),
          ],
          [
            member,
            kind === "group" ? 1 : 0,
            interval,
            groupLimit,
            groupWindow,
            globalLimit,
            lease,
            ticket,
            due === undefined ? 0 : 1,
            QUEUE_GRACE_MS,
          ],
        ),
        this.limits.timeout,
      );
      const [taken, waitOrNow, flag] = reply as [number, number, number];
      if (taken !== 1) {
        // A refusal by the bot's second promised the ticket a place; the chat's left its promise as it was.
        if (flag === 2) this.tickets.set(ticket, Date.now() + waitOrNow);
        else if (due !== undefined) this.tickets.set(ticket, due);
        return { granted: false, waitMs: waitOrNow, scope: flag === 2 ? "bot" : "chat" };
      }
      return { granted: true, full: flag === 1, settle: () => this.settle(chatId, member) };
    } catch (error) {
      this.outages.report("take", error);
      return { granted: true, full: false, settle: async () => {} };
    }
  }

  /** The earliest of this process's promised places still kept and when it is due, or a new ticket. */
  private checkOutTicket(): [string, number | undefined] {
    const now = Date.now();
    let best: [string, number] | undefined;
    for (const entry of this.tickets) {
      if (entry[1] < now - QUEUE_GRACE_MS) this.tickets.delete(entry[0]);
      else if (!best || entry[1] < best[1]) best = entry;
    }
    if (!best) return [`${this.tag}:t${this.seq++}`, undefined];
    this.tickets.delete(best[0]);
    return best;
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
