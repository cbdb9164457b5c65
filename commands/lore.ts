import { t } from "../src/i18n/messages.ts";
import { splitForLimit } from "../src/render/split.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { LORE_LIMITS, type LoreOwner, type LoreView, validateLore } from "../src/story/lore-service.ts";
import { currentStory, storyUnderControl } from "./story-context.ts";
import { type CommandContext, defineCommand } from "./types.ts";

/** What `/lore ...` asks for, read from its text. */
export type LoreRequest =
  | { kind: "list" }
  | { kind: "show"; n: number }
  | { kind: "add"; keys: string; text: string }
  | { kind: "edit"; n: number; keys: string; text: string }
  | { kind: "remove"; n: number };

/** Characters of a whole `/lore` line: an entry's text, its keys and the words around them. */
const MAX_LORE_LINE = LORE_LIMITS.content + LORE_LIMITS.keys * (LORE_LIMITS.keyLength + 2) + 100;

/** A list line shows this much of an entry (`/lore <n>` shows it whole). */
const LIST_PREVIEW = 160;

/**
 * The request in `/lore`'s text: nothing (list), `<n>` (show), `add <keys>: <text>`,
 * `edit <n> <keys>: <text>`, `remove <n>`. Anything else is refused with the usage.
 */
export function parseLoreRequest(text: string): LoreRequest {
  const line = text.trim();
  if (line === "" || /^list$/i.test(line)) return { kind: "list" };
  const show = /^(\d{1,4})$/.exec(line);
  if (show) return { kind: "show", n: Number(show[1]) };
  const add = /^add\s+([\s\S]*)$/i.exec(line);
  if (add) return { kind: "add", ...keysAndText(add[1] ?? "") };
  const edit = /^edit\s+(\d{1,4})\s+([\s\S]*)$/i.exec(line);
  if (edit) return { kind: "edit", n: Number(edit[1]), ...keysAndText(edit[2] ?? "") };
  const remove = /^(?:remove|delete)\s+(\d{1,4})$/i.exec(line);
  if (remove) return { kind: "remove", n: Number(remove[1]) };
  throw new UserFacingError("error.loreUsage");
}

/**
 * `<keys>: <text>`: the colon that ends the keys is the first one outside a `/regex/` key
 * (a full-width colon counts too, as Chinese keyboards type it).
 */
function keysAndText(rest: string): { keys: string; text: string } {
  let inRegex = false;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i];
    if (c === "\\" && inRegex) {
      i++;
      continue;
    }
    if (c === "/" && (inRegex || /(^|,)\s*$/.test(rest.slice(0, i)))) inRegex = !inRegex;
    else if (!inRegex && (c === ":" || c === "：")) return { keys: rest.slice(0, i), text: rest.slice(i + 1) };
  }
  throw new UserFacingError("error.loreNoText");
}

function flagsOf(ctx: CommandContext, entry: LoreView): string {
  const marks = [
    // A constant entry without keys already shows as [*].
    ...(entry.constant && entry.keys.length > 0 ? [t(ctx.locale, "lore.always")] : []),
    ...(entry.order !== 100 ? [`#${entry.order}`] : []),
  ];
  const source =
    entry.source === "bible" || entry.source === "card" || entry.source === "theme"
      ? t(ctx.locale, "lore.fromSource", { source: t(ctx.locale, `lore.source.${entry.source}`) })
      : "";
  return `${marks.length === 0 ? "" : ` ${marks.join(" ")}`}${source}`;
}

function keysOf(entry: Pick<LoreView, "keys" | "constant">): string {
  return entry.keys.length === 0 ? "*" : entry.keys.join(", ");
}

function preview(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= LIST_PREVIEW ? flat : `${flat.slice(0, LIST_PREVIEW - 1)}…`;
}

/** Whose lore the text is about: a theme (`theme <name> ...`, moderators change it) or the story here. */
async function ownerOf(ctx: CommandContext, text: string): Promise<{ owner: LoreOwner; label: string; rest: string }> {
  const themed = /^theme\s+([\s\S]+)$/i.exec(text.trim());
  if (themed === null) {
    return { owner: { storyId: "" }, label: t(ctx.locale, "lore.thisStory"), rest: text };
  }
  const after = themed[1] ?? "";
  const ws = { platform: ctx.conversation.platform, externalId: ctx.conversation.workspaceId };
  // Theme names may hold spaces: the longest name the text starts with.
  const theme = (await ctx.themes.list(ws))
    .filter((th) => {
      const lower = after.toLowerCase();
      const name = th.name.toLowerCase();
      return lower === name || lower.startsWith(`${name} `) || lower.startsWith(`${name}\n`);
    })
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (theme === undefined) {
    throw new UserFacingError("error.loreNoTheme", { name: after.split(/\s+/)[0] ?? "" });
  }
  return {
    owner: { themeId: theme.id },
    label: t(ctx.locale, "lore.theme", { name: theme.name }),
    rest: after.slice(theme.name.length),
  };
}

/** Lore (world info) of the story here, or of a theme: list, show, add, edit, remove. */
export const lore = defineCommand(
  {
    name: "lore",
    description: {
      en: "World info: entries that enter the story when their keys come up",
      zh: "世界设定：关键词出现时加入故事的条目",
    },
    example: "/lore add Red Lantern, lanterns: a secret society that trades in ghosts",
    options: [
      {
        name: "what",
        type: "string",
        required: false,
        maxLength: MAX_LORE_LINE,
        description: {
          en: "Empty to list; <n>; add <keys>: <text>; edit <n> <keys>: <text>; remove <n>",
          zh: "留空列出；<编号>；add <关键词>: <内容>；edit <编号> <关键词>: <内容>；remove <编号>",
        },
      },
    ],
  } as const,
  async (ctx, args) => {
    const target = await ownerOf(ctx, args.what ?? "");
    const request = parseLoreRequest(target.rest);
    const changes = request.kind === "add" || request.kind === "edit" || request.kind === "remove";
    let owner = target.owner;
    if ("themeId" in owner) {
      // A theme's lore is the moderators' (their rules, their world).
      if (changes && !ctx.moderator) throw new UserFacingError("error.loreThemeModerator");
    } else {
      // In a shared chat only the starter or a moderator changes the story's lore.
      const storyId = changes ? await storyUnderControl(ctx) : currentStory(ctx);
      owner = { storyId };
    }
    const input =
      request.kind === "add" || request.kind === "edit" ? validateLore(request.keys, request.text) : undefined;
    switch (request.kind) {
      case "list": {
        const entries = await ctx.lore.list(owner);
        const max = "storyId" in owner ? LORE_LIMITS.storyEntries : LORE_LIMITS.themeEntries;
        const text =
          entries.length === 0
            ? t(ctx.locale, "lore.none", { owner: capitalized(target.label) })
            : t(ctx.locale, "lore.list", {
                owner: target.label,
                count: entries.length,
                max,
                entries: entries
                  .map((e) =>
                    t(ctx.locale, "lore.item", {
                      n: e.n,
                      keys: keysOf(e),
                      content: preview(e.content),
                      flags: flagsOf(ctx, e),
                    }),
                  )
                  .join("\n"),
              });
        // A long list goes in several messages, cut between lines, within the chat's limit.
        for (const part of splitForLimit(text, ctx.surface.limits.maxMessageLength)) await ctx.surface.notice(part);
        return { kind: "done" };
      }
      case "show": {
        const e = await ctx.lore.entry(owner, request.n);
        await ctx.surface.notice(
          t(ctx.locale, "lore.shown", { n: e.n, keys: keysOf(e), flags: flagsOf(ctx, e), content: e.content }),
        );
        return { kind: "done" };
      }
      case "add": {
        const e = await ctx.lore.add(
          owner,
          input as NonNullable<typeof input>,
          "themeId" in owner ? "theme" : "reader",
        );
        await ctx.surface.notice(t(ctx.locale, "lore.added", { n: e.n, keys: keysOf(e) }));
        return { kind: "done" };
      }
      case "edit": {
        const e = await ctx.lore.edit(owner, request.n, input as NonNullable<typeof input>);
        await ctx.surface.notice(t(ctx.locale, "lore.edited", { n: e.n, keys: keysOf(e) }));
        return { kind: "done" };
      }
      case "remove": {
        const e = await ctx.lore.remove(owner, request.n);
        await ctx.surface.notice(t(ctx.locale, "lore.removed", { n: e.n, keys: keysOf(e) }));
        return { kind: "done" };
      }
    }
  },
);

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
