import { t } from "../src/i18n/messages.ts";
import { showState } from "./show-state.ts";
import { storyUnderControl } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const branch = defineCommand(
  {
    name: "branch",
    description: {
      en: "Continue from chapter N (later chapters stay as a branch)",
      zh: "从第 N 章继续（之后的章节保留为分支）",
    },
    example: "/branch 2",
    options: [
      {
        name: "chapter",
        type: "integer",
        required: true,
        min: 1,
        description: { en: "Chapter number", zh: "章节编号" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = await storyUnderControl(ctx);
    await ctx.stories.branch(storyId, args.chapter);
    await ctx.surface.notice(t(ctx.locale, "branch.done", { number: args.chapter }));
    await showState(ctx, storyId, { text: false });
    return { kind: "done" };
  },
);
