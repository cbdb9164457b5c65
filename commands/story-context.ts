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
  const where = await ctx.stories.whereIs(storyId);
  if (where?.ownerId !== `${ctx.actor.platform}:${ctx.actor.id}`) throw new UserFacingError("error.notStarterCommand");
  return storyId;
}
