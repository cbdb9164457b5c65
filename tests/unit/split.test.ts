import { describe, expect, it } from "vitest";
import { findCut, splitForLimit } from "../../src/render/split.ts";

/** The parts appear in order in `text`, separated only by whitespace. */
function expectReassembles(parts: string[], text: string): void {
  let at = 0;
  for (const part of parts) {
    const found = text.indexOf(part, at);
    expect(found, `part not found in order: ${JSON.stringify(part.slice(0, 40))}`).toBeGreaterThanOrEqual(0);
    expect(text.slice(at, found).trim()).toBe("");
    at = found + part.length;
  }
  expect(text.slice(at).trim()).toBe("");
}

const paragraph = (n: number, words = 30) =>
  `Paragraph ${n}. ${Array.from({ length: words }, (_, i) => `word${i}`).join(" ")}.`;

describe("splitForLimit", () => {
  it("returns the text unchanged when it fits", () => {
    expect(splitForLimit("short text", 100)).toEqual(["short text"]);
  });

  it("returns no parts for an empty text", () => {
    expect(splitForLimit("", 100)).toEqual([]);
  });

  it("splits a long chapter at paragraph boundaries, each part within the limit", () => {
    const text = Array.from({ length: 40 }, (_, i) => paragraph(i)).join("\n\n");
    const parts = splitForLimit(text, 2000);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(2000);
      expect(part.startsWith("Paragraph ")).toBe(true);
      expect(part.endsWith(".")).toBe(true);
    }
    expectReassembles(parts, text);
    expect(parts.join("\n\n")).toBe(text);
  });

  it("prefers a single newline over a sentence end when no paragraph break fits", () => {
    const text = `${"a".repeat(30)}. ${"b".repeat(20)}\n${"c".repeat(30)}`;
    expect(splitForLimit(text, 60)).toEqual([`${"a".repeat(30)}. ${"b".repeat(20)}`, "c".repeat(30)]);
  });

  it("cuts after a sentence end before falling back to spaces", () => {
    const text = "The door creaked open. She stepped inside and listened to the rain";
    expect(splitForLimit(text, 40)).toEqual([
      "The door creaked open.",
      "She stepped inside and listened to the",
      "rain",
    ]);
  });

  it("splits CJK text without spaces at 。", () => {
    const sentence = "雨夜的上海，侦探推开了那扇门。";
    const text = sentence.repeat(10);
    const parts = splitForLimit(text, 50);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(50);
      expect(part.endsWith("。")).toBe(true);
    }
    expect(parts.join("")).toBe(text);
  });

  it("keeps a CJK closing quote with its sentence", () => {
    const text = `「你来了。」${"她".repeat(20)}`;
    expect(splitForLimit(text, 15)[0]).toBe("「你来了。」");
  });

  it("hard-cuts a text without any boundary, never inside a surrogate pair", () => {
    const text = "😀".repeat(10); // 20 UTF-16 code units
    const parts = splitForLimit(text, 5);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(5);
      expect(part).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
    }
    expect(parts.join("")).toBe(text);
  });

  it("does not split a joined emoji sequence on a hard cut", () => {
    const family = "👨‍👩‍👧";
    const text = `abc${family}${family}`;
    const parts = splitForLimit(text, 12);
    expect(parts.join("")).toBe(text);
    expect(parts).toContain(family);
  });

  it("avoids a tiny first part when a fuller sentence cut exists", () => {
    const text = `Hi.\n\n${"Long sentence here. ".repeat(10)}`;
    const [first] = splitForLimit(text, 100);
    expect(first?.length).toBeGreaterThan(50);
  });

  it("drops only whitespace at the cut", () => {
    const text = `${"a".repeat(8)}   \n\n  ${"b".repeat(8)}`;
    expect(splitForLimit(text, 10)).toEqual(["a".repeat(8), "b".repeat(8)]);
  });

  it("rejects a limit too small to hold a surrogate pair", () => {
    expect(() => splitForLimit("abc", 1)).toThrow(RangeError);
  });
});

describe("findCut", () => {
  it("returns undefined when the text fits", () => {
    expect(findCut("abc", 3)).toBeUndefined();
  });

  it("gives the head end and where the rest starts", () => {
    expect(findCut("one two three", 8)).toEqual({ end: 7, next: 8 });
  });
});
