import { UserFacingError } from "../src/story/errors.ts";
import type { CommandContext } from "./types.ts";

/** The story this conversation is playing, or a reader-facing error. */
export function currentStory(ctx: CommandContext): string {
  if (ctx.session.storyId === undefined) throw new UserFacingError("error.noStory");
  return ctx.session.storyId;
}
