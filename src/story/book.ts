/**
 * Book exports of one branch of a story: Markdown (alone or zipped with its images) and EPUB 3.
 * Pure: bytes in, bytes out; the caller decides where they go.
 */

import { type ZipOptions, type Zippable, zipSync } from "fflate";
import { escapeXml } from "../render/xml.ts";

export interface BookImage {
  /** File name inside the export, e.g. "ch03-1.png" (unique within the book). */
  fileName: string;
  bytes: Uint8Array;
  /** image/png | image/jpeg | image/webp (image/gif is accepted too). */
  mime: string;
  caption: string;
}

export interface BookChapter {
  number: number;
  /** "" -> `labels.chapter(number)`. */
  title: string;
  /** The choice that led here ("" for chapter 1), shown in italics. */
  action: string;
  /** Prose, paragraphs separated by blank lines. */
  text: string;
  /** Shown after the chapter's text, in order. */
  images: BookImage[];
}

export interface BookLabels {
  /** Title of a story that has none yet. */
  untitled: string;
  /** Title of an untitled chapter. */
  chapter: (n: number) => string;
  /** Heading of the cast list. */
  cast: string;
  /** Alt text of an image without a caption; prefix of the art-style line. */
  illustration: string;
}

export interface Book {
  /** Stable story id (the EPUB's dc:identifier is urn:inkloom:<id>). */
  id: string;
  title: string;
  premise: string;
  /** BCP-47, e.g. "en", "zh"; "" -> "en". */
  language: string;
  cast: { name: string; role: string; appearance: string }[];
  /** A remix's credit to the story it remixes (/remix); absent otherwise. */
  credit?: string;
  /** "" when none. */
  artStyle: string;
  chapters: BookChapter[];
  /** For dcterms:modified and the zip entries' timestamps. */
  modified: Date;
  labels: BookLabels;
}

/** What the Markdown needs of a book. */
export type BookText = Pick<Book, "title" | "premise" | "cast" | "artStyle" | "chapters" | "labels" | "credit">;

const IMAGE_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);

// ---------------------------------------------------------------------------------------------
// Markdown

/**
 * The book as Markdown. Images are linked as `<imageDir>/<fileName>` after their chapter's
 * text, with the caption as alt text and again as an italic line.
 */
export function bookToMarkdown(book: BookText, imageDir = "images"): string {
  const lines: string[] = [
    `# ${book.title || book.labels.untitled}`,
    "",
    `> ${book.premise.replace(/\n/g, "\n> ")}`,
    "",
  ];
  if (book.credit !== undefined) lines.push(`*${mdInline(oneLine(book.credit))}*`, "");
  if (book.cast.length > 0) {
    lines.push(`## ${book.labels.cast}`, "");
    for (const c of book.cast) {
      const appearance = oneLine(c.appearance);
      lines.push(`- **${c.name}**${c.role ? ` — ${c.role}` : ""}${appearance ? `: ${appearance}` : ""}`);
    }
    lines.push("");
  }
  if (book.artStyle.trim() !== "" && hasImages(book)) {
    lines.push(`*${mdInline(`${book.labels.illustration}: ${oneLine(book.artStyle)}`)}*`, "");
  }
  const dir = imageDir.replace(/\/+$/, "");
  for (const ch of book.chapters) {
    lines.push(`## ${ch.number}. ${ch.title || book.labels.chapter(ch.number)}`, "");
    if (ch.action !== "") lines.push(`*${ch.action}*`, "");
    lines.push(ch.text.trim(), "");
    for (const img of ch.images) {
      const caption = oneLine(img.caption);
      const alt = mdInline(caption || book.labels.illustration);
      lines.push(`![${alt}](${dir === "" ? "" : `${dir}/`}${urlSegment(img.fileName)})`, "");
      if (caption !== "") lines.push(`*${mdInline(caption)}*`, "");
    }
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

/** story.md plus images/<fileName> for each image, zipped. */
export function bookToMarkdownZip(book: Book): Uint8Array {
  const images = bookImages(book);
  const mtime = zipTime(book.modified);
  const files: Zippable = { "story.md": [utf8(bookToMarkdown(book, "images")), { level: 9, mtime }] };
  // Images are compressed already: store them.
  for (const img of images) files[`images/${img.fileName}`] = [img.bytes, { level: 0, mtime }];
  return zipSync(files);
}

// ---------------------------------------------------------------------------------------------
// EPUB 3

const CONTAINER_XML = `<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
`;

const STYLE_CSS = `body { margin: 0 5%; line-height: 1.5; }
h1 { text-align: center; margin: 1.5em 0 1em; }
p { margin: 0 0 0.8em; }
.action { font-style: italic; text-align: center; margin-bottom: 1.5em; }
.premise { font-style: italic; }
figure { margin: 1.5em 0; text-align: center; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; max-height: 90vh; }
figcaption { font-style: italic; font-size: 0.9em; margin-top: 0.4em; }
`;

/** Languages written right to left (primary subtag). */
const RTL = new Set(["ar", "arc", "ckb", "dv", "fa", "he", "iw", "ku", "ps", "sd", "ug", "ur", "yi"]);

interface Doc {
  id: string;
  href: string;
  title: string;
}

/**
 * A valid EPUB 3: `mimetype` first (stored, no extra field), META-INF/container.xml,
 * OEBPS/content.opf, a nav document, a title page, one XHTML per chapter and the images
 * (the first one is the cover image).
 */
export function bookToEpub(book: Book): Uint8Array {
  const images = bookImages(book);
  const lang = book.language.trim() || "en";
  const rtl = RTL.has(lang.split("-")[0]?.toLowerCase() ?? "");
  const title = book.title.trim() || book.labels.untitled;
  const mtime = zipTime(book.modified);

  const titlePage: Doc = { id: "title-page", href: "title.xhtml", title };
  const chapterDocs: Doc[] = book.chapters.map((ch, i) => ({
    id: `chapter-${i + 1}`,
    href: `chapter-${String(i + 1).padStart(3, "0")}.xhtml`,
    title: chapterTitle(ch, book.labels),
  }));
  const imageIds = new Map(images.map((img, i) => [img, `image-${i + 1}`]));

  const page = (docTitle: string, body: string): string => xhtmlPage(lang, rtl, docTitle, body);
  const text: Record<string, string> = {
    "OEBPS/content.opf": packageDocument(book, lang, rtl, title, titlePage, chapterDocs, images, imageIds),
    "OEBPS/nav.xhtml": page(title, navBody(title, titlePage, book.chapters, chapterDocs)),
    "OEBPS/style.css": STYLE_CSS,
    [`OEBPS/${titlePage.href}`]: page(title, titleBody(book, title, images.length > 0)),
  };
  book.chapters.forEach((ch, i) => {
    const doc = chapterDocs[i];
    if (doc !== undefined) text[`OEBPS/${doc.href}`] = page(doc.title, chapterBody(ch, doc, book.labels));
  });

  const files: Zippable = {
    // The OCF requires this first, uncompressed and without an extra field.
    mimetype: [utf8("application/epub+zip"), { level: 0, mtime }],
    "META-INF/container.xml": [utf8(CONTAINER_XML), { level: 9, mtime }],
  };
  for (const [name, content] of Object.entries(text)) files[name] = [utf8(content), { level: 9, mtime }];
  for (const img of images) files[`OEBPS/images/${img.fileName}`] = [img.bytes, { level: 0, mtime }];
  return zipSync(files);
}

function packageDocument(
  book: Book,
  lang: string,
  rtl: boolean,
  title: string,
  titlePage: Doc,
  chapterDocs: Doc[],
  images: BookImage[],
  imageIds: Map<BookImage, string>,
): string {
  const cover = images[0];
  const coverId = cover === undefined ? undefined : imageIds.get(cover);
  const manifest = [
    `<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>`,
    `<item id="css" href="style.css" media-type="text/css"/>`,
    ...[titlePage, ...chapterDocs].map(
      (d) => `<item id="${d.id}" href="${xmlAttr(d.href)}" media-type="application/xhtml+xml"/>`,
    ),
    ...images.map((img) => {
      const id = imageIds.get(img) ?? "";
      const props = id === coverId ? ` properties="cover-image"` : "";
      return `<item id="${id}" href="images/${xmlAttr(urlSegment(img.fileName))}" media-type="${img.mime}"${props}/>`;
    }),
  ];
  const metadata = [
    `<dc:identifier id="book-id">${escapeXml(`urn:inkloom:${book.id}`)}</dc:identifier>`,
    `<dc:title>${escapeXml(title)}</dc:title>`,
    `<dc:language>${escapeXml(lang)}</dc:language>`,
    ...(book.premise.trim() === "" ? [] : [`<dc:description>${escapeXml(book.premise.trim())}</dc:description>`]),
    `<meta property="dcterms:modified">${epubDate(book.modified)}</meta>`,
    // EPUB 2 reading systems find the cover this way.
    ...(coverId === undefined ? [] : [`<meta name="cover" content="${coverId}"/>`]),
  ];
  const spine = [titlePage, ...chapterDocs].map((d) => `<itemref idref="${d.id}"/>`);
  const indent = (items: string[]): string => items.map((s) => `    ${s}`).join("\n");
  return `<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="book-id" xml:lang="${xmlAttr(lang)}"${rtl ? ` dir="rtl"` : ""}>
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
${indent(metadata)}
  </metadata>
  <manifest>
${indent(manifest)}
  </manifest>
  <spine${rtl ? ` page-progression-direction="rtl"` : ""}>
${indent(spine)}
  </spine>
</package>
`;
}

function xhtmlPage(lang: string, rtl: boolean, title: string, body: string): string {
  const l = xmlAttr(lang);
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="${l}" lang="${l}"${rtl ? ` dir="rtl"` : ""}>
<head>
  <meta charset="UTF-8"/>
  <title>${escapeXml(title)}</title>
  <link rel="stylesheet" type="text/css" href="style.css"/>
</head>
<body>
${body}
</body>
</html>
`;
}

function navBody(title: string, titlePage: Doc, chapters: BookChapter[], docs: Doc[]): string {
  const items = [`<li><a href="${xmlAttr(titlePage.href)}">${escapeXml(title)}</a></li>`];
  chapters.forEach((ch, i) => {
    const doc = docs[i];
    if (doc !== undefined)
      items.push(`<li><a href="${xmlAttr(doc.href)}">${ch.number}. ${escapeXml(doc.title)}</a></li>`);
  });
  return `<nav epub:type="toc" id="toc">
  <h1>${escapeXml(title)}</h1>
  <ol>
${items.map((s) => `    ${s}`).join("\n")}
  </ol>
</nav>`;
}

function titleBody(book: Book, title: string, illustrated: boolean): string {
  const parts = [`<section epub:type="titlepage">`, `<h1>${escapeXml(title)}</h1>`];
  for (const p of paragraphs(book.premise)) parts.push(`<p class="premise">${p}</p>`);
  if (book.credit !== undefined) parts.push(`<p class="premise">${escapeXml(oneLine(book.credit))}</p>`);
  if (book.cast.length > 0) {
    parts.push(`<h2>${escapeXml(book.labels.cast)}</h2>`, "<ul>");
    for (const c of book.cast) {
      const role = c.role.trim() === "" ? "" : ` — ${escapeXml(c.role.trim())}`;
      const appearance = oneLine(c.appearance);
      parts.push(
        `<li><strong>${escapeXml(c.name)}</strong>${role}${appearance === "" ? "" : `: ${escapeXml(appearance)}`}</li>`,
      );
    }
    parts.push("</ul>");
  }
  if (illustrated && book.artStyle.trim() !== "") {
    parts.push(`<p><em>${escapeXml(`${book.labels.illustration}: ${oneLine(book.artStyle)}`)}</em></p>`);
  }
  parts.push("</section>");
  return parts.join("\n");
}

function chapterBody(ch: BookChapter, doc: Doc, labels: BookLabels): string {
  const parts = [`<section epub:type="chapter" id="${doc.id}">`, `<h1>${escapeXml(doc.title)}</h1>`];
  if (ch.action.trim() !== "") parts.push(`<p class="action"><em>${escapeXml(oneLine(ch.action))}</em></p>`);
  for (const p of paragraphs(ch.text)) parts.push(`<p>${p}</p>`);
  for (const img of ch.images) {
    const caption = oneLine(img.caption);
    parts.push(
      "<figure>",
      `<img src="images/${xmlAttr(urlSegment(img.fileName))}" alt="${xmlAttr(caption || labels.illustration)}"/>`,
      ...(caption === "" ? [] : [`<figcaption>${escapeXml(caption)}</figcaption>`]),
      "</figure>",
    );
  }
  parts.push("</section>");
  return parts.join("\n");
}

/** Escaped paragraphs (split on blank lines); single line breaks become <br/>. */
function paragraphs(text: string): string[] {
  return text
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n/)
    .map((p) => p.trim())
    .filter((p) => p !== "")
    .map((p) =>
      p
        .split("\n")
        .map((line) => escapeXml(line.trim()))
        .join("<br/>"),
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** An EPUB chapter's title (never blank: navigation links need text). */
function chapterTitle(ch: BookChapter, labels: BookLabels): string {
  return ch.title.trim() || labels.chapter(ch.number);
}

function hasImages(book: BookText): boolean {
  return book.chapters.some((ch) => ch.images.length > 0);
}

/** Every image of the book, in order; rejects names that are unsafe, duplicated or of an unknown type. */
function bookImages(book: Book): BookImage[] {
  const seen = new Set<string>();
  const images: BookImage[] = [];
  for (const ch of book.chapters) {
    for (const img of ch.images) {
      const name = img.fileName;
      // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
      if (name === "" || name.startsWith(".") || /[/\\:*?"<>|\u0000-\u001f\u007f]/.test(name)) {
        throw new Error(`book image: unsafe file name ${JSON.stringify(name)}`);
      }
      if (seen.has(name)) throw new Error(`book image: duplicate file name ${JSON.stringify(name)}`);
      if (!IMAGE_TYPES.has(img.mime)) throw new Error(`book image ${name}: unsupported type ${img.mime}`);
      seen.add(name);
      images.push(img);
    }
  }
  return images;
}

/** An attribute value: escaped, on one line. */
function xmlAttr(text: string): string {
  return escapeXml(text).replace(/[\t\n\r]/g, " ");
}

/** A file name as one URL path segment (also safe inside a Markdown link). */
function urlSegment(name: string): string {
  return encodeURIComponent(name).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

/** Inline Markdown text that must not open emphasis, links or images. */
function mdInline(text: string): string {
  return text.replace(/[\\`*_[\]<>]/g, "\\$&");
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** YYYY-MM-DDThh:mm:ssZ (UTC, whole seconds). */
function epubDate(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new Error("book: invalid modified date");
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

/**
 * The zip entries' timestamp. Zip (DOS) times have no time zone and fflate reads the local
 * fields of a Date, so build a Date whose local fields are `date`'s UTC fields: the bytes then
 * do not depend on the machine's time zone. Clamped to what a DOS time can hold (1980..2099).
 */
function zipTime(date: Date): NonNullable<ZipOptions["mtime"]> {
  const ms = Number.isNaN(date.getTime()) ? 0 : date.getTime();
  const d = new Date(Math.min(Math.max(ms, Date.UTC(1980, 0, 1, 12)), Date.UTC(2099, 11, 31, 12)));
  return new Date(
    d.getUTCFullYear(),
    d.getUTCMonth(),
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
  );
}
