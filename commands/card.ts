import { t } from "../src/i18n/messages.ts";
import type { CardImport, PreparedCard } from "../src/story/cards.ts";
import { CARD_LIMITS } from "../src/story/cards.ts";
import { CARD_MAX_BYTES, megabytes, readCard, writeCardJson } from "../src/story/character-card.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { slugify } from "../src/story/export.ts";
import { currentStory, storyUnderControl, withinQuota } from "./story-context.ts";
import type { CommandContext, CommandOutcome } from "./types.ts";
import { defineCommand } from "./types.ts";

export const card = defineCommand(
  {
    name: "card",
    description: {
      en: "Import a character card (SillyTavern V2/V3, JSON or PNG), or export one: /card export <name>",
      zh: "导入角色卡（SillyTavern V2/V3，JSON 或 PNG），或导出：/card export <名字>",
    },
    example: "/card export Mara",
    splitText: true,
    options: [
      {
        name: "action",
        type: "string",
        required: true,
        maxLength: 10,
        description: { en: "import or export", zh: "import（导入）或 export（导出）" },
      },
      {
        name: "target",
        type: "string",
        required: false,
        maxLength: 1000,
        description: {
          en: "export: the character's name; import in the terminal: the card's file path",
          zh: "导出：角色名；在终端导入：角色卡的文件路径",
        },
      },
    ],
  } as const,
  async (ctx, args) => {
    switch (args.action.toLowerCase()) {
      case "import":
        return importCard(ctx, args.target);
      case "export":
        if (args.target === undefined) throw new UserFacingError("card.usage");
        return exportCard(ctx, args.target);
      default:
        throw new UserFacingError("card.usage");
    }
  },
);

async function importCard(ctx: CommandContext, path: string | undefined): Promise<CommandOutcome> {
  const file = ctx.attachment ?? (path !== undefined && ctx.openPath !== undefined ? ctx.openPath(path) : undefined);
  if (file === undefined) throw new UserFacingError(ctx.openPath === undefined ? "card.noFile" : "card.noPath");
  if (file.size !== undefined && file.size > CARD_MAX_BYTES) {
    throw new UserFacingError("card.tooLarge", { size: megabytes(file.size), max: megabytes(CARD_MAX_BYTES) });
  }
  // Everything is read and checked before anything changes.
  const prepared = ctx.cards.prepare(readCard(await file.read(CARD_MAX_BYTES)));
  const storyId = ctx.session.storyId;
  if (storyId !== undefined) {
    await storyUnderControl(ctx);
    const done = await ctx.cards.importInto(storyId, prepared);
    await ctx.surface.notice(report(ctx, done, done.replaced ? "card.replaced" : "card.imported"));
    return { kind: "done" };
  }
  // No story here: the card starts one.
  const premise = ctx.cards.premiseOf(prepared);
  const quota = await withinQuota(ctx);
  const settings = await ctx.settings.get(ctx.conversation.platform, ctx.conversation.workspaceId);
  await ctx.cards.check(prepared, settings.rating);
  let imported: CardImport | undefined;
  const ticket = await ctx.stories.start({
    actor: ctx.actor,
    conversation: ctx.conversation,
    premise,
    genre: "none",
    rating: settings.rating,
    chapterLength: settings.chapterLength,
    ...(quota === undefined ? {} : { quota }),
    seed: async (tx, id) => {
      imported = await ctx.cards.write(tx, id, prepared);
    },
  });
  ctx.session.storyId = ticket.storyId;
  await ctx.surface.notice(report(ctx, imported ?? summary(prepared), "card.started"));
  return { kind: "writing", ticket };
}

function summary(prepared: PreparedCard): CardImport {
  return {
    name: prepared.name,
    replaced: false,
    lore: prepared.lore.length,
    cut: prepared.cut,
    skipped: prepared.skipped,
  };
}

/** What an import did, with what was cut or left out. */
function report(ctx: CommandContext, done: CardImport, id: "card.imported" | "card.replaced" | "card.started"): string {
  const lines = [t(ctx.locale, id, { name: done.name, lore: done.lore })];
  if (done.cut.length > 0) {
    const fields = done.cut.map((c) => t(ctx.locale, "card.cutField", { ...c })).join(", ");
    lines.push(t(ctx.locale, "card.cut", { fields }));
  }
  if (done.skipped > 0) {
    lines.push(t(ctx.locale, "card.skipped", { count: done.skipped, max: CARD_LIMITS.loreEntries }));
  }
  return lines.join("\n");
}

async function exportCard(ctx: CommandContext, name: string): Promise<CommandOutcome> {
  const storyId = currentStory(ctx);
  const exported = await ctx.cards.exportData(storyId, name);
  const file = `${slugify(exported.name) || "character"}.card.json`;
  await ctx.surface.sendFile({ name: file, content: writeCardJson(exported) });
  await ctx.surface.notice(t(ctx.locale, "card.exported", { name: exported.name, lore: exported.lore, file }));
  return { kind: "done" };
}
