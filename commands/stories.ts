import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { remixCreditText } from "../src/story/sharing.ts";
import { showState } from "./show-state.ts";
import { defineCommand } from "./types.ts";

export const stories = defineCommand(
  {
    name: "stories",
    description: { en: "List the stories played here, or continue story N", zh: "列出在这里进行的故事，或继续第 N 个" },
    example: "/stories 1",
    // On Discord every story has its own thread.
    platforms: ["console", "telegram"],
    options: [
      {
        name: "number",
        type: "integer",
        required: false,
        min: 1,
        description: { en: "Story to continue", zh: "要继续的故事" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const list = await ctx.queries.list(ctx.conversation);
    if (list.length === 0) {
      await ctx.surface.notice(t(ctx.locale, "stories.none"));
      return { kind: "done" };
    }
    if (args.number === undefined) {
      const lines = list.map((s, i) => {
        const item = t(ctx.locale, "stories.item", {
          index: i + 1,
          title: s.title || t(ctx.locale, "untitled"),
          chapter: s.chapter,
          updated: s.updatedAt.toISOString().slice(0, 16).replace("T", " "),
        });
        return s.remixOf === undefined
          ? item
          : t(ctx.locale, "stories.remixOf", { item, credit: remixCreditText(ctx.locale, s.remixOf) });
      });
      await ctx.surface.notice([...lines, t(ctx.locale, "stories.hint")].join("\n"));
      return { kind: "done" };
    }
    const picked = list[args.number - 1];
    if (picked === undefined) throw new UserFacingError("error.storyNumber", { input: args.number });
    ctx.session.storyId = picked.storyId;
    await ctx.surface.notice(
      t(ctx.locale, "stories.resumed", { title: picked.title || t(ctx.locale, "untitled"), number: picked.chapter }),
    );
    await showState(ctx, picked.storyId, { text: true });
    return { kind: "done" };
  },
);
