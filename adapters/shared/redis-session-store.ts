/**
 * Sessions in Redis, for fronts that share a bot: each conversation's session is one JSON
 * value, kept a week after its last action. A chat's updates are handled one at a time
 * across fronts (Telegram's update gate), so a load, the action and the save never
 * interleave for one conversation.
 */
import type { Redis } from "ioredis";
import { type SessionStore, sessionFromJson, sessionToJson } from "../../commands/session-store.ts";
import type { Session } from "../../commands/types.ts";

const TTL_SECONDS = 7 * 24 * 3600;

export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly redis: Redis,
    /** Key prefix, e.g. `inkloom:{tg:<bot id>}`. */
    private readonly prefix: string,
  ) {}

  async load(conversation: string): Promise<Session> {
    return sessionFromJson(await this.redis.get(this.key(conversation)));
  }

  async save(conversation: string, session: Session): Promise<void> {
    await this.redis.set(this.key(conversation), sessionToJson(session), "EX", TTL_SECONDS);
  }

  private key(conversation: string): string {
    return `${this.prefix}:session:${conversation}`;
  }
}
