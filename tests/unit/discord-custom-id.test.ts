import { describe, expect, it } from "vitest";
import {
  CUSTOM_ID_MAX_LENGTH,
  type CustomIdAction,
  decodeCustomId,
  encodeCustomId,
} from "../../adapters/discord/custom-id.ts";

const storyId = "cmwwuk7kf00009n7de680sdgd";
const chapterId = "cmwwuk9zq0001b2c3d4e5f6g7";

describe("Discord custom ids", () => {
  it("round-trips every action within 1-100 characters", () => {
    const actions: CustomIdAction[] = [
      { kind: "pick", storyId, revision: 123456789, position: 8 },
      { kind: "vote", storyId, revision: 0, position: 2 },
      { kind: "close", storyId, revision: 7 },
      { kind: "suggest", storyId, revision: 7 },
      { kind: "suggestion", storyId, revision: 7 },
      { kind: "retry", storyId },
      { kind: "vote", storyId: "a".repeat(40), revision: 999_999_999, position: 999_999_999 },
      { kind: "rate", chapterId, value: 1 },
      { kind: "rate", chapterId, value: -1 },
      { kind: "rate", chapterId: "a".repeat(40), value: 1 },
    ];
    for (const action of actions) {
      const id = encodeCustomId(action);
      expect(id.length).toBeGreaterThanOrEqual(1);
      expect(id.length).toBeLessThanOrEqual(CUSTOM_ID_MAX_LENGTH);
      expect(id.startsWith("ink:")).toBe(true);
      expect(decodeCustomId(id)).toEqual(action);
    }
    expect(encodeCustomId({ kind: "vote", storyId, revision: 3, position: 1 })).toBe(`ink:v:${storyId}:3:1`);
    expect(encodeCustomId({ kind: "rate", chapterId, value: 1 })).toBe(`ink:u:${chapterId}`);
    expect(encodeCustomId({ kind: "rate", chapterId, value: -1 })).toBe(`ink:d:${chapterId}`);
  });

  it("gives distinct ids to different actions on the same story", () => {
    const ids = [
      encodeCustomId({ kind: "pick", storyId, revision: 1, position: 1 }),
      encodeCustomId({ kind: "vote", storyId, revision: 1, position: 1 }),
      encodeCustomId({ kind: "close", storyId, revision: 1 }),
      encodeCustomId({ kind: "suggest", storyId, revision: 1 }),
      encodeCustomId({ kind: "suggestion", storyId, revision: 1 }),
      encodeCustomId({ kind: "retry", storyId }),
      encodeCustomId({ kind: "rate", chapterId: storyId, value: 1 }),
      encodeCustomId({ kind: "rate", chapterId: storyId, value: -1 }),
    ];
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("rejects forged, truncated, foreign and oversized ids", () => {
    for (const id of [
      undefined,
      null,
      "",
      "ink",
      "ink:",
      "ink:v",
      `ink:v:${storyId}`,
      `ink:v:${storyId}:1`,
      `ink:v:${storyId}:1:0`,
      `ink:v:${storyId}:-1:2`,
      `ink:v:${storyId}:01:2`,
      `ink:v:${storyId}:1.5:2`,
      `ink:v:${storyId}:1:2:3`,
      `ink:p:${storyId}:1:1e3`,
      `ink:x:${storyId}:1:2`,
      `ink:x:${storyId}`,
      `ink:w:${storyId}:abc`,
      `ink:r:${storyId}:1`,
      `ink:z:${storyId}:1`,
      `ink:v:bad id!:1:1`,
      `ink:v::1:1`,
      `ink:v:${"a".repeat(41)}:1:1`,
      `ink:v:${storyId}:1234567890:1`,
      `INK:v:${storyId}:1:1`,
      `other:v:${storyId}:1:1`,
      `vote:1:a`,
      `ink:v:${storyId}:1:1`.padEnd(101, "0"),
      "ink:u",
      "ink:u:",
      `ink:u:${chapterId}:1`,
      `ink:d:${chapterId}:-1`,
      `ink:u:${chapterId}:`,
      `ink:u:bad id!`,
      `ink:d:${"a".repeat(41)}`,
      `ink:U:${chapterId}`,
      `other:u:${chapterId}`,
    ]) {
      expect(decodeCustomId(id), String(id)).toBeUndefined();
    }
  });

  it("refuses to encode what would not decode", () => {
    expect(() => encodeCustomId({ kind: "retry", storyId: "has:colon" })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "retry", storyId: "a".repeat(41) })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "close", storyId, revision: -1 })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "pick", storyId, revision: 1, position: 1.5 })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "pick", storyId, revision: 1e10, position: 1 })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "rate", chapterId: "has:colon", value: 1 })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "rate", chapterId: "", value: -1 })).toThrow(RangeError);
    expect(() => encodeCustomId({ kind: "rate", chapterId: "a".repeat(41), value: 1 })).toThrow(RangeError);
  });
});
