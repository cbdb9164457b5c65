import { describe, expect, it } from "vitest";
import {
  appearanceLine,
  artStyleFor,
  buildImagePrompt,
  captionFor,
  charactersInScene,
  GENRE_ART_STYLES,
  VISUAL_LIMITS,
} from "../../src/art/visual-bible.ts";

const mara = { name: "Mara Quill", appearance: "short black hair, grey coat, silver ring" };
const elias = { name: "Elias Wren", appearance: "tall, round spectacles, dark blue scarf" };
const cast = [
  mara,
  elias,
  { name: "林月", appearance: "黑色长发，白色旗袍" },
  { name: "Al", appearance: "bald, eye patch" },
];

describe("visual bible", () => {
  it("finds the characters of a scene by the names the agent gave, full or partial, in cast order", () => {
    expect(charactersInScene("On the pier.", ["Elias", "mara quill"], cast).map((c) => c.name)).toEqual([
      "Mara Quill",
      "Elias Wren",
    ]);
  });

  it("finds characters named in the scene text, as words (and CJK names anywhere)", () => {
    expect(charactersInScene("Mara waits while 林月说话.", [], cast).map((c) => c.name)).toEqual([
      "Mara Quill",
      "林月",
    ]);
    // "Al" is not inside "Always" or "tall".
    expect(charactersInScene("Always tall shadows.", [], cast)).toEqual([]);
    expect(charactersInScene("Al laughs.", [], cast).map((c) => c.name)).toEqual(["Al"]);
  });

  it("describes at most four characters", () => {
    const many = Array.from({ length: 6 }, (_, i) => ({ name: `Person${i}`, appearance: "x" }));
    expect(
      charactersInScene(
        "",
        many.map((c) => c.name),
        many,
      ),
    ).toHaveLength(VISUAL_LIMITS.charactersPerImage);
  });

  it("builds every prompt with the same appearance line per character, the scene and the art style", () => {
    const a = buildImagePrompt({
      scene: "Mara on the pier",
      characters: [mara],
      artStyle: "ink wash",
      rating: "general",
    });
    const b = buildImagePrompt({
      scene: "A storm over the harbour",
      characters: [elias, mara],
      artStyle: "ink wash",
      rating: "teen",
    });
    const line = appearanceLine(mara);
    expect(line).toBe("- Mara Quill: short black hair, grey coat, silver ring");
    expect(a).toContain(line);
    expect(b).toContain(line);
    expect(a.split("\n")[0]).toBe("Art style: ink wash.");
    expect(a).toContain("Scene: Mara on the pier");
    expect(a).toContain("Suitable for all ages");
    expect(b).toContain("Suitable for teens");
    expect(
      buildImagePrompt({ scene: "x".repeat(2000), characters: [], artStyle: "s", rating: "adult" }).length,
    ).toBeLessThan(800);
  });

  it("takes the theme's art style, else the genre's", () => {
    expect(artStyleFor("  anime  ", "horror")).toBe("anime");
    expect(artStyleFor("", "horror")).toBe(GENRE_ART_STYLES.horror);
    expect(artStyleFor(null, "unknown-genre")).toBe(GENRE_ART_STYLES.none);
  });

  it("captions with the scene's first sentence, cut at a word", () => {
    expect(captionFor("Mara waits. Then the storm.")).toBe("Mara waits.");
    expect(captionFor("林月停下脚步。远处钟声响起。")).toBe("林月停下脚步。");
    const long = captionFor("word ".repeat(100), 40);
    expect(long.length).toBeLessThanOrEqual(40);
    expect(long.endsWith("…")).toBe(true);
  });
});
