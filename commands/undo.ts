import { t } from "../src/i18n/messages.ts";
import { showState } from "./show-state.ts";
import { storyUnderControl } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const undo = defineCommand(
  {
    name: "undo",
    description: { en: "Go back one chapter (it stays as a branch)", zh: "退回上一章（保留为分支）" },
    example: "/undo",
    options: [],
  } as const,
  async (ctx) => {
    const storyId = await storyUnderControl(ctx);
    const number = await ctx.stories.undo(storyId);
    await ctx.surface.notice(t(ctx.locale, "undo.done", { number }));
    await showState(ctx, storyId, { text: false });
    return { kind: "done" };
  },
);
