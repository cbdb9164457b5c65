import { describe, expect, it } from "vitest";
import { closedOfferText, type OfferShape, offerRows } from "../../src/render/offer-layout.ts";
import type { ChoiceOffer } from "../../src/render/surface.ts";

const WIDE: OfferShape = { buttonsPerRow: 5, maxRows: 5, labelMax: 80, writeOwnButton: true };
const NARROW: OfferShape = { buttonsPerRow: 1, maxRows: 12, labelMax: 68, writeOwnButton: false };
const base: ChoiceOffer = {
  storyId: "s1",
  revision: 4,
  choices: ["Open the letter", "Follow the stranger", "Go home"],
  allowWriteIn: true,
  mode: "pick",
};
const labels = (rows: { label: string }[][]) => rows.map((r) => r.map((b) => b.label));

describe("offer layout", () => {
  it("a pick: the choices, then Write your own where the platform has it, then the rating row", () => {
    const { rows, cut } = offerRows({ ...base, chapterId: "c1" }, "en", WIDE);
    expect(labels(rows)).toEqual([
      ["1. Open the letter", "2. Follow the stranger", "3. Go home"],
      ["Write your own"],
      ["👍", "👎"],
    ]);
    expect(rows[0]?.[1]?.action).toEqual({ kind: "pick", storyId: "s1", revision: 4, position: 2 });
    expect(cut).toBe(false);
    // One choice a row, and no write-your-own button where readers just type.
    expect(labels(offerRows(base, "en", NARROW).rows)).toEqual([
      ["1. Open the letter"],
      ["2. Follow the stranger"],
      ["3. Go home"],
    ]);
  });

  it("a vote: live counts on the choices, Suggest your own and Close vote", () => {
    const { rows } = offerRows({ ...base, mode: "vote", counts: [2, 0, 1] }, "en", NARROW);
    expect(labels(rows)).toEqual([
      ["1. Open the letter · 2"],
      ["2. Follow the stranger · 0"],
      ["3. Go home · 1"],
      ["Suggest your own", "Close vote"],
    ]);
    expect(rows[3]?.map((b) => b.action.kind)).toEqual(["suggest", "close"]);
  });

  it("spreads 8 choices over two rows of 4; shortens long labels and says so", () => {
    const eight = Array.from({ length: 8 }, (_, i) => `Choice ${i + 1}`);
    expect(offerRows({ ...base, choices: eight }, "en", WIDE).rows.map((r) => r.length)).toEqual([4, 4, 1]);
    const long = offerRows({ ...base, choices: ["x".repeat(100), "y"] }, "en", WIDE);
    expect(long.cut).toBe(true);
    expect(long.rows[0]?.[0]?.label.length).toBe(80);
  });

  it("a decided vote announces the winner with its votes, marks it and keeps the counts", () => {
    expect(
      closedOfferText({ ...base, mode: "vote" }, { chosen: 2, label: "Follow the stranger", counts: [1, 3, 0] }, "en"),
    ).toBe(
      [
        "The readers chose: “Follow the stranger” (3 of 4 votes).",
        "",
        "▫️ Open the letter · 1",
        "✅ Follow the stranger · 3",
        "▫️ Go home · 0",
      ].join("\n"),
    );
  });

  it("a tied vote names the tie chance broke; a pick says what was chosen", () => {
    const tie = { chosen: 3, label: "Go home", counts: [2, 0, 2], tiedWith: [1, 3] };
    expect(closedOfferText({ ...base, mode: "vote" }, tie, "en").split("\n")[0]).toBe(
      "Tie between “Open the letter”, “Go home”: chance picked “Go home”.",
    );
    expect(closedOfferText(base, { chosen: 1, label: "Open the letter" }, "en").split("\n")[0]).toBe(
      "Chosen: Open the letter",
    );
  });
});
