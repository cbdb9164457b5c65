/**
 * A surface needs a conversation key and the platform's REST client, nothing else: no
 * gateway connection, no update loop, no adapter. So a process that only writes chapters
 * (a worker on another machine) can stream into any chat. Each test builds the clients a
 * worker would have, from the token and the API address alone, and checks what the fake
 * platform holds. Platform refusals come back as neutral `DeliveryError`s, logged once.
 */
import { type APIThreadChannel, ChannelType, REST, Routes } from "discord.js";
import { Telegram } from "telegraf";
import { afterEach, describe, expect, it } from "vitest";
import { decodeCustomId } from "../../adapters/discord/custom-id.ts";
import {
  ChannelGuilds,
  discordAudiences,
  discordChannelId,
  discordSurfaceFor,
} from "../../adapters/discord/surfaces.ts";
import { decodeCallback } from "../../adapters/telegram/callback-data.ts";
import { TelegramOutbox } from "../../adapters/telegram/outbox.ts";
import { telegramChatId, telegramSurfaceFor } from "../../adapters/telegram/surfaces.ts";
import { describeError } from "../../commands/dispatch.ts";
import { DeliveryError } from "../../src/render/delivery-error.ts";
import { StreamRenderer } from "../../src/render/stream-renderer.ts";
import type { ChoiceOffer } from "../../src/render/surface.ts";
import { FakeDiscordServer, type FakeMessage } from "../fakes/fake-discord-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";

const storyId = "cmwwuk7kf00009n7de680sdgd";
const chapterId = "cmwwuk9zq0001b2c3d4e5f6g7";

/** Three paragraphs of about 900 characters: more than one Discord message. */
const CHAPTER = [1, 2, 3]
  .map((n) => `Paragraph ${n}. ${"The keeper climbed the stair and the lamp turned over the sea. ".repeat(14).trim()}`)
  .join("\n\n");

/** Push `text` in small pieces, as a model streams it. */
async function stream(renderer: StreamRenderer, text: string): Promise<void> {
  for (let i = 0; i < text.length; i += 97) {
    renderer.push(text.slice(i, i + 97));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const vote: ChoiceOffer = {
  storyId,
  revision: 3,
  chapterId,
  choices: ["Light the lamp", "Wait for the ship"],
  allowWriteIn: true,
  mode: "vote",
  counts: [0, 0],
  closesAt: null,
};

describe("conversation keys", () => {
  it("name a Discord channel or a Telegram chat, and nothing else", () => {
    expect(discordChannelId("discord:1234567890123456789")).toBe("1234567890123456789");
    expect(discordChannelId("telegram:1234")).toBeUndefined();
    expect(discordChannelId("discord:abc")).toBeUndefined();
    expect(telegramChatId("telegram:-1001234567890")).toBe(-1001234567890);
    expect(telegramChatId("telegram:42")).toBe(42);
    expect(telegramChatId("telegram:4.2")).toBeUndefined();
    expect(telegramChatId("discord:42")).toBeUndefined();
    const rest = new REST();
    expect(() => discordSurfaceFor(rest, "telegram:42", "en", () => {})).toThrow(RangeError);
  });
});

describe("a Discord surface from the conversation key and a bare REST client", () => {
  let fake: FakeDiscordServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it("streams a chapter into a thread, renames it, offers and closes a vote, posts a picture", async () => {
    const dc = await FakeDiscordServer.start();
    fake = dc;
    const guild = dc.guild({ name: "Ink Club" });
    const channel = dc.textChannel(guild, { name: "stories" });
    // What a worker has: the API address and the bot token. No gateway client logs in.
    const rest = new REST({ api: dc.apiRoot }).setToken(dc.token);
    const thread = (await rest.post(Routes.threads(channel.id), {
      body: { name: "a lighthouse keeper", type: ChannelType.PublicThread, auto_archive_duration: 1440 },
    })) as APIThreadChannel;
    const logs: string[] = [];
    const surface = discordSurfaceFor(rest, `discord:${thread.id}`, "en", (line) => logs.push(line));

    const renderer = new StreamRenderer(surface);
    await stream(renderer, CHAPTER);
    const rendered = await renderer.finish();
    const passage = rendered[0]?.ref;
    if (passage === undefined) throw new Error("nothing rendered");
    await surface.retitle("The Lamp Keeper");
    const offer = await surface.offerChoices(vote);
    await surface.postImage({
      name: "chapter-1.png",
      bytes: new Uint8Array([0x89, 0x50, 0x4e, 0x47]),
      mime: "image/png",
      caption: "The lamp at dusk",
      replyTo: passage,
    });

    const live = dc.messages(thread.id).filter((m) => !m.deleted);
    expect(rendered.length).toBeGreaterThan(1);
    expect(live.slice(0, rendered.length).map((m) => m.content)).toEqual(rendered.map((m) => m.text));
    expect(rendered.map((m) => m.text).join("\n\n")).toBe(CHAPTER);
    for (const m of live) expect(m.content.length).toBeLessThanOrEqual(2000);
    expect(dc.channel(thread.id)?.name).toBe("The Lamp Keeper");
    const ids = (m: FakeMessage | undefined) =>
      ((m?.components ?? []) as { components: { custom_id: string }[] }[]).map((row) =>
        row.components.map((b) => decodeCustomId(b.custom_id)?.kind),
      );
    expect(ids(dc.message(offer.id))).toEqual([
      ["vote", "vote"],
      ["suggest", "close"],
      ["rate", "rate"],
    ]);
    const picture = live.at(-1);
    expect(picture?.attachments.map((a) => a.filename)).toEqual(["chapter-1.png"]);
    expect(picture?.reference?.messageId).toBe(passage.id);

    await surface.closeChoices(offer, vote, { chosen: 2, label: "Wait for the ship", counts: [0, 2] });
    expect(dc.message(offer.id)?.content).toContain("Wait for the ship");
    expect(ids(dc.message(offer.id))).toEqual([["rate", "rate"]]);

    // Every call was REST: the gateway never heard from anyone.
    expect(dc.gatewayReceived).toEqual([]);
    expect(logs).toEqual([]);
  });

  it("a worker's audience reads a thread's server once: later chapters cost no request to find it", async () => {
    const dc = await FakeDiscordServer.start();
    fake = dc;
    const guild = dc.guild({ name: "Ink Club" });
    const channel = dc.textChannel(guild, { name: "stories" });
    const rest = new REST({ api: dc.apiRoot }).setToken(dc.token);
    const asked: string[] = [];
    const settings = {
      get: async (_platform: string, externalId: string) => {
        asked.push(externalId);
        return { locale: "zh" as const, voteSeconds: 90 };
      },
    } as unknown as Parameters<typeof discordAudiences>[1];
    const audiences = discordAudiences(rest, settings, () => {});
    for (let i = 0; i < 3; i++) {
      const audience = await audiences(`discord:${channel.id}`);
      expect(audience?.locale).toBe("zh");
      expect(audience?.voting?.windowSeconds).toBe(90);
    }
    // The server's settings are read each time (a moderator may change them), the channel once.
    expect(asked).toEqual([guild.id, guild.id, guild.id]);
    expect(dc.calls.filter((c) => c.route === "/channels/:channel").map((c) => c.method)).toEqual(["GET"]);
    // A front learns a channel from its interactions and never reads it.
    const known = new ChannelGuilds();
    known.learn("123456789012345678", ChannelType.PublicThread, guild.id);
    known.learn("223456789012345678", ChannelType.GuildCategory, guild.id);
    expect((await discordAudiences(rest, settings, () => {}, known)("discord:123456789012345678"))?.locale).toBe("zh");
    expect(known.get("223456789012345678")).toBeUndefined();
    expect(dc.calls.filter((c) => c.route === "/channels/:channel")).toHaveLength(1);
  });

  it("a thread deleted by a moderator is 'gone', a denied permission 'forbidden': logged once, told plainly", async () => {
    const dc = await FakeDiscordServer.start();
    fake = dc;
    const guild = dc.guild();
    const channel = dc.textChannel(guild, { name: "stories" });
    const rest = new REST({ api: dc.apiRoot }).setToken(dc.token);
    const thread = (await rest.post(Routes.threads(channel.id), {
      body: { name: "a haunted mill", type: ChannelType.PublicThread },
    })) as APIThreadChannel;
    const logs: string[] = [];
    const log = (line: string) => logs.push(line);

    dc.denyPermission(channel, "SendMessagesInThreads");
    const denied = await discordSurfaceFor(rest, `discord:${thread.id}`, "zh", log)
      .failed("The chapter could not be written.", { storyId })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(DeliveryError);
    expect(denied).toMatchObject({ kind: "forbidden", permission: "Send Messages in Threads" });
    expect(describeError(denied, "en", "discord")).toBe(
      "I am missing the “Send Messages in Threads” permission in this channel. A moderator can grant it.",
    );

    dc.deleteChannel(thread.id);
    const gone = await discordSurfaceFor(rest, `discord:${thread.id}`, "en", log)
      .post("Chapter 2")
      .catch((e: unknown) => e);
    expect(gone).toMatchObject({ kind: "gone", platform: "discord" });
    expect(describeError(gone, "en", "discord")).toBe("The message or chat I was writing to no longer exists.");
    expect(logs.filter((l) => l.includes("failure notice failed: forbidden (403 50013"))).toHaveLength(1);
    expect(logs.filter((l) => l.includes("post failed: gone (404 10003"))).toHaveLength(1);
  });
});

describe("a Telegram surface from the conversation key, a bare Telegram client and a new outbox", () => {
  let fake: FakeTelegramServer | undefined;
  let outbox: TelegramOutbox | undefined;
  afterEach(async () => {
    await outbox?.close();
    outbox = undefined;
    await fake?.close();
    fake = undefined;
  });

  async function world() {
    const tg = await FakeTelegramServer.start();
    fake = tg;
    // What a worker has: the token and the API address; no polling, no webhook, no adapter.
    const telegram = new Telegram(tg.token, { apiRoot: tg.apiRoot });
    outbox = new TelegramOutbox({ perChatIntervalMs: 0 });
    const logs: string[] = [];
    const surfaceOf = (chatId: number) =>
      telegramSurfaceFor(telegram, outbox as TelegramOutbox, `telegram:${chatId}`, "en", (line) => logs.push(line));
    return { tg, logs, surfaceOf };
  }

  it("a group streams by edits and votes; its kind comes from its negative id", async () => {
    const { tg, logs, surfaceOf } = await world();
    const group = tg.chat("supergroup", { title: "Book club" });
    const surface = surfaceOf(group.id);
    expect(surface.kind).toBe("group");

    const renderer = new StreamRenderer(surface);
    await stream(renderer, CHAPTER);
    const rendered = await renderer.finish();
    const offer = await surface.offerChoices(vote);

    const live = tg.messages(group.id).filter((m) => !m.deleted);
    expect(live.map((m) => m.text)).toEqual([CHAPTER, expect.stringContaining("vote")]);
    expect(rendered.map((m) => m.ref.id)).toEqual([String(live[0]?.message_id)]);
    expect(tg.drafts(group.id)).toEqual([]);
    const markup = live[1]?.reply_markup as { inline_keyboard?: { callback_data: string }[][] } | undefined;
    const buttons = markup?.inline_keyboard ?? [];
    expect(buttons.flat().map((b) => decodeCallback(b.callback_data)?.kind)).toEqual([
      "vote",
      "vote",
      "suggest",
      "close",
      "rate",
      "rate",
    ]);
    expect(offer.id).toBe(String(live[1]?.message_id));
    expect(logs).toEqual([]);
  });

  it("a private chat streams into a draft; a refusal is remembered by the outbox, not by a surface", async () => {
    const { tg, logs, surfaceOf } = await world();
    const reader = tg.chat("private");
    const surface = surfaceOf(reader.id);
    expect(surface.kind).toBe("private");

    const renderer = new StreamRenderer(surface);
    await stream(renderer, "Chapter 1\n\nThe lamp turned.");
    await renderer.finish();
    expect(tg.drafts(reader.id).length).toBeGreaterThan(0);
    expect(tg.messages(reader.id).map((m) => m.text)).toEqual(["Chapter 1\n\nThe lamp turned."]);

    // A server that refuses drafts: one refusal, then every surface for the chat streams by edits.
    const other = tg.chat("private");
    tg.failNext("sendMessageDraft", { error_code: 400, description: "Bad Request: method not supported" });
    await surfaceOf(other.id).post("Chapter 1");
    const drafts = tg.calls.filter((c) => c.method === "sendMessageDraft" && c.params.chat_id === other.id);
    expect(drafts).toHaveLength(1);
    const again = new StreamRenderer(surfaceOf(other.id));
    await stream(again, "Chapter 2\n\nThe ship came in.");
    await again.finish();
    expect(tg.calls.filter((c) => c.method === "sendMessageDraft" && c.params.chat_id === other.id)).toHaveLength(1);
    expect(tg.messages(other.id).map((m) => m.text)).toEqual(["Chapter 1", "Chapter 2\n\nThe ship came in."]);
    expect(logs).toEqual([
      expect.stringContaining(`telegram chat ${other.id}: draft (now streaming by edits) failed: other (400`),
    ]);
  });

  it("a chat that blocked the bot is 'forbidden', an unknown chat 'gone'", async () => {
    const { tg, logs, surfaceOf } = await world();
    const reader = tg.chat("group");
    tg.blockBot(reader.id);
    const blocked = await surfaceOf(reader.id)
      .notice("Chapter 2 is ready.")
      .catch((e: unknown) => e);
    expect(blocked).toBeInstanceOf(DeliveryError);
    expect(blocked).toMatchObject({ kind: "forbidden", platform: "telegram" });
    expect(describeError(blocked, "en", "telegram")).toBe(
      "I am missing a permission here: ask a moderator to check my permissions.",
    );
    const unknown = await surfaceOf(-4_999_999_999)
      .notice("hello")
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ kind: "gone", platform: "telegram" });
    // The 403 is the outbox's to report (onBlocked); the unknown chat is logged where it was mapped.
    expect(logs).toEqual([expect.stringContaining("notice failed: gone (400 Bad Request: chat not found)")]);
  });
});
