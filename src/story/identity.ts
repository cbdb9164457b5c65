/**
 * Who does something and where: the platform user (`Actor`), the conversation a
 * story is shown in (`Conversation`), its key in the database, and the user rows.
 */
import type { Db } from "../store/db.ts";

export interface Actor {
  platform: string;
  /** Platform user id. */
  id: string;
  name: string;
}

export interface Conversation {
  platform: string;
  /** Discord guild / Telegram chat / "local": where settings live. */
  workspaceId: string;
  /** Discord thread / Telegram chat / terminal: where the story is shown. */
  id: string;
}

/** How a conversation is stored on its stories (`<platform>:<id>`). */
export function conversationKey(c: Conversation): string {
  return `${c.platform}:${c.id}`;
}

/** The user row of a platform user, created on first sight. */
export function upsertUser(db: Pick<Db, "user">, actor: Actor) {
  return db.user.upsert({
    where: { platform_externalId: { platform: actor.platform, externalId: actor.id } },
    create: { platform: actor.platform, externalId: actor.id, displayName: actor.name },
    update: {},
    select: { id: true },
  });
}

/** The user row id of a platform user, undefined when they never did anything. */
export async function findUserId(db: Pick<Db, "user">, actor: Actor): Promise<string | undefined> {
  const user = await db.user.findUnique({
    where: { platform_externalId: { platform: actor.platform, externalId: actor.id } },
    select: { id: true },
  });
  return user?.id;
}
