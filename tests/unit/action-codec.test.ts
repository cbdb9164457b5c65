import { describe, expect, it } from "vitest";
import {
  type ActionFormat,
  type ButtonAction,
  DISCORD_CUSTOM_ID_FORMAT,
  decodeAction,
  encodeAction,
  TELEGRAM_CALLBACK_FORMAT,
} from "../../commands/action-codec.ts";

const storyId = "0b6f1f9e-3c1a-4c2e-9d8e-2f6b7c1d9a01"; // a uuid: 36 characters
const FORMATS: [string, ActionFormat][] = [
  ["Telegram", TELEGRAM_CALLBACK_FORMAT],
  ["Discord", DISCORD_CUSTOM_ID_FORMAT],
];

describe.each(FORMATS)("the shared action codec on %s", (_name, format) => {
  it("fits the largest action with the longest id and numbers in the platform's limit", () => {
    const action: ButtonAction = {
      kind: "vote",
      storyId: "a".repeat(40),
      revision: 999_999_999,
      position: 999_999_999,
    };
    const data = encodeAction(action, format);
    expect(decodeAction(data, format)).toEqual(action);
    const size = "bytes" in format.max ? Buffer.byteLength(data) : data.length;
    expect(size).toBeLessThanOrEqual("bytes" in format.max ? format.max.bytes : format.max.chars);
  });

  it("applies the same id and number rules", () => {
    expect(decodeAction(encodeAction({ kind: "retry", storyId }, format), format)).toEqual({ kind: "retry", storyId });
    for (const bad of [
      { kind: "retry", storyId: "a".repeat(41) },
      { kind: "retry", storyId: "has space" },
      { kind: "retry", storyId: "" },
      { kind: "close", storyId, revision: -1 },
      { kind: "close", storyId, revision: 1e10 },
      { kind: "pick", storyId, revision: 1, position: 1.5 },
    ] as ButtonAction[]) {
      expect(() => encodeAction(bad, format), JSON.stringify(bad)).toThrow(RangeError);
    }
  });

  it("refuses the other platform's framing and actions it does not carry", () => {
    const other = format === TELEGRAM_CALLBACK_FORMAT ? DISCORD_CUSTOM_ID_FORMAT : TELEGRAM_CALLBACK_FORMAT;
    const foreign = encodeAction({ kind: "pick", storyId, revision: 1, position: 1 }, other);
    expect(decodeAction(foreign, format)).toBeUndefined();
    const missing = (["genre", "suggestion"] as const).find((k) => !(format.kinds as readonly string[]).includes(k));
    expect(missing).toBeDefined();
    if (missing === "genre") expect(() => encodeAction({ kind: "genre", genre: "horror" }, format)).toThrow(RangeError);
    if (missing === "suggestion") {
      expect(() => encodeAction({ kind: "suggestion", storyId, revision: 1 }, format)).toThrow(RangeError);
    }
  });
});
