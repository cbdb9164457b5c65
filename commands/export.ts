import { slugify } from "../src/story/export.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const exportStory = defineCommand(
  {
    name: "export",
    description: { en: "Export the current branch as Markdown", zh: "将当前分支导出为 Markdown" },
    example: "/export",
    options: [],
  } as const,
  async (ctx) => {
    const storyId = currentStory(ctx);
    const { title, markdown } = await ctx.stories.exportMarkdown(storyId, ctx.locale);
    await ctx.surface.sendFile({ name: `${slugify(title)}-${storyId.slice(-6)}.md`, content: markdown });
    return { kind: "done" };
  },
);
