/** Checks shared by the end-to-end tests of `/export` on each platform. */
import { unzipSync } from "fflate";
import { expect } from "vitest";

/**
 * The Markdown zip holds story.md and exactly the posted picture under images/; the EPUB
 * starts with its stored `mimetype` entry and holds exactly the posted picture too.
 */
export function expectExportsHoldPicture(zip: Uint8Array, epub: Uint8Array, posted: Uint8Array): void {
  const picture = Buffer.from(posted);
  const markdown = unzipSync(zip);
  expect(new TextDecoder().decode(markdown["story.md"])).toContain("Chapter 1");
  const zipped = Object.entries(markdown).filter(([name]) => name.startsWith("images/"));
  expect(zipped.map(([, bytes]) => Buffer.compare(Buffer.from(bytes), picture))).toEqual([0]);
  // The mimetype entry comes first, stored uncompressed, right after the 30-byte local header.
  expect(Buffer.from(epub.subarray(30, 38)).toString("latin1")).toBe("mimetype");
  const book = unzipSync(epub);
  expect(Object.keys(book)[0]).toBe("mimetype");
  expect(new TextDecoder().decode(book.mimetype)).toBe("application/epub+zip");
  const inBook = Object.entries(book).filter(([name]) => name.endsWith(".png"));
  expect(inBook.map(([, bytes]) => Buffer.compare(Buffer.from(bytes), picture))).toEqual([0]);
}
