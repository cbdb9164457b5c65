import { LIMITS } from "../src/story/limits.ts";
import { currentStory, withinQuota } from "./story-context.ts";
import { defineCommand } from "./types.ts";

/**
 * The story revision the reader saw when choosing (buttons carry it), so a
 * stale or doubled pick is refused instead of writing twice.
 */
export const REVISION = {
  name: "revision",
  type: "integer",
  required: true,
  min: 0,
  description: { en: "Story revision", zh: "故事版本" },
} as const;

/** Pick one of the offered choices (a button, or a number typed in the terminal). */
export const choose = defineCommand(
  {
    name: "choose",
    hidden: true,
    description: { en: "Pick a choice", zh: "做出选择" },
    example: "2",
    options: [
      {
        name: "position",
        type: "integer",
        required: true,
        min: 1,
        description: { en: "Choice number", zh: "选项编号" },
      },
      REVISION,
    ],
  } as const,
  async (ctx, args) => {
    const quota = await withinQuota(ctx);
    const ticket = await ctx.stories.choose(currentStory(ctx), args.revision, args.position, ctx.actor, quota);
    return { kind: "writing", ticket };
  },
);

/** Do something of the reader's own instead of a listed choice. */
export const act = defineCommand(
  {
    name: "act",
    hidden: true,
    description: { en: "Write your own action", zh: "写下你自己的行动" },
    example: "I open the letter",
    options: [
      {
        name: "text",
        type: "string",
        required: true,
        maxLength: LIMITS.action,
        description: { en: "What you do", zh: "你要做的事" },
      },
      REVISION,
    ],
  } as const,
  async (ctx, args) => {
    const quota = await withinQuota(ctx);
    const ticket = await ctx.stories.act(currentStory(ctx), args.revision, args.text, ctx.actor, quota);
    return { kind: "writing", ticket };
  },
);
