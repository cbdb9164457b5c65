/**
 * The Surface contract (tests/contract/surface.contract.ts) against every implementation:
 * the terminal, Telegram and Discord through their real clients and the platform fakes,
 * and the test fake. The chat surfaces are built as a chapter worker builds them: from the
 * conversation key and the platform's REST client alone.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { type APIThreadChannel, ChannelType, Routes } from "discord.js";
import { Telegram } from "telegraf";
import { ConsoleSurface } from "../../adapters/console/console-surface.ts";
import { discordSurfaceFor } from "../../adapters/discord/surfaces.ts";
import { TelegramOutbox } from "../../adapters/telegram/outbox.ts";
import { telegramSurfaceFor } from "../../adapters/telegram/surfaces.ts";
import { surfaceContract } from "../contract/surface.contract.ts";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { restFor } from "../helpers/discord-client.ts";

surfaceContract(
  "terminal",
  async () => {
    const out = new PassThrough();
    let printed = "";
    out.on("data", (chunk: Buffer) => {
      printed += chunk.toString("utf8");
    });
    const dir = mkdtempSync(join(tmpdir(), "inkloom-surface-"));
    return {
      surface: new ConsoleSurface(out, "en", dir),
      visible: async () => [printed],
      buttons: async () => [],
      pictures: async () => printed.split("Illustration saved to").length - 1,
      close: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  { deletable: false, genreButtons: false },
);

surfaceContract(
  "test fake",
  async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 50 } });
    const live = () => [...surface.messages.values()].filter((m) => !m.deleted);
    return {
      surface,
      visible: async () => live().map((m) => m.text),
      buttons: async () =>
        live()
          .flatMap((m) => (m.offer !== undefined && m.result === undefined ? m.offer.choices : []))
          .concat(surface.prompts.flatMap((p) => p.rows.flat().map((b) => b.label))),
      pictures: async () => surface.images.length,
      remove: async (ref) => surface.deleteMessage(ref.id),
      close: async () => {},
    };
  },
  { deletable: true, genreButtons: true },
);

type InlineKeyboard = { inline_keyboard?: { text: string }[][] };

surfaceContract(
  "Telegram (telegraf against the Bot API fake)",
  async () => {
    const tg = await FakeTelegramServer.start();
    const telegram = new Telegram(tg.token, { apiRoot: tg.apiRoot });
    const outbox = new TelegramOutbox({ perChatIntervalMs: 0 });
    // A group: messages stream by edits (a private chat streams into a draft first).
    const chat = tg.chat("group");
    const live = () => tg.messages(chat.id).filter((m) => !m.deleted);
    return {
      surface: telegramSurfaceFor(telegram, outbox, `telegram:${chat.id}`, "en", () => {}),
      visible: async () => live().map((m) => m.text || m.caption || ""),
      buttons: async () =>
        live().flatMap((m) =>
          ((m.reply_markup as InlineKeyboard | undefined)?.inline_keyboard ?? []).flat().map((b) => b.text),
        ),
      pictures: async () => live().filter((m) => m.photo !== undefined || m.document !== undefined).length,
      remove: async (ref) => {
        await telegram.deleteMessage(chat.id, Number(ref.id));
      },
      close: async () => {
        await outbox.close();
        await tg.close();
      },
    };
  },
  { deletable: true, genreButtons: true },
);

type Components = { components?: { label?: string; disabled?: boolean }[] }[];

surfaceContract(
  "Discord (discord.js against the Discord fake)",
  async () => {
    const dc = await FakeDiscordServer.start();
    const guild = dc.guild({ name: "Ink Club" });
    const channel = dc.textChannel(guild, { name: "stories" });
    // No gateway connection at all: the thread is created and written over REST.
    const rest = restFor(dc);
    const thread = (await rest.post(Routes.threads(channel.id), {
      body: { name: "The Lighthouse", type: ChannelType.PublicThread },
    })) as APIThreadChannel;
    const live = () => dc.messages(thread.id).filter((m) => !m.deleted);
    return {
      surface: discordSurfaceFor(rest, `discord:${thread.id}`, "en", () => {}),
      visible: async () => live().map((m) => m.content),
      buttons: async () =>
        live().flatMap((m) =>
          (m.components as Components)
            .flatMap((row) => row.components ?? [])
            .filter((c) => c.disabled !== true)
            .map((c) => c.label ?? ""),
        ),
      pictures: async () => live().filter((m) => m.attachments.length > 0).length,
      remove: async (ref) => dc.deleteMessage(thread.id, ref.id),
      close: async () => {
        await dc.close();
      },
    };
  },
  { deletable: true, genreButtons: false },
);
