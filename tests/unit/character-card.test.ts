import { describe, expect, it } from "vitest";
import { CARD_MAX_BYTES, parseCard, readCard, writeCardJson, writeCardPng } from "../../src/story/character-card.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { cardPng, plainPng, v2Card, v3Card } from "../helpers/cards.ts";

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof UserFacingError) return error.id;
    throw error;
  }
  throw new Error("not refused");
}

describe("character cards: reading and writing", () => {
  it("reads a V2 card out of a PNG's chara chunk, book entries and unknown fields included", () => {
    const card = readCard(cardPng(v2Card()));
    expect(card.spec).toBe("chara_card_v2");
    expect(card.name).toBe("Mara Vell");
    expect(card.firstMessage).toContain("You're late");
    expect(card.book?.entries.map((e) => [e.keys, e.order, e.constant, e.enabled])).toEqual([
      [["lighthouse", "lamp"], 5, false, true],
      [["Gull Rock"], 20, true, true],
      [["unused"], 1, false, false],
    ]);
    expect(card.book?.entries[0]?.rest).toEqual({ extensions: { weight: 7 }, comment: "the lamp" });
    expect(card.book?.rest).toEqual({ name: "Gull Rock", extensions: { book_flag: true } });
    expect(card.data.extensions).toEqual({ depth_prompt: { depth: 4, prompt: "keep it eerie" }, world: "gull-rock" });
    expect(card.data).not.toHaveProperty("character_book");
  });

  it("prefers the ccv3 chunk of a V3 PNG, which also carries chara for older readers", () => {
    const png = cardPng(v3Card());
    const text = png.toString("latin1");
    expect(text).toContain("ccv3\0");
    expect(text).toContain("chara\0");
    const card = readCard(png);
    expect(card.spec).toBe("chara_card_v3");
    expect(card.book?.entries[0]?.regex).toBe(true);
  });

  it("round-trips: a card written into a PNG and as JSON reads back the same", () => {
    const json = JSON.stringify(v3Card());
    const again = writeCardPng(writeCardPng(plainPng(), json, "chara_card_v3"), json, "chara_card_v3");
    // Writing twice replaces the card chunks rather than adding more.
    expect(again.toString("latin1").split("ccv3\0").length).toBe(2);
    const fromPng = readCard(again);
    const fromJson = parseCard(writeCardJson({ data: { ...v3Card().data } }));
    expect(fromPng).toEqual(parseCard(json));
    expect(fromJson.name).toBe("Orrin Hale");
    expect(fromJson.data.extensions).toEqual({ "x-inkloom-test": { keep: [1, 2, 3] } });
  });

  it("reads a V1 card (fields at the top level) as V2", () => {
    const card = parseCard(JSON.stringify({ name: "Old", description: "d", personality: "p", first_mes: "hi" }));
    expect(card).toMatchObject({ spec: "chara_card_v2", v1: true, name: "Old", firstMessage: "hi" });
  });

  it("refuses a PNG with no card, invalid JSON, an unknown spec, a non-card and an oversized file", () => {
    expect(refusal(() => readCard(plainPng()))).toBe("card.noCard");
    expect(refusal(() => readCard(Buffer.from("{ not json")))).toBe("card.badJson");
    expect(refusal(() => parseCard(JSON.stringify({ spec: "chara_card_v9", data: { name: "x" } })))).toBe(
      "card.unknownSpec",
    );
    expect(refusal(() => parseCard(JSON.stringify({ hello: "world" })))).toBe("card.notCard");
    expect(refusal(() => parseCard(JSON.stringify({ spec: "chara_card_v2", data: {} })))).toBe("card.notCard");
    expect(refusal(() => readCard(new Uint8Array(CARD_MAX_BYTES + 1)))).toBe("card.tooLarge");
  });

  it("refuses a JPEG (a re-compressed photo) as a picture without a card, not as bad JSON", () => {
    expect(refusal(() => readCard(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70])))).toBe("card.notPng");
  });

  it("refuses a PNG whose card chunk fails its CRC", () => {
    const png = cardPng(v2Card());
    const at = png.indexOf("chara\0", 0, "latin1") + 10;
    png[at] = (png[at] ?? 0) ^ 0xff;
    expect(refusal(() => readCard(png))).toBe("card.damaged");
  });

  it("refuses a PNG whose card chunk holds base64 of something else", () => {
    const png = writeCardPng(plainPng(), "not json at all", "chara_card_v2");
    expect(refusal(() => readCard(png))).toBe("card.badJson");
  });
});
