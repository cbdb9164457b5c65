/**
 * Book assembly: the current branch of a story as a `Book` (text, cast, art style and
 * the stored pictures), for the pure exporters of src/story/book.ts.
 */
import type { ImageStore } from "../art/image-store.ts";
import type { Locale } from "../i18n/locale.ts";
import { t } from "../i18n/messages.ts";
import type { Db } from "../store/db.ts";
import type { Book, BookImage } from "./book.ts";
import { UserFacingError } from "./errors.ts";
import { remixCredit, remixCreditText } from "./sharing.ts";
import { loadChain, loadStoryWithCanon } from "./snapshot.ts";
import { requireStory } from "./story-queries.ts";

/** A stored picture of a chapter. */
export interface StoredImage extends BookImage {
  chapterId: string;
}

export class BookAssembler {
  constructor(
    private readonly db: Db,
    /** Where drawn pictures are stored (IMAGE_DIR). */
    private readonly store: Pick<ImageStore, "read">,
  ) {}

  /**
   * The current branch as a book (text, cast, art style), with the stored pictures
   * of its chapters placed after each chapter's text.
   */
  async exportBook(storyId: string, locale: Locale): Promise<Book> {
    const story = await requireStory(this.db, storyId);
    const chain = (await loadChain(this.db, storyId, story.headChapterId)).filter((c) => c.status === "done");
    const canon = await loadStoryWithCanon(this.db, storyId);
    if (canon === null) throw new UserFacingError("error.noStory");
    const images = await this.imagesOf(chain.map((c) => c.id));
    const usedNames = new Set<string>();
    const credit = await remixCredit(this.db, storyId);
    return {
      id: story.id,
      title: story.title,
      premise: story.premise,
      language: story.language,
      cast: canon.characters.map((c) => ({ name: c.name, role: c.role, appearance: c.appearance })),
      ...(credit === undefined
        ? {}
        : {
            credit:
              credit.code === null
                ? remixCreditText(locale, credit)
                : t(locale, "remix.creditCode", {
                    credit: remixCreditText(locale, credit),
                    remix: "/remix",
                    code: credit.code,
                  }),
          }),
      artStyle: story.artStyle,
      modified: story.updatedAt,
      chapters: chain.map((c) => ({
        number: c.number,
        title: c.title,
        action: c.action,
        text: c.text,
        images: images
          .filter((i) => i.chapterId === c.id && !usedNames.has(i.fileName) && usedNames.add(i.fileName))
          .map(({ fileName, bytes, mime, caption }) => ({ fileName, bytes, mime, caption })),
      })),
      labels: {
        untitled: t(locale, "untitled"),
        chapter: (number) => t(locale, "chapter.headingUntitled", { number }),
        cast: t(locale, "export.cast"),
        illustration: t(locale, "export.illustration"),
      },
    };
  }

  /** The stored pictures of these chapters, in drawing order (missing files are skipped). */
  async imagesOf(chapterIds: string[]): Promise<StoredImage[]> {
    const rows = await this.db.illustration.findMany({
      where: { chapterId: { in: chapterIds }, status: "done" },
      orderBy: { createdAt: "asc" },
      select: { chapterId: true, file: true, mime: true, caption: true },
    });
    const out: StoredImage[] = [];
    for (const row of rows) {
      const bytes = this.store.read(row.file);
      if (bytes === undefined) continue;
      out.push({
        chapterId: row.chapterId,
        fileName: row.file.split("/").at(-1) ?? row.file,
        bytes,
        mime: row.mime,
        caption: row.caption,
      });
    }
    return out;
  }
}
