import { t } from "../src/i18n/messages.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const retry = defineCommand(
  {
    name: "retry",
    description: { en: "Try a failed chapter again", zh: "重试失败的章节" },
    example: "/retry",
    options: [],
  } as const,
  async (ctx) => {
    const ticket = await ctx.stories.retry(currentStory(ctx));
    await ctx.surface.notice(t(ctx.locale, "retry.writing", { number: ticket.number }));
    return { kind: "writing", ticket };
  },
);
