import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { RATINGS, THEME_LIMITS } from "../src/story/themes.ts";
import { workspaceOf } from "./start.ts";
import { defineCommand } from "./types.ts";

export const THEME_ACTIONS = ["add", "edit", "remove", "list"] as const;

/**
 * Moderators manage the workspace's themes (a Discord server's: Manage Server; a Telegram
 * group's: its admins; a private chat's or the terminal's: the reader); anyone may list them.
 * Typed: `/theme add name:Noir rating:teen rules:no gore`, `/theme remove Noir`.
 */
export const theme = defineCommand(
  {
    name: "theme",
    description: { en: "Manage the story themes of this server or chat", zh: "管理本服务器或群聊的故事主题" },
    example: "/theme add name:Noir rating:teen rules:no gore",
    keyedText: true,
    options: [
      {
        name: "action",
        type: "string",
        required: true,
        description: { en: THEME_ACTIONS.join(", "), zh: THEME_ACTIONS.join("、") },
      },
      {
        name: "name",
        type: "string",
        required: false,
        maxLength: THEME_LIMITS.name,
        description: { en: "Theme name", zh: "主题名称" },
      },
      {
        name: "description",
        type: "string",
        required: false,
        maxLength: THEME_LIMITS.description,
        description: { en: "What stories of this theme are about", zh: "这个主题的故事讲什么" },
      },
      {
        name: "rules",
        type: "string",
        required: false,
        maxLength: THEME_LIMITS.rules,
        description: { en: "Rules and banned topics", zh: "规则与禁止的话题" },
      },
      {
        name: "rating",
        type: "string",
        required: false,
        description: { en: RATINGS.join(", "), zh: RATINGS.join("、") },
      },
      {
        name: "art_style",
        type: "string",
        required: false,
        maxLength: THEME_LIMITS.artStyle,
        description: { en: "Illustration style, e.g. ink wash", zh: "插图风格，例如水墨" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const ws = workspaceOf(ctx);
    const action = args.action.toLowerCase();
    if (action === "list") {
      const themes = await ctx.themes.list(ws);
      const lines = themes.map((th) =>
        t(ctx.locale, "theme.item", { name: th.name, rating: th.rating, description: th.description || "—" }),
      );
      await ctx.surface.notice(lines.length === 0 ? t(ctx.locale, "theme.none") : lines.join("\n"));
      return { kind: "done" };
    }
    if (!(THEME_ACTIONS as readonly string[]).includes(action)) {
      throw new UserFacingError("error.themeAction", { input: args.action.slice(0, 20), example: theme.spec.example });
    }
    if (!ctx.moderator) throw new UserFacingError("error.notThemeModerator");
    if (args.name === undefined) {
      throw new UserFacingError("error.missingArgument", {
        name: "theme",
        option: "name",
        example: "/theme add name:Noir",
      });
    }
    const fields = {
      ...(args.description === undefined ? {} : { description: args.description }),
      ...(args.rules === undefined ? {} : { rules: args.rules }),
      ...(args.rating === undefined ? {} : { rating: args.rating as "general" }),
      ...(args.art_style === undefined ? {} : { artStyle: args.art_style }),
    };
    if (action === "remove") {
      await ctx.themes.remove(ws, args.name);
      await ctx.surface.notice(t(ctx.locale, "theme.removed", { name: args.name }));
      return { kind: "done" };
    }
    const saved =
      action === "add"
        ? await ctx.themes.add(ws, { name: args.name, ...fields })
        : await ctx.themes.edit(ws, args.name, fields);
    await ctx.surface.notice(t(ctx.locale, "theme.saved", { name: saved.name }));
    return { kind: "done" };
  },
);
