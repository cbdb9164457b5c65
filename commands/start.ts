import { GENRES, type Genre } from "../src/agent/types.ts";
import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { LIMITS } from "../src/story/limits.ts";
import { THEME_LIMITS, type ThemeView } from "../src/story/themes.ts";
import { withinQuota } from "./story-context.ts";
import { type CommandContext, defineCommand } from "./types.ts";

export const start = defineCommand(
  {
    name: "start",
    description: { en: "Begin a new story from a scenario", zh: "根据设定开始一个新故事" },
    example: "/start a ghost detective in 1920s Shanghai",
    options: [
      {
        name: "scenario",
        type: "string",
        required: false,
        maxLength: LIMITS.scenario,
        description: { en: "Who, where, what is at stake", zh: "谁、在哪里、面临什么" },
      },
      {
        name: "genre",
        type: "string",
        required: false,
        description: { en: `One of: ${GENRES.join(", ")}`, zh: `可选：${GENRES.join("、")}` },
      },
      {
        name: "theme",
        type: "string",
        required: false,
        maxLength: THEME_LIMITS.name,
        description: { en: "One of the themes offered here", zh: "这里提供的主题之一" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const genre = parseGenre(args.genre);
    if (args.genre !== undefined && genre === undefined) return { kind: "ask", question: { field: "genre" } };
    if (args.scenario === undefined) {
      return { kind: "ask", question: genre === undefined ? { field: "genre" } : { field: "scenario", genre } };
    }
    let theme: { id: string; rating: string; artStyle: string } | undefined;
    if (args.theme !== undefined) {
      const found = await ctx.themes.find(workspaceOf(ctx), args.theme, themeScope(ctx));
      if (found.rating === "adult" && !ctx.ageRestricted)
        throw new UserFacingError("error.adultTheme", { name: found.name });
      theme = { id: found.id, rating: found.rating, artStyle: found.artStyle };
    }
    const quota = await withinQuota(ctx);
    const settings = await ctx.settings.get(ctx.conversation.platform, ctx.conversation.workspaceId);
    const ticket = await ctx.stories.start({
      actor: ctx.actor,
      conversation: ctx.conversation,
      premise: args.scenario,
      genre: genre ?? "none",
      rating: settings.rating,
      chapterLength: settings.chapterLength,
      ...(theme === undefined ? {} : { theme }),
      ...(quota === undefined ? {} : { quota }),
    });
    ctx.session.storyId = ticket.storyId;
    return { kind: "writing", ticket };
  },
);

/** The workspace a conversation belongs to (a Discord server, a Telegram chat). */
export function workspaceOf(ctx: CommandContext): { platform: string; externalId: string } {
  return { platform: ctx.conversation.platform, externalId: ctx.conversation.workspaceId };
}

/** Private conversations are offered the owner's catalogue too. */
export function themeScope(ctx: CommandContext): { catalogue: boolean } {
  return { catalogue: ctx.privateChat === true };
}

/** The themes /start offers here: the workspace's own, the catalogue in private, none adult where that cannot start. */
export async function themesOffered(ctx: CommandContext): Promise<ThemeView[]> {
  const themes = await ctx.themes.offered(workspaceOf(ctx), themeScope(ctx));
  return themes.filter((theme) => theme.rating !== "adult" || ctx.ageRestricted);
}

/** A genre from its name (either language), its number in GENRES, or "" for none. */
export function parseGenre(input: string | undefined): Genre | undefined {
  if (input === undefined) return undefined;
  const text = input.trim().toLowerCase();
  if (text === "") return "none";
  if (/^\d+$/.test(text)) return GENRES[Number(text) - 1];
  const normalized = text.replace(/\s+/g, "-");
  return GENRES.find((g) => g === normalized || t("zh", `genre.${g}`) === text);
}

/** What a line typed at the genre question means. */
export type GenreAnswer =
  | { genre: Genre }
  | { theme: ThemeView }
  | { genre: "none"; scenario: string }
  | { badNumber: string; max: number };

/**
 * A line typed at /start's genre question, the same on every platform: a genre (its name,
 * its number, or nothing for none) picks it; a theme offered here (its name, or its number,
 * counted on after the genres) picks it; another number is refused; anything else is the
 * scenario itself, with no genre (the reader skipped the question).
 */
export function answerGenreQuestion(line: string, themes: readonly ThemeView[] = []): GenreAnswer {
  const text = line.trim();
  const genre = parseGenre(text);
  if (genre !== undefined) return { genre };
  const max = GENRES.length + themes.length;
  if (/^\d+$/.test(text)) {
    const theme = themes[Number(text) - GENRES.length - 1];
    return theme === undefined ? { badNumber: text, max } : { theme };
  }
  const theme = themes.find((th) => th.name.toLowerCase() === text.toLowerCase());
  if (theme !== undefined) return { theme };
  return { genre: "none", scenario: text };
}
