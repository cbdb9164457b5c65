import { unzipSync } from "fflate";
import { afterEach, describe, expect, it } from "vitest";
import { type Book, type BookImage, bookToEpub, bookToMarkdown, bookToMarkdownZip } from "../../src/story/book.ts";

// ---------------------------------------------------------------------------------------------
// A tiny XML 1.0 parser: throws on anything not well-formed, returns the element tree.

interface El {
  name: string;
  attrs: Record<string, string>;
  children: (El | string)[];
}

const NAME = /^[A-Za-z_:\u00C0-\uFFFF][\w.:\-\u00B7\u00C0-\uFFFF]*/;
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(raw: string, where: string): string {
  if (/[<]/.test(raw)) throw new Error(`raw < in ${where}`);
  return raw.replace(/&([^;]*);|&/g, (m, ref: string | undefined) => {
    if (ref === undefined) throw new Error(`bare & in ${where}`);
    const named = ENTITIES[ref];
    if (named !== undefined) return named;
    const num = /^#x([0-9a-fA-F]+)$/.exec(ref)?.[1] ?? /^#([0-9]+)$/.exec(ref)?.[1];
    if (num === undefined) throw new Error(`unknown entity ${m} in ${where}`);
    return String.fromCodePoint(Number.parseInt(num, ref.startsWith("#x") ? 16 : 10));
  });
}

function parseXml(src: string): El {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: characters XML 1.0 forbids
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(src)) throw new Error("illegal character");
  let i = 0;
  const skipMisc = (allowDoctype: boolean): void => {
    for (;;) {
      const ws = /^\s*/.exec(src.slice(i))?.[0] ?? "";
      i += ws.length;
      if (src.startsWith("<!--", i)) {
        const end = src.indexOf("-->", i + 4);
        if (end < 0) throw new Error("unterminated comment");
        i = end + 3;
      } else if (src.startsWith("<?", i)) {
        const end = src.indexOf("?>", i);
        if (end < 0) throw new Error("unterminated PI");
        i = end + 2;
      } else if (allowDoctype && src.startsWith("<!DOCTYPE", i)) {
        const end = src.indexOf(">", i);
        if (end < 0) throw new Error("unterminated doctype");
        i = end + 1;
      } else return;
    }
  };
  const parseElement = (): El => {
    if (src[i] !== "<") throw new Error(`expected < at ${i}`);
    i++;
    const name = NAME.exec(src.slice(i))?.[0];
    if (name === undefined) throw new Error(`bad element name at ${i}`);
    i += name.length;
    const el: El = { name, attrs: {}, children: [] };
    for (;;) {
      const ws = /^\s*/.exec(src.slice(i))?.[0] ?? "";
      i += ws.length;
      if (src.startsWith("/>", i)) {
        i += 2;
        return el;
      }
      if (src[i] === ">") {
        i++;
        break;
      }
      if (ws === "") throw new Error(`expected whitespace before attribute at ${i}`);
      const m = /^([A-Za-z_:][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/.exec(src.slice(i));
      if (m?.[1] === undefined) throw new Error(`bad attribute at ${i} in <${name}>`);
      if (m[1] in el.attrs) throw new Error(`duplicate attribute ${m[1]}`);
      el.attrs[m[1]] = decode(m[3] ?? m[4] ?? "", `attribute ${m[1]}`);
      i += m[0].length;
    }
    for (;;) {
      const next = src.indexOf("<", i);
      if (next < 0) throw new Error(`unclosed <${name}>`);
      if (next > i) el.children.push(decode(src.slice(i, next), `<${name}>`));
      i = next;
      if (src.startsWith("</", i)) {
        const m = /^<\/([^\s>]+)\s*>/.exec(src.slice(i));
        if (m?.[1] !== name) throw new Error(`</${m?.[1]}> closes <${name}>`);
        i += m[0].length;
        return el;
      }
      if (src.startsWith("<!--", i)) {
        const end = src.indexOf("-->", i);
        if (end < 0) throw new Error("unterminated comment");
        i = end + 3;
      } else if (src.startsWith("<![CDATA[", i)) {
        const end = src.indexOf("]]>", i);
        if (end < 0) throw new Error("unterminated CDATA");
        el.children.push(src.slice(i + 9, end));
        i = end + 3;
      } else if (src.startsWith("<?", i)) {
        const end = src.indexOf("?>", i);
        if (end < 0) throw new Error("unterminated PI");
        i = end + 2;
      } else el.children.push(parseElement());
    }
  };
  skipMisc(true);
  const root = parseElement();
  skipMisc(false);
  if (i !== src.length) throw new Error(`content after the root element at ${i}`);
  return root;
}

function all(el: El, name: string): El[] {
  const found: El[] = [];
  const walk = (e: El): void => {
    for (const c of e.children) {
      if (typeof c === "string") continue;
      if (c.name === name) found.push(c);
      walk(c);
    }
  };
  walk(el);
  return found;
}

function one(el: El, name: string): El {
  const found = all(el, name);
  expect(found, `exactly one <${name}>`).toHaveLength(1);
  return found[0] as El;
}

function textOf(el: El): string {
  return el.children.map((c) => (typeof c === "string" ? c : textOf(c))).join("");
}

describe("parseXml (the test's own well-formedness check)", () => {
  it("accepts well-formed XML and rejects broken XML", () => {
    expect(
      textOf(parseXml('<?xml version="1.0"?>\n<!DOCTYPE html>\n<a x="1"><b>&lt;&amp;&#x4E2D;</b><c/></a>\n')),
    ).toBe("<&中");
    for (const bad of [
      "<a><b></a></b>",
      "<a>x & y</a>",
      '<a x="1" x="2"/>',
      "<a>",
      "<a/><b/>",
      '<a x="<"/>',
      "<a>&nbsp;</a>",
    ]) {
      expect(() => parseXml(bad), bad).toThrow();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Fixtures

const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5, 0, 255]);
const JPEG = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 9, 8, 7, 6, 0xff, 0xd9]);
const WEBP = Uint8Array.from([0x52, 0x49, 0x46, 0x46, 4, 0, 0, 0, 0x57, 0x45, 0x42, 0x50]);

const TRICKY = `Tom & "Jerry" <b>雨夜</b> 'x' ]]> &amp;`;

function makeBook(withImages = true): Book {
  const img = (fileName: string, bytes: Uint8Array, mime: string, caption: string): BookImage => ({
    fileName,
    bytes,
    mime,
    caption,
  });
  return {
    id: "story-123",
    title: `The <Rain> & "Us" 雨`,
    premise: "A detective & a thief.\nThey meet <at night>.",
    language: "",
    cast: [
      { name: "Mara <M>", role: "detective", appearance: "grey coat & hat" },
      { name: "林", role: "", appearance: "" },
    ],
    artStyle: "ink & watercolor",
    chapters: [
      {
        number: 1,
        title: TRICKY,
        action: "",
        text: `First paragraph with ${TRICKY}.\n\nSecond paragraph,\nwith a line break.\n\n\n第三段：中文。`,
        images: withImages
          ? [
              img("ch01-1.png", PNG, "image/png", `A cover <with> "quotes" & 中文`),
              img("ch01-2.jpg", JPEG, "image/jpeg", ""),
            ]
          : [],
      },
      {
        number: 2,
        title: "",
        action: `I open the door & say "hi" <loudly>`,
        text: "The door opens.",
        images: withImages ? [img("ch02-1.webp", WEBP, "image/webp", "The door")] : [],
      },
    ],
    modified: new Date(Date.UTC(2026, 10, 26, 12, 34, 56, 789)),
    labels: {
      untitled: "Untitled",
      chapter: (n) => `Chapter ${n}`,
      cast: "Cast",
      illustration: "Illustration",
    },
  };
}

const str = (b: Uint8Array | undefined): string => new TextDecoder("utf-8", { fatal: true }).decode(b);

function u16(b: Uint8Array, at: number): number {
  return (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
}
function u32(b: Uint8Array, at: number): number {
  return (u16(b, at) | (u16(b, at + 2) << 16)) >>> 0;
}

/** Entry names in the order of the local file headers. */
function localEntryNames(zip: Uint8Array): string[] {
  const names: string[] = [];
  let at = 0;
  while (u32(zip, at) === 0x04034b50) {
    const nameLen = u16(zip, at + 26);
    const extraLen = u16(zip, at + 28);
    names.push(str(zip.subarray(at + 30, at + 30 + nameLen)));
    at += 30 + nameLen + extraLen + u32(zip, at + 18);
  }
  return names;
}

/** Resolve an href relative to a file in the zip (no "..", as the book has none). */
function resolve(base: string, href: string): string {
  const dir = base.includes("/") ? base.slice(0, base.lastIndexOf("/") + 1) : "";
  return dir + decodeURIComponent(href.split("#")[0] ?? "");
}

interface OpenedEpub {
  files: Record<string, Uint8Array>;
  opfPath: string;
  opf: El;
  manifest: Map<string, { href: string; path: string; mediaType: string; properties: string }>;
  spine: string[];
}

/** Everything an EPUB 3 reading system relies on; fails the test when something is off. */
function openEpub(epub: Uint8Array): OpenedEpub {
  // OCF: `mimetype` first, stored, no extra field, exact content.
  expect(u32(epub, 0)).toBe(0x04034b50);
  expect(u16(epub, 6) & 0x0008, "no data descriptor").toBe(0);
  expect(u16(epub, 8), "compression method").toBe(0);
  expect(u32(epub, 18), "compressed size").toBe(20);
  expect(u32(epub, 22), "uncompressed size").toBe(20);
  expect(u16(epub, 26), "name length").toBe(8);
  expect(u16(epub, 28), "extra field length").toBe(0);
  expect(str(epub.subarray(30, 38))).toBe("mimetype");
  expect(str(epub.subarray(38, 58))).toBe("application/epub+zip");

  const files = unzipSync(epub);
  const names = localEntryNames(epub);
  expect(names[0]).toBe("mimetype");
  expect(new Set(names)).toEqual(new Set(Object.keys(files)));
  expect(
    names.filter((n) => n.endsWith("/")),
    "no directory entries",
  ).toEqual([]);

  const container = parseXml(str(files["META-INF/container.xml"]));
  expect(container.name).toBe("container");
  expect(container.attrs.xmlns).toBe("urn:oasis:names:tc:opendocument:xmlns:container");
  const rootfile = one(container, "rootfile");
  expect(rootfile.attrs["media-type"]).toBe("application/oebps-package+xml");
  const opfPath = rootfile.attrs["full-path"] ?? "";
  expect(files[opfPath], `rootfile ${opfPath} exists`).toBeDefined();

  const opf = parseXml(str(files[opfPath]));
  expect(opf.name).toBe("package");
  expect(opf.attrs.xmlns).toBe("http://www.idpf.org/2007/opf");
  expect(opf.attrs.version).toBe("3.0");
  const metadata = one(opf, "metadata");
  const identifiers = all(metadata, "dc:identifier");
  expect(identifiers.map((e) => e.attrs.id)).toContain(opf.attrs["unique-identifier"]);
  expect(textOf(one(metadata, "dc:title")).trim()).not.toBe("");
  expect(textOf(one(metadata, "dc:language")).trim()).not.toBe("");
  const modified = all(metadata, "meta").filter((m) => m.attrs.property === "dcterms:modified");
  expect(modified).toHaveLength(1);
  expect(textOf(modified[0] as El)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  const manifest = new Map<string, { href: string; path: string; mediaType: string; properties: string }>();
  for (const item of all(one(opf, "manifest"), "item")) {
    const id = item.attrs.id ?? "";
    expect(id).toMatch(/^[A-Za-z_][\w.-]*$/);
    expect(manifest.has(id), `duplicate id ${id}`).toBe(false);
    const href = item.attrs.href ?? "";
    const path = resolve(opfPath, href);
    expect(files[path], `manifest item ${href} exists`).toBeDefined();
    manifest.set(id, {
      href,
      path,
      mediaType: item.attrs["media-type"] ?? "",
      properties: item.attrs.properties ?? "",
    });
  }
  const listed = new Set([...manifest.values()].map((m) => m.path));
  for (const name of Object.keys(files)) {
    if (name === "mimetype" || name === "META-INF/container.xml" || name === opfPath) continue;
    expect(listed.has(name), `${name} is in the manifest`).toBe(true);
  }
  const navs = [...manifest.values()].filter((m) => m.properties.split(" ").includes("nav"));
  expect(navs).toHaveLength(1);
  expect(navs[0]?.mediaType).toBe("application/xhtml+xml");

  const spine = all(one(opf, "spine"), "itemref").map((r) => r.attrs.idref ?? "");
  expect(spine.length).toBeGreaterThan(0);
  for (const idref of spine) {
    expect(manifest.get(idref), `spine ${idref} is in the manifest`).toBeDefined();
    expect(manifest.get(idref)?.mediaType).toBe("application/xhtml+xml");
  }

  // Every XHTML document is well-formed, in the XHTML namespace; every link resolves.
  for (const m of manifest.values()) {
    if (m.mediaType !== "application/xhtml+xml") continue;
    const doc = parseXml(str(files[m.path]));
    expect(doc.name).toBe("html");
    expect(doc.attrs.xmlns).toBe("http://www.w3.org/1999/xhtml");
    expect(textOf(one(doc, "title")).trim()).not.toBe("");
    for (const a of all(doc, "a")) expect(files[resolve(m.path, a.attrs.href ?? "")], a.attrs.href).toBeDefined();
    for (const img of all(doc, "img")) {
      expect(files[resolve(m.path, img.attrs.src ?? "")], img.attrs.src).toBeDefined();
      expect(img.attrs.alt, "img has alt").toBeDefined();
    }
  }
  const nav = parseXml(str(files[navs[0]?.path ?? ""]));
  const tocs = all(nav, "nav").filter((n) => n.attrs["epub:type"] === "toc");
  expect(tocs).toHaveLength(1);
  expect(all(one(tocs[0] as El, "ol"), "li").length).toBeGreaterThan(0);

  return { files, opfPath, opf, manifest, spine };
}

function chapterDocs(e: OpenedEpub): El[] {
  return e.spine
    .map((id) => parseXml(str(e.files[e.manifest.get(id)?.path ?? ""])))
    .filter((doc) => all(doc, "section").some((s) => s.attrs["epub:type"] === "chapter"));
}

// ---------------------------------------------------------------------------------------------

describe("bookToEpub", () => {
  it("is a valid EPUB 3 with the chapters in order, the images and a cover", () => {
    const book = makeBook();
    const e = openEpub(bookToEpub(book));

    const metadata = one(e.opf, "metadata");
    expect(textOf(one(metadata, "dc:identifier"))).toBe("urn:inkloom:story-123");
    expect(textOf(one(metadata, "dc:title"))).toBe(book.title);
    expect(textOf(one(metadata, "dc:language"))).toBe("en");
    const modified = all(metadata, "meta").find((m) => m.attrs.property === "dcterms:modified");
    expect(textOf(modified as El)).toBe("2026-11-26T12:34:56Z");

    // Images: identical bytes, right media types, the first is the cover.
    const images = book.chapters.flatMap((c) => c.images);
    const items = [...e.manifest.values()];
    for (const img of images) {
      const item = items.find((m) => m.path.endsWith(`/${img.fileName}`));
      expect(item?.mediaType).toBe(img.mime);
      expect(e.files[item?.path ?? ""]).toEqual(img.bytes);
    }
    const covers = items.filter((m) => m.properties.split(" ").includes("cover-image"));
    expect(covers).toHaveLength(1);
    expect(covers[0]?.path.endsWith("/ch01-1.png")).toBe(true);

    // Chapters in spine order, with text, action and figures.
    const chapters = chapterDocs(e);
    expect(chapters.map((d) => textOf(one(d, "h1")))).toEqual([TRICKY, "Chapter 2"]);
    const [ch1, ch2] = chapters as [El, El];
    const paras = all(ch1, "p").map(textOf);
    expect(paras).toEqual([`First paragraph with ${TRICKY}.`, "Second paragraph,with a line break.", "第三段：中文。"]);
    expect(all(ch1, "br")).toHaveLength(1);
    const figures = all(ch1, "figure");
    expect(figures).toHaveLength(2);
    expect(one(figures[0] as El, "img").attrs).toMatchObject({
      src: "images/ch01-1.png",
      alt: `A cover <with> "quotes" & 中文`,
    });
    expect(textOf(one(figures[0] as El, "figcaption"))).toBe(`A cover <with> "quotes" & 中文`);
    expect(one(figures[1] as El, "img").attrs.alt).toBe("Illustration");
    expect(all(figures[1] as El, "figcaption")).toHaveLength(0);
    expect(all(ch2, "em").map(textOf)).toEqual([`I open the door & say "hi" <loudly>`]);
    expect(one(ch2, "img").attrs.src).toBe("images/ch02-1.webp");

    // The nav lists the chapters; the title page has title, premise, cast and art style.
    const navPath = items.find((m) => m.properties === "nav")?.path ?? "";
    const navText = all(parseXml(str(e.files[navPath])), "a").map(textOf);
    expect(navText).toEqual([book.title, `1. ${TRICKY}`, "2. Chapter 2"]);
    const titleDoc = parseXml(str(e.files[e.manifest.get(e.spine[0] ?? "")?.path ?? ""]));
    expect(textOf(one(titleDoc, "h1"))).toBe(book.title);
    const titleText = textOf(titleDoc);
    expect(titleText).toContain("A detective & a thief.");
    expect(titleText).toContain("They meet <at night>.");
    expect(all(titleDoc, "li").map(textOf)).toEqual(["Mara <M> — detective: grey coat & hat", "林"]);
    expect(titleText).toContain("Illustration: ink & watercolor");
  });

  it("escapes every piece of text in the raw XML", () => {
    const e = openEpub(bookToEpub(makeBook()));
    const raw = Object.entries(e.files)
      .filter(([name]) => name.endsWith(".xhtml") || name.endsWith(".opf"))
      .map(([, bytes]) => str(bytes))
      .join("\n");
    expect(raw).not.toContain("<b>");
    expect(raw).not.toContain("<Rain>");
    expect(raw).not.toContain("<loudly>");
    expect(raw).toContain("Tom &amp; &quot;Jerry&quot; &lt;b&gt;雨夜&lt;/b&gt; &apos;x&apos; ]]&gt; &amp;amp;");
    expect(raw).toContain("雨夜"); // Chinese stays as UTF-8 text, not character references
  });

  it("drops characters XML cannot carry and keeps the language", () => {
    const book = makeBook(false);
    book.language = "zh-Hans";
    book.title = "控制\u0001字符\uFFFF";
    const chapter = book.chapters[0];
    if (chapter) chapter.text = "a\u0000b \uD800 c";
    const e = openEpub(bookToEpub(book));
    expect(textOf(one(e.opf, "dc:language"))).toBe("zh-Hans");
    expect(textOf(one(e.opf, "dc:title"))).toBe("控制字符");
    const ch1 = chapterDocs(e)[0] as El;
    expect(ch1.attrs["xml:lang"]).toBe("zh-Hans");
    expect(all(ch1, "p").map(textOf)).toEqual(["ab  c"]);
  });

  it("is valid without images: no cover, no images in the zip", () => {
    const book = makeBook(false);
    const e = openEpub(bookToEpub(book));
    expect([...e.manifest.values()].filter((m) => m.mediaType.startsWith("image/"))).toEqual([]);
    expect([...e.manifest.values()].some((m) => m.properties.includes("cover-image"))).toBe(false);
    expect(Object.keys(e.files).filter((n) => n.includes("images/"))).toEqual([]);
    expect(chapterDocs(e)).toHaveLength(2);
    expect(all(chapterDocs(e)[0] as El, "figure")).toEqual([]);
  });

  it("is valid for an untitled book with no chapters or cast", () => {
    const book = makeBook(false);
    book.title = "";
    book.premise = "";
    book.cast = [];
    book.chapters = [];
    const e = openEpub(bookToEpub(book));
    expect(textOf(one(e.opf, "dc:title"))).toBe("Untitled");
    expect(e.spine).toHaveLength(1);
  });

  it("rejects unsafe, duplicate or unsupported images", () => {
    for (const [fileName, mime] of [
      ["../x.png", "image/png"],
      ["a/b.png", "image/png"],
      [".hidden.png", "image/png"],
      ["x.svg", "image/svg+xml"],
    ] as const) {
      const book = makeBook();
      const first = book.chapters[0]?.images[0];
      if (first) Object.assign(first, { fileName, mime });
      expect(() => bookToEpub(book), fileName).toThrow();
      expect(() => bookToMarkdownZip(book), fileName).toThrow();
    }
    const book = makeBook();
    const [a, b] = book.chapters[0]?.images ?? [];
    if (a && b) b.fileName = a.fileName;
    expect(() => bookToEpub(book)).toThrow(/duplicate/);
  });

  it("gives the same bytes for the same input, in any time zone", () => {
    const first = bookToEpub(makeBook());
    expect(bookToEpub(makeBook())).toEqual(first);
    expect(bookToMarkdownZip(makeBook())).toEqual(bookToMarkdownZip(makeBook()));
    // Entry timestamps come from book.modified (as UTC wall time), not from the clock.
    const time = u16(first, 10);
    const date = u16(first, 12);
    expect([(date >> 9) + 1980, (date >> 5) & 15, date & 31]).toEqual([2026, 11, 26]);
    expect([time >> 11, (time >> 5) & 63, (time & 31) * 2]).toEqual([12, 34, 56]);
  });
});

describe("time zones", () => {
  const tz = process.env.TZ;
  afterEach(() => {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  });

  it("do not change the bytes", () => {
    process.env.TZ = "Pacific/Kiritimati";
    const east = bookToEpub(makeBook());
    const eastZip = bookToMarkdownZip(makeBook());
    process.env.TZ = "America/Los_Angeles";
    expect(bookToEpub(makeBook())).toEqual(east);
    expect(bookToMarkdownZip(makeBook())).toEqual(eastZip);
  });
});

describe("bookToMarkdownZip", () => {
  it("holds story.md and images/<name> with identical bytes, referenced from story.md", () => {
    const book = makeBook();
    const files = unzipSync(bookToMarkdownZip(book));
    const images = book.chapters.flatMap((c) => c.images);
    expect(Object.keys(files).sort()).toEqual(["story.md", ...images.map((i) => `images/${i.fileName}`)].sort());
    const md = str(files["story.md"]);
    expect(md).toBe(bookToMarkdown(book));
    for (const img of images) {
      expect(files[`images/${img.fileName}`]).toEqual(img.bytes);
      expect(md).toContain(`](images/${img.fileName})`);
    }
    expect(md).toContain(
      '![A cover \\<with\\> "quotes" & 中文](images/ch01-1.png)\n\n*A cover \\<with\\> "quotes" & 中文*',
    );
    expect(md).toContain("![Illustration](images/ch01-2.jpg)");
    expect(md).toContain("## 2. Chapter 2\n\n*I open the door");
    // Images follow their chapter's text, in order.
    const at = (s: string): number => md.indexOf(s);
    expect(at("第三段")).toBeLessThan(at("images/ch01-1.png"));
    expect(at("images/ch01-1.png")).toBeLessThan(at("images/ch01-2.jpg"));
    expect(at("images/ch01-2.jpg")).toBeLessThan(at("## 2."));
    expect(at("The door opens.")).toBeLessThan(at("images/ch02-1.webp"));
  });

  it("holds story.md only when there are no images", () => {
    const files = unzipSync(bookToMarkdownZip(makeBook(false)));
    expect(Object.keys(files)).toEqual(["story.md"]);
    expect(str(files["story.md"])).not.toContain("![");
    expect(str(files["story.md"])).not.toContain("ink & watercolor");
  });

  it("links images under the given directory with URL-safe names", () => {
    const book = makeBook();
    const first = book.chapters[0]?.images[0];
    if (first) first.fileName = "雨 (1).png";
    expect(bookToMarkdown(book, "pics/")).toContain("](pics/%E9%9B%A8%20%281%29.png)");
    expect(unzipSync(bookToMarkdownZip(book))["images/雨 (1).png"]).toEqual(PNG);
    const e = openEpub(bookToEpub(book));
    expect([...e.manifest.values()].some((m) => m.path === "OEBPS/images/雨 (1).png")).toBe(true);
  });
});
