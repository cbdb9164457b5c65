/**
 * Who is a chat administrator on Telegram (a group's moderators: they manage its themes,
 * settings and stories). Asked with getChatMember, whose `creator` and `administrator`
 * statuses mean admin. An answer is kept a while (a minute by default), per chat and user,
 * so a busy group costs one call per reader per minute; concurrent checks share one call.
 * A call that times out or fails for a passing reason (a network error, a 5xx, a short 429)
 * is tried again once; a check that still fails counts as "not an admin" (the action is
 * refused, the cause logged) and is not kept, so the next action asks again.
 */
import type { Telegram } from "telegraf";
import { readTelegramError } from "./errors.ts";

export interface ChatAdminOptions {
  /** How long an answer is kept. */
  ttlMs?: number;
  /** How long one getChatMember call may take. */
  timeoutMs?: number;
  /** Tries after the first, for passing failures. */
  retries?: number;
  /** Now, in ms (tests). */
  now?: () => number;
}

type CallApiSignal = NonNullable<Parameters<Telegram["callApi"]>[2]>["signal"];

const DEFAULTS = { ttlMs: 60_000, timeoutMs: 5_000, retries: 1 } as const;
/** Kept answers beyond this are pruned of expired ones. */
const MAX_KEPT = 10_000;
/** A 429 asking to wait longer than this is not waited for: the check fails now. */
const MAX_RETRY_WAIT_MS = 3_000;

export class ChatAdmins {
  private readonly kept = new Map<string, { admin: boolean; at: number }>();
  private readonly asking = new Map<string, Promise<boolean>>();
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly now: () => number;

  constructor(
    private readonly telegram: Pick<Telegram, "callApi">,
    private readonly log: (message: string) => void,
    options: ChatAdminOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULTS.ttlMs;
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.retries = options.retries ?? DEFAULTS.retries;
    this.now = options.now ?? Date.now;
  }

  /** Whether the user administers the chat (creator or administrator). */
  async isAdmin(chatId: number, userId: number): Promise<boolean> {
    const key = `${chatId}:${userId}`;
    const kept = this.kept.get(key);
    if (kept !== undefined && this.now() - kept.at < this.ttlMs) return kept.admin;
    const pending = this.asking.get(key);
    if (pending !== undefined) return pending;
    const check = this.ask(chatId, userId, key).finally(() => this.asking.delete(key));
    this.asking.set(key, check);
    return check;
  }

  private async ask(chatId: number, userId: number, key: string): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        const member = await this.call(chatId, userId);
        const admin = member.status === "creator" || member.status === "administrator";
        this.keep(key, admin);
        return admin;
      } catch (error) {
        const wait = this.retryWait(error);
        if (wait === undefined || attempt >= this.retries) {
          this.log(`telegram: admin check failed for user ${userId} in chat ${chatId}: ${describe(error)}`);
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private async call(chatId: number, userId: number): Promise<{ status: string }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      return await this.telegram.callApi(
        "getChatMember",
        { chat_id: chatId, user_id: userId },
        // telegraf types its option with the abort-controller package's signal; node-fetch takes Node's.
        { signal: controller.signal as unknown as Exclude<CallApiSignal, undefined> },
      );
    } catch (error) {
      throw controller.signal.aborted ? new AdminCheckTimeout(this.timeoutMs) : error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** How long to wait before trying again, or undefined when trying again would not help. */
  private retryWait(error: unknown): number | undefined {
    if (error instanceof AdminCheckTimeout) return 0;
    const api = readTelegramError(error);
    if (api === undefined) return 200; // network failure
    if (api.code >= 500) return 200;
    if (api.code === 429) {
      const ms = (api.retryAfterS ?? 1) * 1000;
      return ms <= MAX_RETRY_WAIT_MS ? ms : undefined;
    }
    return undefined; // 400 "user not found", 403 kicked: asking again says the same
  }

  private keep(key: string, admin: boolean): void {
    if (this.kept.size >= MAX_KEPT) {
      const now = this.now();
      for (const [k, v] of this.kept) if (now - v.at >= this.ttlMs) this.kept.delete(k);
      if (this.kept.size >= MAX_KEPT) this.kept.clear();
    }
    this.kept.set(key, { admin, at: this.now() });
  }
}

class AdminCheckTimeout extends Error {
  override readonly name = "AdminCheckTimeout";
  constructor(ms: number) {
    super(`getChatMember took over ${ms} ms`);
  }
}

function describe(error: unknown): string {
  const api = readTelegramError(error);
  if (api !== undefined) return `${api.code} ${api.description}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
