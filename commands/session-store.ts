/**
 * Where a conversation's `Session` lives between actions. One process keeps it in memory;
 * fronts that share a bot (several Telegram webhook fronts) keep it in Redis, so a question
 * one front asked is answered through another (adapters/shared/redis-session-store.ts).
 */
import type { Session } from "./types.ts";

export interface SessionStore {
  /** The conversation's session (a new empty one the first time). */
  load(conversation: string): Promise<Session>;
  /** Keep what the core changed, after the action. */
  save(conversation: string, session: Session): Promise<void>;
}

/** Sessions of this process alone. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Session>();

  async load(conversation: string): Promise<Session> {
    let session = this.sessions.get(conversation);
    if (session === undefined) {
      session = {};
      this.sessions.set(conversation, session);
    }
    return session;
  }

  async save(conversation: string, session: Session): Promise<void> {
    this.sessions.set(conversation, session);
  }
}

/** A session as JSON (its reply prompts as pairs). */
export function sessionToJson(session: Session): string {
  return JSON.stringify({ ...session, replies: session.replies === undefined ? undefined : [...session.replies] });
}

/** A session read back from `sessionToJson`; anything unreadable is a new session. */
export function sessionFromJson(text: string | null | undefined): Session {
  if (text === null || text === undefined) return {};
  try {
    const data = JSON.parse(text) as Session & { replies?: [string, { storyId: string; revision: number }][] };
    const { replies, ...rest } = data;
    return { ...rest, ...(Array.isArray(replies) ? { replies: new Map(replies) } : {}) };
  } catch {
    return {};
  }
}
