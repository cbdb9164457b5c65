import { describe, expect, it } from "vitest";
import { CATALOGUE, t } from "../../src/i18n/messages.ts";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("message catalogue", () => {
  it("every Chinese message has the same placeholders as its English original", () => {
    for (const [id, en] of Object.entries(CATALOGUE.en)) {
      const zh = CATALOGUE.zh[id as keyof typeof CATALOGUE.en];
      expect(zh, id).not.toBe("");
      expect(placeholders(zh), id).toEqual(placeholders(en));
    }
  });

  it("fills placeholders and leaves unknown ones visible", () => {
    expect(t("en", "error.choiceOutOfRange", { input: 9, max: 3 })).toBe(
      "There is no choice 9. Pick a number from 1 to 3, or type your own action.",
    );
    expect(t("zh", "undo.done", {})).toContain("{number}");
  });
});
