import { VISUAL_LIMITS } from "../src/art/visual-bible.ts";
import { t } from "../src/i18n/messages.ts";
import { currentStory, storyUnderControl } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const character = defineCommand(
  {
    name: "character",
    description: {
      en: "Show how the characters are drawn, or change one's appearance",
      zh: "查看角色的画法，或修改某个角色的外貌",
    },
    example: "/character Mara: short black hair, grey coat, silver ring",
    splitText: true,
    options: [
      {
        name: "name",
        type: "string",
        required: false,
        maxLength: 80,
        description: { en: "The character", zh: "角色" },
      },
      {
        name: "appearance",
        type: "string",
        required: false,
        maxLength: VISUAL_LIMITS.appearance,
        description: { en: "Face, hair, build, signature clothing", zh: "面容、发型、体型、标志性服装" },
      },
    ],
  } as const,
  async (ctx, args) => {
    if (args.name === undefined || args.appearance === undefined) {
      const bible = await ctx.illustrations.visualBible(currentStory(ctx));
      const wanted = args.name?.trim().toLowerCase();
      const shown = bible.characters.filter((c) => wanted === undefined || c.name.toLowerCase().includes(wanted));
      const characters =
        shown.length === 0
          ? t(ctx.locale, "character.none")
          : shown
              .map((c) => t(ctx.locale, "character.item", { name: c.name, appearance: c.appearance || "—" }))
              .join("\n");
      await ctx.surface.notice(t(ctx.locale, "character.bible", { artStyle: bible.artStyle, characters }));
      return { kind: "done" };
    }
    // The look of a shared story's cast is the starter's (or a moderator's) to change.
    const storyId = await storyUnderControl(ctx);
    const updated = await ctx.illustrations.setAppearance(storyId, args.name, args.appearance);
    await ctx.surface.notice(
      t(ctx.locale, "character.updated", { name: updated.name, appearance: updated.appearance }),
    );
    return { kind: "done" };
  },
);
