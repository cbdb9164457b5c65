import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import type { WorkspaceSettings } from "../src/story/workspace-settings.ts";
import { platformWords } from "./dispatch.ts";
import { defineCommand } from "./types.ts";

export const settings = defineCommand(
  {
    name: "settings",
    description: {
      en: "Show or change this chat's settings (language, illustrations, vote window)",
      zh: "查看或修改本群设置（语言、插图、投票时长）",
    },
    example: "/settings votes 120",
    platforms: ["telegram", "discord"],
    options: [
      {
        name: "change",
        type: "string",
        required: false,
        maxLength: 200,
        description: {
          en: "language en|zh, illustrations on|off, images-per-chapter <n>, images-per-day <n>, votes <seconds>, sharing on|off",
          zh: "language en|zh、illustrations on|off、images-per-chapter <数>、images-per-day <数>、votes <秒>、sharing on|off",
        },
      },
    ],
  } as const,
  async (ctx, args) => {
    const { platform, workspaceId } = ctx.conversation;
    if (args.change === undefined) {
      const s = await ctx.settings.get(platform, workspaceId);
      await ctx.surface.notice(
        t(ctx.locale, "settings.show", {
          ...platformWords(platform, ctx.locale),
          locale: s.locale,
          // On in the settings means nothing without an image model: say so.
          illustrations: !s.illustrations
            ? "off"
            : ctx.illustrations.available
              ? "on"
              : "on, but no IMAGE_MODEL is set",
          imagesPerChapter: s.imagesPerChapter,
          imagesPerDay: s.imagesPerDay,
          voteSeconds: s.voteSeconds,
          sharing: s.sharing ? "on" : "off",
          rating: s.rating,
          length: s.chapterLength,
          quota: s.dailyQuota === 0 ? "none" : s.dailyQuota,
          channels: s.allowedChannels.length === 0 ? "all" : s.allowedChannels.map((c) => `<#${c}>`).join(" "),
        }),
      );
      return { kind: "done" };
    }
    if (!ctx.moderator) throw new UserFacingError("error.notModerator");
    await ctx.settings.set(platform, workspaceId, parseChange(args.change));
    await ctx.surface.notice(t(ctx.locale, "settings.changed"));
    return { kind: "done" };
  },
);

/** "language zh" / "illustrations off" / "votes 120" -> a settings patch. */
export function parseChange(text: string): WorkspaceSettings {
  const [key = "", value = ""] = text.trim().toLowerCase().split(/\s+/);
  if (key === "language" && (value === "en" || value === "zh")) return { locale: value };
  if (key === "illustrations" && (value === "on" || value === "off")) return { illustrations: value === "on" };
  if (key === "votes" && /^\d{1,6}$/.test(value)) return { voteSeconds: Number(value) };
  if (key === "images-per-chapter" && /^\d{1,2}$/.test(value)) return { imagesPerChapter: Number(value) };
  if (key === "images-per-day" && /^\d{1,5}$/.test(value)) return { imagesPerDay: Number(value) };
  if (key === "length" && (value === "short" || value === "medium" || value === "long"))
    return { chapterLength: value };
  if (key === "sharing" && (value === "on" || value === "off")) return { sharing: value === "on" };
  if (key === "quota" && /^\d{1,4}$/.test(value)) return { dailyQuota: Number(value) };
  if (key === "rating" && (value === "general" || value === "teen" || value === "adult")) return { rating: value };
  if (key === "channels") {
    // "all", or channel mentions / ids: "<#123> <#456>".
    const rest = text.trim().split(/\s+/).slice(1).join(" ");
    if (rest.toLowerCase() === "all") return { allowedChannels: [] };
    const ids = [...rest.matchAll(/\d{5,25}/g)].map((m) => m[0]);
    if (ids.length > 0) return { allowedChannels: ids };
  }
  throw new UserFacingError("error.badSetting");
}
