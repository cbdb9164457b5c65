import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { cardPng, plainPng, v2Card, v3Card } from "../helpers/cards.ts";
import { TestDatabases } from "../helpers/database.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let tg: FakeTelegramServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let app: TelegramApp | undefined;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-tg-cards-"));
  dbUrl = await databases.url(dir, "tg");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ privacyMode: true });
  logs.length = 0;
});

afterEach(async () => {
  if (app !== undefined) await stopTelegramApp(app);
  app = undefined;
  await tg.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text ?? "");

describe("Telegram: /card with an attached card", { timeout: 120_000 }, () => {
  it("a PNG sent with /card import as its caption starts a story; a JSON card replied to joins it; /card export sends a document", async () => {
    app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), queueEnv());
    const { engine } = app;
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });

    tg.sendDocument(
      chat,
      ann,
      { name: "mara.png", content: cardPng(v2Card()), mimeType: "image/png" },
      {
        caption: "/card import",
      },
    );
    await tg.waitFor(() => texts(chat.id).find((t) => t.includes("Starting a story from Mara Vell's card")));
    await tg.waitFor(() => texts(chat.id).find((t) => t.startsWith("Chapter 1")));
    expect(tg.downloads).toHaveLength(1);
    const story = await engine.db.story.findFirstOrThrow({ include: { characters: true, lore: true } });
    expect(story.premise).toContain("Mara Vell keeps the lighthouse on Gull Rock");
    expect(story.characters.map((c) => c.name)).toContain("Mara Vell");
    expect(story.lore.filter((l) => l.source === "card")).toHaveLength(2);

    // A card sent on its own, then answered with /card import as a reply to it.
    const sent = tg.sendDocument(chat, ann, { name: "orrin.json", content: Buffer.from(JSON.stringify(v3Card())) });
    tg.sendText(chat, ann, "/card import", { replyTo: sent.message?.message_id ?? 0 });
    await tg.waitFor(() => texts(chat.id).find((t) => t.includes("Orrin Hale joined the story from their card")));
    expect(await engine.db.character.count({ where: { storyId: story.id, name: "Orrin Hale" } })).toBe(1);

    // A PNG without a card is refused, and nothing changes.
    tg.sendDocument(chat, ann, { name: "plain.png", content: plainPng() }, { caption: "/card import" });
    await tg.waitFor(() => texts(chat.id).find((t) => t.includes("That PNG carries no character card")));
    // Without an attachment the reader is told how to send one (no file paths on Telegram).
    tg.sendText(chat, ann, "/card import /etc/passwd");
    await tg.waitFor(() => texts(chat.id).find((t) => t.includes("Attach the card")));
    // The chapter may still add its own new characters: count the cards' only.
    expect(await engine.db.character.count({ where: { name: { in: ["Mara Vell", "Orrin Hale"] } } })).toBe(2);

    tg.sendText(chat, ann, "/card export Orrin");
    const doc = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => m.document?.file_name === "orrin-hale.card.json"),
    );
    const exported = JSON.parse(doc.document?.bytes.toString("utf8") ?? "{}") as {
      spec: string;
      data: { extensions: unknown; character_book: { entries: unknown[] } };
    };
    expect(exported.spec).toBe("chara_card_v3");
    expect(exported.data.extensions).toEqual(v3Card().data.extensions);
    expect(exported.data.character_book.entries).toHaveLength(1);
  });

  it("refuses a document over 5 MB from its size alone, without downloading it", async () => {
    app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), queueEnv());
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendDocument(
      chat,
      ann,
      { name: "big.json", content: Buffer.alloc(6 * 1024 * 1024, 32) },
      {
        caption: "/card import",
      },
    );
    await tg.waitFor(() => texts(chat.id).find((t) => t.includes("a character card may be at most 5 MB")));
    expect(tg.downloads).toEqual([]);
    expect(await app.engine.db.story.count()).toBe(0);
  });
});
