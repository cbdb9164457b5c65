import { t } from "../src/i18n/messages.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const recap = defineCommand(
  {
    name: "recap",
    description: { en: "The story so far", zh: "前情提要" },
    example: "/recap",
    options: [],
  } as const,
  async (ctx) => {
    const { title, chapters } = await ctx.queries.recap(currentStory(ctx));
    const lines = [t(ctx.locale, "recap.heading", { title: title || t(ctx.locale, "untitled") })];
    for (const c of chapters) lines.push(t(ctx.locale, "recap.chapter", { number: c.number, summary: c.summary }));
    await ctx.surface.notice(lines.join("\n"));
    return { kind: "done" };
  },
);
