import { describe, expect, it } from "vitest";
import { escapeHtml, formatChapterHtml } from "../../adapters/telegram/telegram-surface.ts";

describe("Telegram chapter formatting", () => {
  it("bolds the chapter heading and escapes everything that Telegram's HTML would read", () => {
    expect(formatChapterHtml("Chapter 2\n\nShe wrote <b>no</b> & left.")).toBe(
      "<b>Chapter 2</b>\n\nShe wrote &lt;b&gt;no&lt;/b&gt; &amp; left.",
    );
    expect(formatChapterHtml("第3章\n\n雨<停>了")).toBe("<b>第3章</b>\n\n雨&lt;停&gt;了");
  });

  it("escapes text without a heading as a whole", () => {
    expect(formatChapterHtml("a < b")).toBe("a &lt; b");
    expect(escapeHtml("&amp;")).toBe("&amp;amp;");
  });
});
