import { describe, expect, it } from "vitest";
import { remixLink } from "../../adapters/telegram/telegram-adapter.ts";
import {
  DISCORD_CUSTOM_ID_FORMAT,
  decodeAction,
  encodeAction,
  TELEGRAM_CALLBACK_FORMAT,
} from "../../commands/action-codec.ts";
import { newShareCode, parseShareCode } from "../../src/story/sharing.ts";

describe("the Make my version button", () => {
  it("carries the share code on Discord as ink:k:<code>, and back", () => {
    const code = newShareCode();
    const id = encodeAction({ kind: "remix", code }, DISCORD_CUSTOM_ID_FORMAT);
    expect(id).toBe(`ink:k:${code}`);
    expect(decodeAction(id, DISCORD_CUSTOM_ID_FORMAT)).toEqual({ kind: "remix", code });
  });

  it("refuses a mangled or extended remix id", () => {
    expect(decodeAction("ink:k:", DISCORD_CUSTOM_ID_FORMAT)).toBeUndefined();
    expect(decodeAction("ink:k:abc:1", DISCORD_CUSTOM_ID_FORMAT)).toBeUndefined();
    expect(decodeAction("ink:k:a b", DISCORD_CUSTOM_ID_FORMAT)).toBeUndefined();
    expect(decodeAction("k|abc|1", TELEGRAM_CALLBACK_FORMAT)).toBeUndefined();
  });
});

describe("the Telegram deep link", () => {
  it("starts the bot with remix-<code>, which reads back as the code", () => {
    const code = newShareCode();
    const link = remixLink("inkbot", code);
    expect(link).toBe(`https://t.me/inkbot?start=remix-${code}`);
    // Telegram allows 64 characters of [A-Za-z0-9_-] in a start payload.
    const payload = new URL(link).searchParams.get("start") ?? "";
    expect(payload).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(parseShareCode(payload)).toBe(code);
  });
});
