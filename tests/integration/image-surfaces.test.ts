/**
 * `Surface.postImage` on the chat surfaces, with the real telegraf and discord.js clients
 * against the fake Telegram and Discord servers: the picture's bytes, caption and reply target
 * arrive, it follows the passage, and the platforms' refusals are handled.
 */
import { crc32, deflateSync } from "node:zlib";
import { type Client, DiscordAPIError, type TextChannel, type ThreadChannel } from "discord.js";
import { Telegraf } from "telegraf";
import { afterEach, describe, expect, it } from "vitest";
import { DISCORD_LIMITS, type DiscordSurface } from "../../adapters/discord/discord-surface.ts";
import { discordSurfaceFor } from "../../adapters/discord/surfaces.ts";
import { TelegramOutbox } from "../../adapters/telegram/outbox.ts";
import { telegramSurfaceFor } from "../../adapters/telegram/surfaces.ts";
import { TELEGRAM_LIMITS, type TelegramSurface } from "../../adapters/telegram/telegram-surface.ts";
import { describeError } from "../../commands/dispatch.ts";
import { DeliveryError } from "../../src/render/delivery-error.ts";
import type { OutgoingImage } from "../../src/render/surface.ts";
import { type FakeChannel, FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { type FakeChat, FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { loggedInClient, restFor, storyThread, textChannelOf } from "../helpers/discord-client.ts";

/** A PNG chunk: length, type, data, CRC of type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A real `width` x `height` RGB PNG of one colour. */
function png(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per channel, truecolour, deflate, no filter, no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => rgb).flat())]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(
    Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", pixels), chunk("IEND", Buffer.alloc(0))]),
  );
}

const PICTURE = png(4, 3, [30, 60, 120]);

function image(overrides: Partial<OutgoingImage> = {}): OutgoingImage {
  return { name: "chapter-1.png", bytes: PICTURE, mime: "image/png", caption: "The lighthouse at dusk", ...overrides };
}

/** Bytes the size of a large picture, starting like a PNG. */
function bigPicture(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  bytes.set(PICTURE.subarray(0, 8));
  return bytes;
}

describe("TelegramSurface.postImage against the fake Bot API with the real telegraf client", () => {
  let fake: FakeTelegramServer | undefined;
  let outbox: TelegramOutbox | undefined;

  afterEach(async () => {
    await outbox?.close();
    outbox = undefined;
    await fake?.close();
    fake = undefined;
  });

  async function world(): Promise<{ tg: FakeTelegramServer; bot: Telegraf; chat: FakeChat; surface: TelegramSurface }> {
    const tg = await FakeTelegramServer.start();
    fake = tg;
    const bot = new Telegraf(tg.token, { telegram: { apiRoot: tg.apiRoot } });
    // No spacing between calls to the chat, to keep the tests quick; calls to a chat still run one at a time, in order.
    outbox = new TelegramOutbox({ perChatIntervalMs: 0 });
    const chat = tg.chat("group");
    const surface = telegramSurfaceFor(bot.telegram, outbox, `telegram:${chat.id}`, "en", () => {});
    return { tg, bot, chat, surface };
  }

  it("sends a photo with its bytes and caption as a reply to the passage", async () => {
    const { tg, chat, surface } = await world();
    const passage = await surface.post("Chapter 1\n\nThe lamp turned.");
    const ref = await surface.postImage(image({ replyTo: passage }));

    const [text, photo] = tg.messages(chat.id);
    expect(text?.message_id).toBe(Number(passage.id));
    expect(ref.id).toBe(String(photo?.message_id));
    expect(photo?.photo?.bytes.equals(Buffer.from(PICTURE))).toBe(true);
    expect(photo?.photo?.file_name).toBe("chapter-1.png");
    expect(photo?.document).toBeUndefined();
    expect(photo?.caption).toBe("The lighthouse at dusk");
    expect(photo?.reply_to_message_id).toBe(Number(passage.id));
    const call = tg.calls.find((c) => c.method === "sendPhoto");
    expect(call?.params.reply_parameters).toEqual({
      message_id: Number(passage.id),
      allow_sending_without_reply: true,
    });
  });

  it("an image posted after a text arrives after it, even when neither was awaited", async () => {
    const { tg, chat, surface } = await world();
    const notice = surface.notice("Chapter 2 is ready.");
    const picture = surface.postImage(image({ caption: "" }));
    await Promise.all([notice, picture]);
    const messages = tg.messages(chat.id);
    expect(messages.map((m) => (m.photo ? "photo" : m.text))).toEqual(["Chapter 2 is ready.", "photo"]);
    expect(messages[1]?.caption).toBeUndefined();
  });

  it("a passage deleted meanwhile does not fail the send; without replyTo it is no reply", async () => {
    const { tg, bot, chat, surface } = await world();
    const passage = await surface.post("Chapter 3");
    await bot.telegram.deleteMessage(chat.id, Number(passage.id));
    const ref = await surface.postImage(image({ replyTo: passage }));
    const plain = await surface.postImage(image({ name: "chapter-3b.png" }));
    const byId = (id: string) => tg.messages(chat.id).find((m) => m.message_id === Number(id));
    expect(byId(ref.id)?.photo?.bytes.equals(Buffer.from(PICTURE))).toBe(true);
    expect(byId(ref.id)?.reply_to_message_id).toBeUndefined();
    expect(byId(plain.id)?.reply_to_message_id).toBeUndefined();
    const [toDeleted] = tg.calls.filter((c) => c.method === "sendPhoto");
    expect(toDeleted?.params.reply_parameters).toEqual({
      message_id: Number(passage.id),
      allow_sending_without_reply: true,
    });
    expect(toDeleted?.status).toBe(200);
  });

  it("cuts a caption over 1024 characters without splitting a surrogate pair", async () => {
    const { tg, chat, surface } = await world();
    // The 1023rd code unit is the first half of a wave: the cut goes before the wave.
    await surface.postImage(image({ caption: `${"a".repeat(1022)}🌊🌊🌊` }));
    await surface.postImage(image({ caption: `${"a".repeat(1021)}🌊🌊🌊` }));
    const [split, whole] = tg.messages(chat.id).map((m) => m.caption ?? "");
    expect(split).toBe(`${"a".repeat(1022)}…`);
    expect(whole).toBe(`${"a".repeat(1021)}🌊…`);
    expect(whole?.length).toBe(1024);
  });

  it("falls back once to a document with the same caption and reply when Telegram refuses the photo", async () => {
    const { tg, chat, surface } = await world();
    const passage = await surface.post("Chapter 4");
    tg.failNext("sendPhoto", { error_code: 400, description: "Bad Request: PHOTO_INVALID_DIMENSIONS" });
    const ref = await surface.postImage(image({ replyTo: passage }));

    const sent = tg.messages(chat.id).find((m) => m.message_id === Number(ref.id));
    expect(sent?.photo).toBeUndefined();
    expect(sent?.document?.bytes.equals(Buffer.from(PICTURE))).toBe(true);
    expect(sent?.document?.file_name).toBe("chapter-1.png");
    expect(sent?.caption).toBe("The lighthouse at dusk");
    expect(sent?.reply_to_message_id).toBe(Number(passage.id));
    const uploads = tg.calls.filter((c) => c.method === "sendPhoto" || c.method === "sendDocument");
    expect(uploads.map((c) => [c.method, c.status])).toEqual([
      ["sendPhoto", 400],
      ["sendDocument", 200],
    ]);
  });

  it("a 429 on the fallback document is waited out without trying the photo again", async () => {
    const { tg, chat, surface } = await world();
    tg.failNext("sendPhoto", { error_code: 400, description: "Bad Request: IMAGE_PROCESS_FAILED" });
    tg.failNext("sendDocument", { error_code: 429, description: "Too Many Requests: retry after 1", retry_after: 1 });
    const ref = await surface.postImage(image());
    expect(tg.messages(chat.id).find((m) => m.message_id === Number(ref.id))?.document).toBeDefined();
    const uploads = tg.calls.filter((c) => c.method === "sendPhoto" || c.method === "sendDocument");
    expect(uploads.map((c) => [c.method, c.status])).toEqual([
      ["sendPhoto", 400],
      ["sendDocument", 429],
      ["sendDocument", 200],
    ]);
  });

  it("a chat that takes no photos gets a document; a server error is not retried as one", async () => {
    const { tg, chat, surface } = await world();
    tg.failNext("sendPhoto", {
      error_code: 400,
      description: "Bad Request: not enough rights to send photos to the chat",
    });
    const ref = await surface.postImage(image());
    expect(tg.messages(chat.id).find((m) => m.message_id === Number(ref.id))?.document).toBeDefined();

    tg.failNext("sendPhoto", { error_code: 500, description: "Internal Server Error" });
    const error = await surface.postImage(image()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ kind: "transient", platform: "telegram", cause: { code: 500 } });
    expect(tg.calls.filter((c) => c.method === "sendDocument")).toHaveLength(1);
  });

  it("sends an image over the 10 MB photo limit as a document; uploads stop at 50 MB", async () => {
    const { tg, chat, surface } = await world();
    expect(TELEGRAM_LIMITS.maxUploadBytes).toBe(50_000_000);
    const bytes = bigPicture(10_000_001);
    const ref = await surface.postImage(image({ bytes }));
    const sent = tg.messages(chat.id).find((m) => m.message_id === Number(ref.id));
    expect(sent?.document?.bytes.length).toBe(bytes.length);
    expect(sent?.caption).toBe("The lighthouse at dusk");
    expect(tg.calls.some((c) => c.method === "sendPhoto")).toBe(false);
  });
});

describe("DiscordSurface.postImage against the fake Discord with the real discord.js client", () => {
  let fake: FakeDiscordServer | undefined;
  let client: Client | undefined;

  afterEach(async () => {
    if (client) await client.destroy();
    client = undefined;
    await fake?.close();
    fake = undefined;
  });

  /** One guild, one text channel with a public thread in it, and a logged-in discord.js client. */
  async function world(): Promise<{
    dc: FakeDiscordServer;
    channel: FakeChannel;
    text: TextChannel;
    thread: ThreadChannel;
    /** A surface from the channel's conversation key and a bare REST client. */
    surfaceIn(channel: { id: string }): DiscordSurface;
  }> {
    const dc = await FakeDiscordServer.start();
    fake = dc;
    const guild = dc.guild({ name: "Ink Club" });
    const channel = dc.textChannel(guild, { name: "stories" });
    const bot = await loggedInClient(dc);
    client = bot;
    const rest = restFor(dc);
    const surfaceIn = (c: { id: string }) => discordSurfaceFor(rest, `discord:${c.id}`, "en", () => {});
    return { dc, channel, text: textChannelOf(bot, channel), thread: await storyThread(bot, channel), surfaceIn };
  }

  it("attaches the picture with its bytes and caption as a reply that pings no one", async () => {
    const { dc, thread, surfaceIn } = await world();
    const surface = surfaceIn(thread);
    const passage = await surface.post("Chapter 1\n\nThe lamp turned.");
    const ref = await surface.postImage(image({ replyTo: passage }));

    const sent = dc.message(ref.id);
    expect(sent?.channelId).toBe(thread.id);
    expect(sent?.content).toBe("The lighthouse at dusk");
    expect(sent?.attachments.map((a) => a.filename)).toEqual(["chapter-1.png"]);
    expect(sent?.attachments[0]?.bytes.equals(Buffer.from(PICTURE))).toBe(true);
    expect(sent?.reference).toEqual({ messageId: passage.id, channelId: thread.id });
    expect(sent?.type).toBe(19);
    const post = dc.calls.filter((c) => c.method === "POST" && c.route === "/channels/:channel/messages").at(-1);
    expect(post?.body).toMatchObject({
      allowed_mentions: { parse: [] },
      message_reference: { message_id: passage.id, fail_if_not_exists: false },
    });
    expect(DISCORD_LIMITS.maxUploadBytes).toBe(10 * 1024 * 1024);
  });

  it("an image posted after a text arrives after it, even when neither was awaited", async () => {
    const { dc, thread, surfaceIn } = await world();
    const surface = surfaceIn(thread);
    const notice = surface.notice("Chapter 2 is ready.");
    const picture = surface.postImage(image({ caption: "" }));
    await Promise.all([notice, picture]);
    const messages = dc.messages(thread.id);
    expect(messages.map((m) => (m.attachments.length > 0 ? "image" : m.content))).toEqual([
      "Chapter 2 is ready.",
      "image",
    ]);
    expect(messages[1]?.content).toBe("");
    expect(messages[1]?.reference).toBeUndefined();
  });

  it("a passage deleted meanwhile does not fail the send", async () => {
    const { dc, thread, surfaceIn } = await world();
    const surface = surfaceIn(thread);
    const passage = await surface.post("Chapter 3");
    dc.deleteMessage(thread.id, passage.id);
    const ref = await surface.postImage(image({ replyTo: passage }));
    expect(dc.message(ref.id)?.attachments[0]?.bytes.equals(Buffer.from(PICTURE))).toBe(true);
    expect(dc.message(ref.id)?.reference).toBeUndefined();
    expect(dc.message(ref.id)?.type).toBe(0);
    // Without failIfNotExists: false, Discord refuses a reply to a deleted message.
    const strict = await thread
      .send({ content: "strict", reply: { messageReference: passage.id, failIfNotExists: true } })
      .catch((e: unknown) => e);
    expect(strict).toBeInstanceOf(DiscordAPIError);
    expect((strict as DiscordAPIError).code).toBe(50035);
  });

  it("unarchives an archived thread before attaching", async () => {
    const { dc, thread, surfaceIn } = await world();
    const surface = surfaceIn(thread);
    dc.archiveThread(thread.id);
    const ref = await surface.postImage(image());
    expect(dc.message(ref.id)?.attachments).toHaveLength(1);
    expect(dc.channel(thread.id)?.archived).toBe(false);
  });

  it("a denied Attach Files permission becomes a reader-facing error naming it", async () => {
    const { dc, channel, surfaceIn } = await world();
    const surface = surfaceIn(channel);
    dc.denyPermission(channel, "AttachFiles");
    const error = await surface.postImage(image()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ kind: "forbidden", platform: "discord", permission: "Attach Files" });
    expect(describeError(error, "en")).toBe(
      "I am missing the “Attach Files” permission in this channel. A moderator can grant it.",
    );
    expect(dc.messages(channel.id).filter((m) => m.attachments.length > 0)).toEqual([]);
  });
});
