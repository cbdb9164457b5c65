import { UserFacingError } from "../src/story/errors.ts";
import { conversationKey } from "../src/story/identity.ts";
import type { ChapterQuota } from "../src/story/story-commands.ts";
import type { CommandContext } from "./types.ts";

/** The story this conversation is playing, or a reader-facing error. */
export function currentStory(ctx: CommandContext): string {
  if (ctx.session.storyId === undefined) throw new UserFacingError("error.noStory");
  return ctx.session.storyId;
}

/**
 * The current story, for commands that rewind or redirect it (undo, rewrite,
 * branch): in a shared chat only its starter or a moderator may.
 */
export async function storyUnderControl(ctx: CommandContext): Promise<string> {
  const storyId = currentStory(ctx);
  if (ctx.moderator) return storyId;
  const where = await ctx.queries.whereIs(storyId);
  if (where?.ownerId !== actorKey(ctx)) throw new UserFacingError("error.notStarterCommand");
  return storyId;
}

/**
 * A member's daily chapter quota in a shared server (moderators and one-on-one
 * readers have none): checked before anything is written, and returned for the
 * story command to take with the chapter it creates (undefined: no quota applies).
 */
export async function withinQuota(ctx: CommandContext): Promise<ChapterQuota | undefined> {
  if (ctx.moderator) return undefined;
  const { dailyQuota } = await ctx.settings.get(ctx.conversation.platform, ctx.conversation.workspaceId);
  if (dailyQuota === 0) return undefined;
  if ((await ctx.stories.requestsToday(ctx.actor, ctx.conversation)) >= dailyQuota) {
    throw new UserFacingError("error.quota", { quota: dailyQuota });
  }
  return { limit: dailyQuota, conversation: ctx.conversation };
}

/**
 * A story named by a button or a modal must be the one shown in this conversation: a
 * button copied, forwarded or forged elsewhere is refused. Returns the story's starter.
 */
export async function storyHere(ctx: CommandContext, storyId: string): Promise<{ ownerId: string }> {
  const where = await ctx.queries.whereIs(storyId);
  if (where === undefined || where.conversationId !== conversationKey(ctx.conversation)) {
    throw new UserFacingError("error.notYourStory");
  }
  return { ownerId: where.ownerId };
}

/** How a story names its starter: `<platform>:<user id>`. */
export function actorKey(ctx: Pick<CommandContext, "actor">): string {
  return `${ctx.actor.platform}:${ctx.actor.id}`;
}

/** After a restart a conversation's story is the one it played last. */
export async function hydrate(ctx: CommandContext): Promise<void> {
  if (ctx.session.hydrated === true) return;
  ctx.session.hydrated = true;
  if (ctx.session.storyId !== undefined) return;
  const storyId = await ctx.queries.latestIn(ctx.conversation);
  if (storyId !== undefined) ctx.session.storyId = storyId;
}
