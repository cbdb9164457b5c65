import { randomUUID } from "node:crypto";
import { VISUAL_LIMITS } from "../src/art/visual-bible.ts";
import { t } from "../src/i18n/messages.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const illustrate = defineCommand(
  {
    name: "illustrate",
    description: {
      en: "Draw a scene of the story (default: the current chapter)",
      zh: "为故事画一幅插图（默认：当前章节）",
    },
    example: "/illustrate Mara and Elias on the pier at dawn",
    options: [
      {
        name: "what",
        type: "string",
        required: false,
        maxLength: VISUAL_LIMITS.scene,
        description: { en: "What to draw", zh: "画什么" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = currentStory(ctx);
    await ctx.illustrations.request({
      storyId,
      actor: ctx.actor,
      ...(args.what === undefined ? {} : { what: args.what }),
      // A redelivered message or interaction carries the same id: it asks once.
      requestKey: `request:${ctx.conversation.platform}:${ctx.requestId ?? randomUUID()}`,
    });
    await ctx.surface.notice(t(ctx.locale, "illustrate.queued"));
    return { kind: "done" };
  },
);
