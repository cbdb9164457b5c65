/**
 * Telegram's outbound queue. Every Bot API call that shows something in a chat (send, edit) goes
 * through here, because telegraf sends at once and never retries, while Telegram allows about
 * 1 message/s per chat, 20/min per group and 30/s for the whole bot (edits count).
 *
 * - Per chat: FIFO, one call in flight, starts at least `perChatIntervalMs` apart; groups also at
 *   most `groupPerMinute` starts in any sliding minute.
 * - Whole bot: at most `globalPerSecond` starts in any sliding second. When that budget binds, the
 *   chat that has been *eligible* the longest goes first (ties in arrival order), so chats take
 *   turns and a chat waiting for its first message is never starved by chats with long backlogs.
 * - 429: the chat pauses for `retry_after` and the same call is retried (other chats go on).
 *   403: the chat is blocked until `unblock`. Edits of one message are coalesced, and no-op edits
 *   (which Telegram answers with 400 "message is not modified") are skipped.
 *
 * Several processes of one bot (fronts and workers, with REDIS_URL) share these limits through
 * a `SharedBudget` (./redis-budget.ts): before each call the outbox takes a place in the shared
 * windows, or waits as long as the budget says and asks again; a 429 pauses the chat for every
 * process. Its own limits stay in force too (they never allow more than the shared ones), so
 * its queues, fairness, coalescing and no-op skipping are the same with or without Redis.
 *
 * It reads Telegram errors through ./errors.ts, by shape only, so it does not import telegraf.
 * Timers are the global `setTimeout`, so vitest fake timers drive it.
 *
 * One outbox serves every chat of one bot token in one process, so it is also where a process
 * remembers which chats refuse message drafts (`refusesDrafts`): a surface needs nothing else.
 */
import {
  type BotApiError,
  ChatBlockedError,
  type ChatId,
  isNotModified,
  OutboxClosedError,
  readTelegramError,
} from "./errors.ts";

export { ChatBlockedError, type ChatId, OutboxClosedError };

export type ChatKind = "private" | "group";

/** Telegram group and channel ids are negative; a private chat's id is its user's, positive. */
export function chatKindOf(chatId: number): ChatKind {
  return chatId < 0 ? "group" : "private";
}

export interface OutboxOptions {
  /** Minimum time between the starts of two calls to one chat. Default 1000. */
  perChatIntervalMs?: number;
  /** Maximum starts per sliding 60 s window in a group (or supergroup). Default 20. */
  groupPerMinute?: number;
  /** Maximum starts per sliding second for the whole bot, retries included. Default 30. */
  globalPerSecond?: number;
  /** How often one call is retried after a 429 before it rejects with that error. Default 5. */
  maxRetries?: number;
  /** Called when a chat answers 403 (bot blocked or kicked): once per chat until `unblock`. */
  onBlocked?: (chatId: ChatId) => void;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** Limits shared with the bot's other processes (Redis); without it this process paces alone. */
  shared?: SharedBudget;
}

/**
 * Flood limits that several processes of one bot take from together (./redis-budget.ts).
 * Neither method rejects: a budget that cannot answer lets the call go on the process's
 * own limits.
 */
export interface SharedBudget {
  /** A place for one call to the chat now, or how long to wait and whose limit it is. */
  take(chatId: ChatId, kind: ChatKind): Promise<SharedTake>;
  /** Telegram answered 429 for the chat: no process calls it for `ms`. */
  pause(chatId: ChatId, ms: number): Promise<void>;
}

export type SharedTake =
  /**
   * Call now; `settle` once the call has finished (its place then counts from that moment).
   * `full`: this took the bot's last place free now, so another call would wait.
   */
  | { readonly granted: true; readonly full?: boolean; settle(): Promise<void> }
  /** Ask again in `waitMs`: the chat's limits ("chat") or the whole bot's ("bot") are spent. */
  | { readonly granted: false; readonly waitMs: number; readonly scope: "chat" | "bot" };

export const OUTBOX_DEFAULTS = {
  perChatIntervalMs: 1_000,
  groupPerMinute: 20,
  globalPerSecond: 30,
  maxRetries: 5,
} as const satisfies Required<Omit<OutboxOptions, "onBlocked" | "now" | "shared">>;

/** What `edit` resolves with when it made no call: coalesced into a later edit, or a no-op. */
export type Skipped = "skipped";

export interface OutboxStats {
  /** Calls that succeeded. */
  sent: number;
  /** 429 answers received (each retry that was refused counts). */
  rateLimited: number;
  /** Edits resolved without a successful call because the message already showed that text. */
  skipped: number;
  /** Edits replaced by a later edit of the same message before they started. */
  coalesced: number;
  /** Calls waiting to start (not in flight). */
  queued: number;
}

/** Beyond this many messages, the oldest remembered text is forgotten (a later identical edit is then sent). */
const MAX_REMEMBERED = 10_000;
/** How often idle chats' state is dropped; a minute is the longest window any limit looks back. */
const SWEEP_MS = 60_000;

interface Job {
  call: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** 429 retries made so far. */
  retries: number;
  readonly edit?: { readonly key: string; content: string };
}

interface Chat {
  readonly id: ChatId;
  readonly key: string;
  kind: ChatKind;
  readonly queue: Job[];
  current: Job | undefined;
  readonly interval: Window;
  readonly minute: Window;
  pausedUntil: number;
  /** The shared budget said this chat's limits are spent until then (another process called it). */
  heldUntil: number;
  /** In the ready heap: not in flight, has queued calls. */
  waiting: boolean;
  /** While waiting: when its own limits let it start. */
  eligibleAt: number;
  /** While waiting: arrival order, to break ties round-robin. */
  seq: number;
}

export class TelegramOutbox {
  private readonly perChatIntervalMs: number;
  private readonly groupPerMinute: number;
  private readonly maxRetries: number;
  private readonly onBlocked: ((chatId: ChatId) => void) | undefined;
  private readonly now: () => number;
  private readonly shared: SharedBudget | undefined;
  private readonly global: Window;
  /** The shared budget said the whole bot's limits are spent until then. */
  private globalHeldUntil = 0;
  /** Calls started and not yet settled: they count against the bot's budget until they settle. */
  private inFlight = 0;
  /**
   * The shared budget said the bot's second is full (a refusal for the bot, or a grant of its
   * last place): until a grant leaves room, one call at a time asks, so the processes that wait
   * do not all ask at once for the one place that frees.
   */
  private botFull = false;
  /** Calls asking the shared budget for a place now. */
  private taking = 0;

  private readonly chats = new Map<string, Chat>();
  private readonly ready = new MinHeap<Chat>((a, b) => a.eligibleAt - b.eligibleAt || a.seq - b.seq);
  private readonly blocked = new Set<string>();
  /** Edits that have not started, by message key: a newer edit of that message takes their place. */
  private readonly waitingEdits = new Map<string, Job>();
  /** What each message shows, as far as we know, by message key (oldest first for eviction). */
  private readonly shown = new Map<string, string>();
  /** Chats where `sendMessageDraft` was refused, oldest first for eviction. */
  private readonly draftRefusals = new Set<string>();
  private readonly counts = { sent: 0, rateLimited: 0, skipped: 0, coalesced: 0 };
  private seq = 0;
  private lastSweepAt: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Calls accepted and not yet settled, for `close`. */
  private unsettled = 0;
  private closed = false;
  private readonly drained: (() => void)[] = [];

  constructor(options: OutboxOptions = {}) {
    const limits = { ...OUTBOX_DEFAULTS, ...options };
    if (!(limits.globalPerSecond >= 1 && limits.groupPerMinute >= 1)) {
      throw new RangeError("TelegramOutbox: globalPerSecond and groupPerMinute must be at least 1");
    }
    if (!(limits.perChatIntervalMs >= 0 && limits.maxRetries >= 0)) {
      throw new RangeError("TelegramOutbox: perChatIntervalMs and maxRetries must not be negative");
    }
    this.perChatIntervalMs = limits.perChatIntervalMs;
    this.groupPerMinute = limits.groupPerMinute;
    this.maxRetries = limits.maxRetries;
    this.onBlocked = options.onBlocked;
    this.now = options.now ?? Date.now;
    this.shared = options.shared;
    this.global = new Window(1_000, limits.globalPerSecond);
    this.lastSweepAt = this.now();
  }

  /**
   * Run `call` (one Bot API request) for `chatId` within the limits and resolve with its result.
   * Calls to one chat run in order, one at a time. A 429 is retried after `retry_after`; a 403
   * rejects with `ChatBlockedError` (as do later calls to that chat); other errors reject this call only.
   */
  send<T>(chatId: ChatId, kind: ChatKind, call: () => Promise<T>): Promise<T> {
    const refusal = this.refusal(chatId);
    if (refusal) return Promise.reject(refusal);
    return new Promise<T>((resolve, reject) => {
      this.enqueue(chatId, kind, { call, resolve: resolve as (value: unknown) => void, reject, retries: 0 });
    });
  }

  /**
   * Edit one message (`call` makes the request) within the limits. `messageKey` names the message
   * and must be unique across chats (e.g. `${chatId}:${messageId}`).
   *
   * - If an edit of the same message is still waiting (not started), this one takes its place in
   *   line: the latest text wins and the replaced edit resolves with `"skipped"`.
   * - If `content` is what the message already shows (see `remember`), it resolves with
   *   `"skipped"` without a call; so does a 400 "message is not modified" from Telegram.
   */
  edit<T>(
    chatId: ChatId,
    kind: ChatKind,
    messageKey: string,
    content: string,
    call: () => Promise<T>,
  ): Promise<T | Skipped> {
    const refusal = this.refusal(chatId);
    if (refusal) return Promise.reject(refusal);

    const waiting = this.waitingEdits.get(messageKey);
    const waitingEdit = waiting?.edit;
    if (waiting && waitingEdit) {
      this.counts.coalesced++;
      waiting.resolve("skipped");
      return new Promise<T | Skipped>((resolve, reject) => {
        waiting.call = call;
        waiting.resolve = resolve as (value: unknown) => void;
        waiting.reject = reject;
        waiting.retries = 0;
        waitingEdit.content = content;
      });
    }

    // While an edit of this message is in flight, the message is about to change, so an edit back
    // to the current text is not a no-op; it waits, and is checked again when its turn comes.
    const inFlight = this.chats.get(String(chatId))?.current?.edit?.key === messageKey;
    if (!inFlight && this.shown.get(messageKey) === content) {
      this.counts.skipped++;
      return Promise.resolve("skipped");
    }
    return new Promise<T | Skipped>((resolve, reject) => {
      const edit = { key: messageKey, content };
      this.enqueue(chatId, kind, { call, resolve: resolve as (value: unknown) => void, reject, retries: 0, edit });
    });
  }

  /** Record what a message shows now (e.g. after sending it), so a later identical edit is skipped. */
  remember(messageKey: string, content: string): void {
    // Re-inserting keeps the map ordered by last update, so the first key is the one to evict.
    this.shown.delete(messageKey);
    this.shown.set(messageKey, content);
    if (this.shown.size > MAX_REMEMBERED) {
      const oldest = this.shown.keys().next();
      if (!oldest.done) this.shown.delete(oldest.value);
    }
  }

  /**
   * Whether the chat refused a message draft (`sendMessageDraft`: an older Bot API server,
   * say): its surfaces stream by edits instead. Kept here because the outbox is shared by
   * every surface of the bot in this process.
   */
  refusesDrafts(chatId: ChatId): boolean {
    return this.draftRefusals.has(String(chatId));
  }

  /** Record that the chat refused a draft; false when it was known already. */
  refuseDrafts(chatId: ChatId): boolean {
    const key = String(chatId);
    if (this.draftRefusals.has(key)) return false;
    this.draftRefusals.add(key);
    if (this.draftRefusals.size > MAX_REMEMBERED) {
      const oldest = this.draftRefusals.values().next();
      if (!oldest.done) this.draftRefusals.delete(oldest.value);
    }
    return true;
  }

  /** Whether the chat answered 403 and calls to it are refused. */
  isBlocked(chatId: ChatId): boolean {
    return this.blocked.has(String(chatId));
  }

  /** Accept calls to the chat again, e.g. after the user started the bot again. */
  unblock(chatId: ChatId): void {
    this.blocked.delete(String(chatId));
  }

  /** Counters since construction, and the number of calls waiting now. */
  stats(): OutboxStats {
    let queued = 0;
    for (const chat of this.chats.values()) queued += chat.queue.length;
    return { ...this.counts, queued };
  }

  /** Refuse new calls (they reject with `OutboxClosedError`) and resolve once every accepted call has settled. */
  close(): Promise<void> {
    this.closed = true;
    if (this.unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private refusal(chatId: ChatId): Error | undefined {
    if (this.closed) return new OutboxClosedError();
    if (this.blocked.has(String(chatId))) return new ChatBlockedError(chatId);
    return undefined;
  }

  private enqueue(chatId: ChatId, kind: ChatKind, job: Job): void {
    const key = String(chatId);
    let chat = this.chats.get(key);
    if (!chat) {
      chat = {
        id: chatId,
        key,
        kind,
        queue: [],
        current: undefined,
        interval: new Window(this.perChatIntervalMs, 1),
        minute: new Window(60_000, this.groupPerMinute),
        pausedUntil: 0,
        heldUntil: 0,
        waiting: false,
        eligibleAt: 0,
        seq: 0,
      };
      this.chats.set(key, chat);
    }
    chat.kind = kind;
    chat.queue.push(job);
    if (job.edit) this.waitingEdits.set(job.edit.key, job);
    this.unsettled++;
    if (!chat.current) this.enlist(chat, this.now());
    this.pump();
  }

  /** When the chat's own limits (interval, group minute, 429 pause, shared hold) let its next call start. */
  private readyAt(chat: Chat, now: number): number {
    const minute = chat.kind === "group" ? chat.minute.freeAt(now) : now;
    return Math.max(chat.interval.freeAt(now), minute, chat.pausedUntil, chat.heldUntil);
  }

  /** When the bot's budget lets another call start. */
  private globalFreeAt(now: number): number {
    return Math.max(this.global.freeAt(now, this.inFlight), this.globalHeldUntil);
  }

  private enlist(chat: Chat, now: number, eligibleAt?: number): void {
    if (chat.waiting) return;
    chat.waiting = true;
    // Keyed by when it became eligible, not by when it joined: a chat held back by the global budget
    // keeps its early key and goes before chats whose own interval ran out later.
    chat.eligibleAt = eligibleAt ?? Math.max(now, this.readyAt(chat, now));
    chat.seq = this.seq++;
    this.ready.push(chat);
  }

  /** Start every call that may start now, then arm the timer for the next moment one may. */
  private pump(): void {
    const now = this.now();
    if (now - this.lastSweepAt >= SWEEP_MS) this.sweep(now);
    for (;;) {
      const chat = this.ready.peek();
      if (!chat || chat.eligibleAt > now || this.globalFreeAt(now) > now) break;
      if (this.botFull && this.taking > 0) break;
      this.ready.pop();
      chat.waiting = false;
      this.skipNoOpEdits(chat);
      if (chat.queue.length === 0) continue;
      if (this.readyAt(chat, now) > now) {
        // Its kind changed to group while it waited; take a place for the new time.
        this.enlist(chat, now);
        continue;
      }
      this.start(chat);
    }

    clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.ready.peek();
    // While one call asks a full bot's budget, its answer pumps again.
    if (next && !(this.botFull && this.taking > 0)) {
      const at = Math.max(next.eligibleAt, this.globalFreeAt(now));
      if (Number.isFinite(at)) this.timer = setTimeout(() => this.pump(), at - now);
    }
  }

  private skipNoOpEdits(chat: Chat): void {
    for (let job = chat.queue[0]; job?.edit && this.shown.get(job.edit.key) === job.edit.content; job = chat.queue[0]) {
      chat.queue.shift();
      this.waitingEdits.delete(job.edit.key);
      this.counts.skipped++;
      this.resolveJob(job, "skipped");
    }
  }

  private start(chat: Chat): void {
    const job = chat.queue.shift();
    if (!job) return;
    if (job.edit) this.waitingEdits.delete(job.edit.key);
    chat.current = job;
    this.inFlight++;
    void this.run(chat, job);
  }

  private async run(chat: Chat, job: Job): Promise<void> {
    let settle: (() => Promise<void>) | undefined;
    if (this.shared) {
      this.taking++;
      const taken = await this.shared.take(chat.id, chat.kind);
      this.taking--;
      const wasFull = this.botFull;
      this.botFull = taken.granted ? taken.full === true : taken.scope === "bot" || this.botFull;
      if (!taken.granted) {
        this.heldBack(chat, job, taken);
        return;
      }
      settle = () => taken.settle();
      // One asked at a time while the bot's second was full; with room again, the others may ask.
      if (wasFull && !this.botFull) this.pump();
    }
    try {
      // A microtask later, so a `call` that synchronously sends again cannot re-enter `pump`.
      const value = await Promise.resolve().then(job.call);
      this.counts.sent++;
      if (job.edit) this.remember(job.edit.key, job.edit.content);
      this.resolveJob(job, value);
    } catch (error) {
      const telegram = readTelegramError(error);
      // Every process holds off the chat, not only this one.
      if (telegram?.code === 429) await this.shared?.pause(chat.id, retryAfterMs(telegram));
      this.fail(chat, job, error);
    } finally {
      // Limits count from completion, not from start: Telegram counts a call when it
      // arrives, which is somewhere between the two. Spacing from completion can never
      // be refused however the network delays a request (starting on time did: 429s).
      const done = this.now();
      // Shared: the place counts from completion too; settled before this chat asks again.
      await settle?.();
      chat.interval.record(done);
      chat.minute.record(done);
      this.global.record(done);
      this.inFlight--;
      chat.current = undefined;
      if (chat.queue.length > 0) this.enlist(chat, done);
      this.pump();
    }
  }

  /** The shared budget said wait: the call goes back to the head of its chat's queue, not started. */
  private heldBack(chat: Chat, job: Job, wait: { waitMs: number; scope: "chat" | "bot" }): void {
    const now = this.now();
    const eligibleAt = chat.eligibleAt;
    this.inFlight--;
    chat.current = undefined;
    this.retryLater(chat, job);
    if (wait.scope === "chat") {
      chat.heldUntil = Math.max(chat.heldUntil, now + wait.waitMs);
      if (chat.queue.length > 0) this.enlist(chat, now);
    } else {
      // The whole bot waits, until the earliest place promised to one of its calls; the chat keeps its place in line.
      const until = now + wait.waitMs;
      this.globalHeldUntil = this.globalHeldUntil > now ? Math.min(this.globalHeldUntil, until) : until;
      if (chat.queue.length > 0) this.enlist(chat, now, eligibleAt);
    }
    this.pump();
  }

  private fail(chat: Chat, job: Job, error: unknown): void {
    const telegram = readTelegramError(error);
    if (telegram?.code === 429) {
      this.counts.rateLimited++;
      // The pause holds even when retries are exhausted: the chat's next call would be refused too.
      chat.pausedUntil = this.now() + retryAfterMs(telegram);
      if (job.retries < this.maxRetries) {
        job.retries++;
        this.retryLater(chat, job);
        return;
      }
    } else if (telegram?.code === 403) {
      this.block(chat, job, error);
      return;
    } else if (job.edit && isNotModified(telegram)) {
      this.counts.skipped++;
      this.remember(job.edit.key, job.edit.content);
      this.resolveJob(job, "skipped");
      return;
    }
    this.rejectJob(job, error);
  }

  private retryLater(chat: Chat, job: Job): void {
    if (job.edit) {
      if (this.waitingEdits.has(job.edit.key)) {
        // A newer edit of this message arrived while this one was in flight: retrying the old text is pointless.
        this.counts.coalesced++;
        this.resolveJob(job, "skipped");
        return;
      }
      this.waitingEdits.set(job.edit.key, job);
    }
    chat.queue.unshift(job);
  }

  private block(chat: Chat, job: Job, cause: unknown): void {
    const first = !this.blocked.has(chat.key);
    this.blocked.add(chat.key);
    for (const dropped of [job, ...chat.queue.splice(0)]) {
      const key = dropped.edit?.key;
      if (key !== undefined && this.waitingEdits.get(key) === dropped) this.waitingEdits.delete(key);
      this.rejectJob(dropped, new ChatBlockedError(chat.id, { cause }));
    }
    if (first && this.onBlocked) {
      try {
        this.onBlocked(chat.id);
      } catch (error) {
        // A failing callback must not wedge the queue; report it out of band instead of swallowing it.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private resolveJob(job: Job, value: unknown): void {
    job.resolve(value);
    this.settled();
  }

  private rejectJob(job: Job, error: unknown): void {
    job.reject(error);
    this.settled();
  }

  private settled(): void {
    this.unsettled--;
    if (this.unsettled === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Forget chats that are idle and that no limit remembers, so state does not grow with every chat ever seen. */
  private sweep(now: number): void {
    this.lastSweepAt = now;
    for (const [key, chat] of this.chats) {
      const idle = !chat.current && chat.queue.length === 0 && chat.pausedUntil <= now && chat.heldUntil <= now;
      if (idle && chat.interval.isEmpty(now) && chat.minute.isEmpty(now)) this.chats.delete(key);
    }
  }
}

/** How long a 429 asks to wait (`retry_after`, 1 s when it does not say). */
function retryAfterMs(error: BotApiError): number {
  return (error.retryAfterS ?? 1) * 1_000;
}

/** Start times within the last `spanMs`, for "at most `limit` starts in any sliding `spanMs`". */
class Window {
  private readonly times: number[] = [];
  private readonly spanMs: number;
  private readonly limit: number;

  constructor(spanMs: number, limit: number) {
    this.spanMs = spanMs;
    this.limit = limit;
  }

  /**
   * The earliest time, `now` or later, at which another start fits, counting
   * `inFlight` calls as taking a place too. Infinity when only a call that is
   * still in flight can make room (its completion pumps the queue).
   */
  freeAt(now: number, inFlight = 0): number {
    this.trim(now);
    const over = this.times.length + inFlight - this.limit;
    if (over < 0) return now;
    const t = this.times[over];
    return t === undefined ? Number.POSITIVE_INFINITY : t + this.spanMs;
  }

  isEmpty(now: number): boolean {
    this.trim(now);
    return this.times.length === 0;
  }

  record(at: number): void {
    this.times.push(at);
  }

  private trim(now: number): void {
    // A start exactly `spanMs` ago has left the window, so starts exactly `spanMs` apart are allowed.
    while (this.times.length > 0 && (this.times[0] ?? now) <= now - this.spanMs) this.times.shift();
  }
}

/** A binary min-heap: the ready chats, ordered by when they became eligible. */
class MinHeap<T> {
  private readonly items: T[] = [];
  private readonly before: (a: T, b: T) => number;

  constructor(compare: (a: T, b: T) => number) {
    this.before = compare;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.before(items[i] as T, items[parent] as T) >= 0) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && this.before(items[left] as T, items[smallest] as T) < 0) smallest = left;
      if (right < items.length && this.before(items[right] as T, items[smallest] as T) < 0) smallest = right;
      if (smallest === i) return top;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(i: number, j: number): void {
    const items = this.items;
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}
