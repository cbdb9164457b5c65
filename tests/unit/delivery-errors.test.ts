/**
 * One file per platform maps its errors to the neutral kinds (adapters/<platform>/errors.ts);
 * one dispatcher (`describeError`) decides what the reader sees for each kind.
 */
import { DiscordAPIError, HTTPError } from "discord.js";
import { describe, expect, it } from "vitest";
import { discordDeliveryError, discordErrorKind, isThreadArchived } from "../../adapters/discord/errors.ts";
import {
  ChatBlockedError,
  isNotModified,
  isPhotoRefused,
  OutboxClosedError,
  readTelegramError,
  telegramDeliveryError,
  telegramErrorKind,
} from "../../adapters/telegram/errors.ts";
import { describeError, dispatch } from "../../commands/dispatch.ts";
import { type CommandContext, defineCommand } from "../../commands/types.ts";
import { DeliveryError, deliveryErrorKind, isNetworkFailure } from "../../src/render/delivery-error.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";

function discordError(code: number, status: number, message = "error"): DiscordAPIError {
  return new DiscordAPIError({ code, message }, code, status, "POST", "https://discord.test/api/v10/channels/1", {});
}

/** Shaped like telegraf's `TelegramError` (code, description and parameters are getters there). */
function telegramError(code: number, description: string, parameters?: { retry_after?: number }) {
  return Object.assign(new Error(`${code}: ${description}`), { code, description, parameters });
}

const socketError = () => Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });

describe("Discord errors", () => {
  it("map to the neutral kinds", () => {
    expect(discordErrorKind(discordError(50013, 403, "Missing Permissions"))).toBe("forbidden");
    expect(discordErrorKind(discordError(50001, 403, "Missing Access"))).toBe("forbidden");
    expect(discordErrorKind(discordError(50007, 403, "Cannot send messages to this user"))).toBe("forbidden");
    expect(discordErrorKind(discordError(10003, 404, "Unknown Channel"))).toBe("gone");
    expect(discordErrorKind(discordError(10008, 404, "Unknown Message"))).toBe("gone");
    expect(discordErrorKind(discordError(0, 429, "You are being rate limited."))).toBe("rate-limited");
    expect(discordErrorKind(discordError(0, 502, "Bad Gateway"))).toBe("transient");
    expect(discordErrorKind(new HTTPError(503, "Service Unavailable", "PATCH", "https://discord.test", {}))).toBe(
      "transient",
    );
    expect(discordErrorKind(Object.assign(new TypeError("fetch failed"), { cause: socketError() }))).toBe("transient");
    expect(discordErrorKind(discordError(50035, 400, "Invalid Form Body"))).toBe("other");
    expect(discordErrorKind(new Error("a bug"))).toBe("other");
    expect(isThreadArchived(discordError(50083, 400, "Thread is archived"))).toBe(true);
    expect(isThreadArchived(discordError(50013, 403))).toBe(false);
  });

  it("become a DeliveryError, logged once where mapped, naming the permission only when forbidden", () => {
    const logs: string[] = [];
    const forbidden = discordDeliveryError(
      discordError(50013, 403, "Missing Permissions"),
      { channelId: "42", action: "post", permission: "Send Messages" },
      (line) => logs.push(line),
    );
    expect(forbidden).toMatchObject({ kind: "forbidden", platform: "discord", permission: "Send Messages" });
    expect(logs).toEqual(["discord channel 42: post failed: forbidden (403 50013 Missing Permissions)"]);
    // Mapping a mapped error again changes nothing and logs nothing.
    expect(discordDeliveryError(forbidden, { channelId: "42", action: "again" }, (line) => logs.push(line))).toBe(
      forbidden,
    );
    expect(logs).toHaveLength(1);
    const gone = discordDeliveryError(
      discordError(10008, 404, "Unknown Message"),
      { channelId: "42", action: "edit", permission: "Send Messages" },
      (line) => logs.push(line),
    );
    expect(gone.permission).toBeUndefined();
    expect(deliveryErrorKind(gone)).toBe("gone");
    expect(deliveryErrorKind(new Error("not a platform's"))).toBeUndefined();
  });
});

describe("Telegram errors", () => {
  it("map to the neutral kinds", () => {
    expect(telegramErrorKind(telegramError(403, "Forbidden: bot was blocked by the user"))).toBe("forbidden");
    expect(telegramErrorKind(telegramError(403, "Forbidden: bot was kicked from the group chat"))).toBe("forbidden");
    expect(telegramErrorKind(new ChatBlockedError(7))).toBe("forbidden");
    expect(
      telegramErrorKind(telegramError(400, "Bad Request: not enough rights to send text messages to the chat")),
    ).toBe("forbidden");
    expect(telegramErrorKind(telegramError(400, "Bad Request: chat not found"))).toBe("gone");
    expect(telegramErrorKind(telegramError(400, "Bad Request: message to edit not found"))).toBe("gone");
    expect(telegramErrorKind(telegramError(429, "Too Many Requests: retry after 5", { retry_after: 5 }))).toBe(
      "rate-limited",
    );
    expect(telegramErrorKind(telegramError(502, "Bad Gateway"))).toBe("transient");
    expect(telegramErrorKind(Object.assign(new Error("request failed"), { name: "FetchError", type: "system" }))).toBe(
      "transient",
    );
    expect(telegramErrorKind(socketError())).toBe("transient");
    expect(telegramErrorKind(new OutboxClosedError())).toBe("transient");
    expect(telegramErrorKind(telegramError(400, "Bad Request: message text is empty"))).toBe("other");
    expect(telegramErrorKind(new Error("a bug"))).toBe("other");
  });

  it("are read by shape, raw answers included, for the outbox's own decisions", () => {
    expect(
      readTelegramError({ ok: false, error_code: 429, description: "Too Many", parameters: { retry_after: 3 } }),
    ).toEqual({ code: 429, description: "Too Many", retryAfterS: 3 });
    expect(readTelegramError(socketError())).toBeUndefined();
    expect(isNotModified(readTelegramError(telegramError(400, "Bad Request: message is not modified")))).toBe(true);
    expect(isNotModified(readTelegramError(telegramError(400, "Bad Request: chat not found")))).toBe(false);
    expect(isPhotoRefused(telegramError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS"))).toBe(true);
    expect(isPhotoRefused(telegramError(500, "Internal Server Error"))).toBe(false);
  });

  it("become a DeliveryError logged once; a blocked chat was reported by the outbox already", () => {
    const logs: string[] = [];
    const log = (line: string) => logs.push(line);
    const gone = telegramDeliveryError(
      telegramError(400, "Bad Request: chat not found"),
      { chatId: -5, action: "post" },
      log,
    );
    expect(gone).toMatchObject({ kind: "gone", platform: "telegram" });
    expect(logs).toEqual(["telegram chat -5: post failed: gone (400 Bad Request: chat not found)"]);
    const blocked = telegramDeliveryError(new ChatBlockedError(5), { chatId: 5, action: "notice" }, log);
    expect(blocked.kind).toBe("forbidden");
    expect(logs).toHaveLength(1);
  });
});

describe("what the reader sees", () => {
  const cases = [
    [
      new DeliveryError("forbidden", "telegram", "x"),
      "I am missing a permission here: ask a moderator to check my permissions.",
      "我在这里缺少权限：请管理员检查我的权限。",
    ],
    [
      new DeliveryError("forbidden", "discord", "x", { permission: "Attach Files" }),
      "I am missing the “Attach Files” permission in this channel. A moderator can grant it.",
      "我在这个频道缺少“Attach Files”权限，请管理员授予。",
    ],
    [
      new DeliveryError("gone", "discord", "x"),
      "The message or chat I was writing to no longer exists.",
      "我正在写入的消息或聊天已经不存在了。",
    ],
    [
      new DeliveryError("rate-limited", "telegram", "x"),
      "The chat platform asked me to slow down. Please try again in a moment.",
      "聊天平台要求我放慢速度，请稍后再试。",
    ],
    [
      new DeliveryError("transient", "discord", "x"),
      "I could not reach the chat platform just now. Please try again in a moment.",
      "暂时连不上聊天平台，请稍后再试。",
    ],
    [new DeliveryError("other", "discord", "x"), "Something went wrong on our side. Please try again.", undefined],
  ] as const;

  it("one clear message per kind, in English and Chinese", () => {
    for (const [error, en, zh] of cases) {
      expect(describeError(error, "en", error.platform)).toBe(en);
      if (zh !== undefined) expect(describeError(error, "zh", error.platform)).toBe(zh);
    }
  });

  it("dispatch tells the reader and does not log a delivery error a second time", async () => {
    const command = defineCommand(
      { name: "export", description: { en: "Export", zh: "导出" }, options: [], example: "/export" },
      async () => {
        throw new DeliveryError("forbidden", "discord", "discord channel 1: send file failed", {
          permission: "Attach Files",
        });
      },
    );
    const replies: string[] = [];
    const ctx = {
      locale: "en",
      conversation: { platform: "discord", workspaceId: "g", id: "1" },
      surface: new FakeSurface(),
      replyPrivately: async (text: string) => {
        replies.push(text);
      },
    } as unknown as CommandContext;
    const logs: string[] = [];
    expect(await dispatch(command, {}, ctx, (line) => logs.push(line))).toEqual({ kind: "failed" });
    expect(replies).toEqual(["I am missing the “Attach Files” permission in this channel. A moderator can grant it."]);
    expect(logs).toEqual([]);
  });

  it("network failures are known through the causes the clients wrap them in", () => {
    expect(isNetworkFailure(Object.assign(new TypeError("fetch failed"), { cause: socketError() }))).toBe(true);
    expect(isNetworkFailure(Object.assign(new Error("aborted"), { name: "AbortError" }))).toBe(true);
    expect(isNetworkFailure(Object.assign(new Error("x"), { code: "UND_ERR_CONNECT_TIMEOUT" }))).toBe(true);
    expect(isNetworkFailure(new Error("x"))).toBe(false);
    expect(isNetworkFailure(Object.assign(new Error("x"), { code: 400 }))).toBe(false);
  });
});
