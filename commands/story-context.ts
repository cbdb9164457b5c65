import { UserFacingError } from "../src/story/errors.ts";
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
  if (where?.ownerId !== `${ctx.actor.platform}:${ctx.actor.id}`) throw new UserFacingError("error.notStarterCommand");
  return storyId;
}

/**
 * A member's daily chapter quota in a shared server (moderators and one-on-one
 * readers have none): checked before anything is written.
 */
export async function withinQuota(ctx: CommandContext): Promise<void> {
  if (ctx.moderator) return;
  const { dailyQuota } = await ctx.settings.get(ctx.conversation.platform, ctx.conversation.workspaceId);
  if (dailyQuota === 0) return;
  if ((await ctx.stories.requestsToday(ctx.actor, ctx.conversation)) >= dailyQuota) {
    throw new UserFacingError("error.quota", { quota: dailyQuota });
  }
}
