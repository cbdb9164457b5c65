import { describe, expect, it } from "vitest";
import { type CallbackAction, decodeCallback, encodeCallback } from "../../adapters/telegram/callback-data.ts";

const storyId = "cmwwuk7kf00009n7de680sdgd";

describe("Telegram callback data", () => {
  it("round-trips every action within 64 bytes", () => {
    const actions: CallbackAction[] = [
      { kind: "genre", genre: "fan-fiction" },
      { kind: "pick", storyId, revision: 123456789, position: 8 },
      { kind: "vote", storyId, revision: 7, position: 2 },
      { kind: "close", storyId, revision: 7 },
      { kind: "suggest", storyId, revision: 7 },
      { kind: "retry", storyId },
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
    ]) {
      expect(decodeCallback(data), String(data)).toBeUndefined();
    }
  });

  it("refuses to encode an id that would not fit", () => {
    expect(() => encodeCallback({ kind: "pick", storyId: "a".repeat(70), revision: 1, position: 1 })).toThrow(
      RangeError,
    );
  });
});
