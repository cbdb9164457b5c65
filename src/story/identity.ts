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

/**
 * The user row of a platform user, created on first sight. The update changes
 * nothing, but without one Prisma reads, then inserts, and of two first requests at
 * once (two processes) one fails on the unique key; with it, Prisma uses the
 * database's own upsert (INSERT ... ON CONFLICT), which cannot race.
 */
export function upsertUser(db: Pick<Db, "user">, actor: Actor) {
  return db.user.upsert({
    where: { platform_externalId: { platform: actor.platform, externalId: actor.id } },
    create: { platform: actor.platform, externalId: actor.id, displayName: actor.name },
    update: { platform: actor.platform },
    select: { id: true },
  });
}

/** The workspace row of a Discord server, Telegram chat or the terminal, created on first use (race-free, as upsertUser). */
export function upsertWorkspace(db: Pick<Db, "workspace">, workspace: { platform: string; externalId: string }) {
  const { platform, externalId } = workspace;
  return db.workspace.upsert({
    where: { platform_externalId: { platform, externalId } },
    create: { platform, externalId, settings: {} },
    update: { platform },
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
