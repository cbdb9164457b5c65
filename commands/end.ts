import { t } from "../src/i18n/messages.ts";
import { storyUnderControl } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const end = defineCommand(
  {
    name: "end",
    description: { en: "End this story (it is kept, and can be exported)", zh: "结束这个故事（会保留，可以导出）" },
    example: "/end",
    options: [],
  } as const,
  async (ctx) => {
    const storyId = await storyUnderControl(ctx);
    await ctx.stories.end(storyId);
    delete ctx.session.storyId;
    await ctx.surface.notice(t(ctx.locale, "story.ended"));
    return { kind: "done" };
  },
);
