import { t } from "../src/i18n/messages.ts";
import { LIMITS } from "../src/story/limits.ts";
import { storyUnderControl, withinQuota } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const rewrite = defineCommand(
  {
    name: "rewrite",
    description: { en: "Rewrite the last chapter, optionally with a direction", zh: "重写上一章，可附改写要求" },
    example: "/rewrite make the ending happier",
    options: [
      {
        name: "direction",
        type: "string",
        required: false,
        maxLength: LIMITS.direction,
        description: { en: "How to change it", zh: "如何修改" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = await storyUnderControl(ctx);
    const quota = await withinQuota(ctx);
    const ticket = await ctx.stories.rewrite(storyId, args.direction ?? "", ctx.actor, quota);
    await ctx.surface.notice(t(ctx.locale, "rewrite.writing", { number: ticket.number }));
    return { kind: "writing", ticket };
  },
);
