import { describe, expect, it } from "vitest";
import {
  buildMemory,
  chaptersToFold,
  estimateTokens,
  keywords,
  recallPassages,
  relevantCharacters,
} from "../../src/agent/memory.ts";
import type { BibleCharacter, ChapterSnapshot, StorySnapshot } from "../../src/agent/types.ts";

const NAMES = ["Mara", "Theo", "Iris", "Quill", "Bram", "Oona", "Pell", "Sable", "Wren", "Cato", "Lune", "Tamsin"];

function chapter(n: number, extra = ""): ChapterSnapshot {
  const who = NAMES[n % NAMES.length] ?? "Mara";
  const paragraphs = Array.from(
    { length: 6 },
    (_, i) =>
      `Paragraph ${i + 1} of chapter ${n}. ${who} walked through the rain-dark streets of the harbour town, ` +
      `listening to gulls and bells, thinking about promise number ${n * 10 + i} and the road ahead.`,
  );
  if (extra) paragraphs.splice(3, 0, extra);
  return {
    number: n,
    title: `Chapter title ${n}`,
    text: paragraphs.join("\n\n"),
    summary: `${who} followed the trail of promise ${n} a little further.`,
    action: n === 1 ? "" : `Follow ${who}`,
  };
}

/** A synthetic story at `upTo` chapters whose summary is folded every 5 and whose bible grows slowly. */
function syntheticStory(upTo: number, extras: Record<number, string> = {}): StorySnapshot {
  const chapters = Array.from({ length: upTo }, (_, i) => chapter(i + 1, extras[i + 1] ?? ""));
  const characterCount = Math.min(60, 4 + Math.floor(upTo / 8));
  const characters: BibleCharacter[] = Array.from({ length: characterCount }, (_, i) => ({
    name: i < NAMES.length ? (NAMES[i] ?? `Person ${i}`) : `Person ${i}`,
    role: `role ${i}`,
    appearance: `tall, grey coat number ${i}, a scar over the left brow`,
  }));
  const summaryUpTo = Math.max(0, Math.floor((upTo - 3) / 5) * 5);
  return {
    premise: "A lighthouse keeper finds a letter from the future.",
    genre: "adventure",
    language: "en",
    title: "The Harbour Letters",
    bible: {
      characters,
      places: Array.from({ length: 2 + Math.floor(upTo / 20) }, (_, i) => ({
        name: `Place ${i}`,
        description: `a windy quay ${i}`,
      })),
      facts: Array.from({ length: 3 + Math.floor(upTo / 5) }, (_, i) => `Canon fact ${i}: the bell rang ${i} times.`),
    },
    arc: { beats: ["The letter arrives", "The keeper doubts", "The storm"], openThreads: ["Who wrote the letter?"] },
    // Bounded like the summarizer's output: about 250 words, whatever the chapter.
    summary: `Up to chapter ${summaryUpTo}: ${"the keeper and friends chased the letters across the harbour ".repeat(25)}`,
    summaryUpTo,
    chapters,
    lore: [],
  };
}

describe("estimateTokens", () => {
  it("counts about four Latin characters per token and one token per CJK character", () => {
    expect(estimateTokens("abcdefgh")).toBe(2);
    expect(estimateTokens("上海的雨")).toBe(4);
    expect(estimateTokens("雨 rain")).toBe(1 + Math.ceil(5 / 4));
  });
});

describe("keywords", () => {
  it("drops short and stop words and makes bigrams of Han text", () => {
    expect(keywords("The lighthouse and the key")).toEqual(["lighthouse", "key"]);
    expect(keywords("灯塔守护人")).toEqual(["灯塔", "塔守", "守护", "护人"]);
  });
});

describe("buildMemory", () => {
  it("keeps the prompt at chapter 200 within 1.2x of the prompt at chapter 20", () => {
    const at20 = buildMemory(syntheticStory(20), { recentChapters: 3, query: "Follow Mara to the bells" });
    const at200 = buildMemory(syntheticStory(200), { recentChapters: 3, query: "Follow Mara to the bells" });
    expect(at20.estimatedTokens).toBeGreaterThan(500);
    expect(at200.estimatedTokens).toBeLessThanOrEqual(at20.estimatedTokens * 1.2);
  });

  it("quotes exactly the last recentChapters chapters verbatim", () => {
    const story = syntheticStory(10);
    const memory = buildMemory(story, { recentChapters: 2 });
    expect(memory.sections.recent).toContain("### Chapter 9:");
    expect(memory.sections.recent).toContain("### Chapter 10:");
    expect(memory.sections.recent).not.toContain("### Chapter 8:");
    expect(memory.sections.recent).toContain(story.chapters[9]?.text.slice(0, 200));
    // Chapters 6..8 are after the summary (up to 5) and outside the window: one line each.
    expect(memory.sections.outline).toContain("Chapter 8,");
    expect(memory.sections.outline).not.toContain("Chapter 5,");
  });

  it("recalls an earlier passage by keyword from outside the window", () => {
    const story = syntheticStory(30, { 4: "Mara hid the brass astrolabe beneath the chapel floorboards." });
    const memory = buildMemory(story, { recentChapters: 3, query: "Dig up the astrolabe from the chapel" });
    expect(memory.recalled[0]?.chapter).toBe(4);
    expect(memory.sections.recalled).toContain("(Chapter 4)");
    expect(memory.sections.recalled).toContain("brass astrolabe");
    expect(memory.recalled.length).toBeLessThanOrEqual(3);
  });

  it("recalls a Chinese passage by character bigrams", () => {
    const chapters: ChapterSnapshot[] = [
      { number: 1, title: "雨夜", text: "她在码头等船。\n\n雨下个不停。", summary: "等船", action: "" },
      { number: 2, title: "信", text: "灵媒把那枚青铜钥匙藏进了旧钟楼。\n\n夜很深。", summary: "藏钥匙", action: "" },
      { number: 3, title: "钟声", text: "侦探听见了钟声。", summary: "钟声", action: "" },
      { number: 4, title: "晨", text: "天亮了。", summary: "天亮", action: "" },
    ];
    const found = recallPassages(chapters.slice(0, 2), "去钟楼找青铜钥匙", 3);
    expect(found[0]?.chapter).toBe(2);
    expect(found[0]?.text).toContain("青铜钥匙");
  });

  it("lists the characters relevant to the action and recent chapters first, capped", () => {
    const story = syntheticStory(200);
    const memory = buildMemory(story, { recentChapters: 2, maxBibleCharacters: 5, query: "Ask Person 20 about it" });
    const lines = memory.sections.bible.split("\n").filter((l) => l.startsWith("- ") && l.includes("Appearance"));
    expect(lines).toHaveLength(5);
    expect(lines[0]).toContain("Person 20");
    expect(memory.sections.bible).toMatch(/more characters not listed/);
  });

  it("orders characters by mentions", () => {
    const cast: BibleCharacter[] = [
      { name: "Ann", role: "a", appearance: "x" },
      { name: "Bob", role: "b", appearance: "y" },
    ];
    expect(relevantCharacters(cast, "Bob went home. Bob slept.", 2).map((c) => c.name)).toEqual(["Bob", "Ann"]);
  });
});

describe("chaptersToFold", () => {
  it("returns the unfolded chapters outside the window once there are foldEvery of them", () => {
    const story = syntheticStory(12); // summaryUpTo 5
    expect(story.summaryUpTo).toBe(5);
    // Outside a window of 3: chapters 1..9; unfolded: 6..9 (4 < 5) -> nothing yet.
    expect(chaptersToFold(story, 3, 5)).toEqual([]);
    const more = { ...story, chapters: [...story.chapters, chapter(13)] };
    expect(chaptersToFold(more, 3, 5).map((c) => c.number)).toEqual([6, 7, 8, 9, 10]);
  });
});
