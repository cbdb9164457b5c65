import { describe, expect, it } from "vitest";
import { type CallbackAction, decodeCallback, encodeCallback } from "../../adapters/telegram/callback-data.ts";

const storyId = "cmwwuk7kf00009n7de680sdgd";
const chapterId = "cmwwuk9zq0001b2c3d4e5f6g7";

describe("Telegram callback data", () => {
  it("round-trips every action within 64 bytes", () => {
    const actions: CallbackAction[] = [
      { kind: "genre", genre: "fan-fiction" },
      { kind: "pick", storyId, revision: 123456789, position: 8 },
      { kind: "vote", storyId, revision: 7, position: 2 },
      { kind: "close", storyId, revision: 7 },
      { kind: "suggest", storyId, revision: 7 },
      { kind: "retry", storyId },
      { kind: "rate", chapterId, value: 1 },
      { kind: "rate", chapterId, value: -1 },
      { kind: "rate", chapterId: "a".repeat(40), value: -1 },
    ];
    for (const action of actions) {
      const data = encodeCallback(action);
      expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
      expect(decodeCallback(data)).toEqual(action);
    }
  });

  it("rejects forged, truncated and oversized payloads", () => {
    for (const data of [
      undefined,
      "",
      "g|banana",
      "p|x",
      `p|${storyId}|1`,
      `p|${storyId}|1|0`,
      `p|${storyId}|-1|2`,
      `v|${storyId}|1|2|9`,
      `x|${storyId}|1|2`,
      `z|${storyId}|1`,
      `p|${"a".repeat(60)}|1|1`,
      `p|bad id!|1|1`,
      "u|",
      "d",
      `u|${chapterId}|1`,
      `d|${chapterId}|-1`,
      `u|${chapterId}|`,
      `u|bad id!`,
      `u|${"a".repeat(41)}`,
      `U|${chapterId}`,
      `+|${chapterId}`,
    ]) {
      expect(decodeCallback(data), String(data)).toBeUndefined();
    }
  });

  it("rates a chapter with a short, distinct payload per value", () => {
    const up = encodeCallback({ kind: "rate", chapterId, value: 1 });
    const down = encodeCallback({ kind: "rate", chapterId, value: -1 });
    expect([up, down]).toEqual([`u|${chapterId}`, `d|${chapterId}`]);
    expect(Buffer.byteLength(up)).toBeLessThanOrEqual(64);
    expect(decodeCallback(up)).toEqual({ kind: "rate", chapterId, value: 1 });
  });

  it("refuses to encode an id that would not fit", () => {
    expect(() => encodeCallback({ kind: "pick", storyId: "a".repeat(70), revision: 1, position: 1 })).toThrow(
      RangeError,
    );
    expect(() => encodeCallback({ kind: "rate", chapterId: "a".repeat(41), value: 1 })).toThrow(RangeError);
    expect(() => encodeCallback({ kind: "rate", chapterId: "has|bar", value: -1 })).toThrow(RangeError);
    expect(() => encodeCallback({ kind: "retry", storyId: "" })).toThrow(RangeError);
  });
});
