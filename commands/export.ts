import { t } from "../src/i18n/messages.ts";
import type { OutgoingFile } from "../src/render/surface.ts";
import { type Book, bookToEpub, bookToMarkdown, bookToMarkdownZip } from "../src/story/book.ts";
import { slugify } from "../src/story/export.ts";
import { currentStory } from "./story-context.ts";
import type { CommandContext } from "./types.ts";
import { defineCommand } from "./types.ts";

export const exportStory = defineCommand(
  {
    name: "export",
    description: {
      en: "Export the current branch: Markdown (a zip with the pictures) and EPUB",
      zh: "导出当前分支：Markdown（含插图的 zip）和 EPUB",
    },
    example: "/export",
    options: [],
  } as const,
  async (ctx) => {
    const storyId = currentStory(ctx);
    const book = await ctx.books.exportBook(storyId, ctx.locale);
    const base = `${slugify(book.title)}-${storyId.slice(-6)}`;
    const pictures = book.chapters.some((c) => c.images.length > 0);
    await send(
      ctx,
      pictures ? { name: `${base}.zip`, content: bookToMarkdownZip(book) } : markdownOnly(book, base),
      () => markdownOnly(book, base),
    );
    await send(ctx, { name: `${base}.epub`, content: bookToEpub(book) }, () => ({
      name: `${base}.epub`,
      content: bookToEpub(withoutPictures(book)),
    }));
    return { kind: "done" };
  },
);

function markdownOnly(book: Book, base: string): OutgoingFile {
  return { name: `${base}.md`, content: bookToMarkdown(withoutPictures(book)) };
}

function withoutPictures(book: Book): Book {
  return { ...book, chapters: book.chapters.map((c) => ({ ...c, images: [] })) };
}

/** Send `file`, or its text-only version when the pictures make it too large for the platform. */
async function send(ctx: CommandContext, file: OutgoingFile, textOnly: () => OutgoingFile): Promise<void> {
  const max = ctx.surface.limits.maxUploadBytes;
  const size = typeof file.content === "string" ? Buffer.byteLength(file.content) : file.content.byteLength;
  if (max === undefined || size <= max) {
    await ctx.surface.sendFile(file);
    return;
  }
  await ctx.surface.sendFile(textOnly());
  await ctx.surface.notice(t(ctx.locale, "export.textOnly", { file: file.name, max: Math.floor(max / 1_000_000) }));
}
