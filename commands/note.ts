import { t } from "../src/i18n/messages.ts";
import { LIMITS } from "../src/story/limits.ts";
import { currentStory, storyUnderControl } from "./story-context.ts";
import { defineCommand } from "./types.ts";

/** What clears the note, in every catalogue language. */
const CLEAR = new Set(["clear", "清除"]);

export const note = defineCommand(
  {
    name: "note",
    description: {
      en: "Author's note: a standing direction for the next chapters (/note clear removes it)",
      zh: "作者注：为接下来的章节定下长期方向（/note clear 清除）",
    },
    example: "/note more dialogue, slower pace",
    options: [
      {
        name: "direction",
        type: "string",
        required: false,
        maxLength: LIMITS.authorNote,
        description: { en: "The direction, or “clear”", zh: "方向，或 “clear” 清除" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const text = args.direction?.trim() ?? "";
    if (text === "") {
      const current = await ctx.queries.note(currentStory(ctx));
      await ctx.surface.notice(
        current === "" ? t(ctx.locale, "note.none") : t(ctx.locale, "note.shown", { note: current }),
      );
      return { kind: "done" };
    }
    // A standing direction steers the story: in a shared chat, the starter's or a moderator's.
    const storyId = await storyUnderControl(ctx);
    if (CLEAR.has(text.toLowerCase())) {
      await ctx.stories.setNote(storyId, "");
      await ctx.surface.notice(t(ctx.locale, "note.cleared"));
      return { kind: "done" };
    }
    await ctx.stories.setNote(storyId, text);
    await ctx.surface.notice(t(ctx.locale, "note.set", { note: await ctx.queries.note(storyId) }));
    return { kind: "done" };
  },
);
