import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
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
  dir = mkdtempSync(join(tmpdir(), "inkloom-tg-note-"));
  dbUrl = await databases.url(dir, "tg");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ privacyMode: true });
  logs.length = 0;
  app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), queueEnv());
});

afterEach(async () => {
  if (app !== undefined) await stopTelegramApp(app);
  app = undefined;
  await tg.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

type Msg = ReturnType<FakeTelegramServer["messages"]>[number];
const buttons = (m: Msg | undefined) =>
  (
    m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
  )?.inline_keyboard?.flat() ?? [];
const offer = (chatId: number, after = 0) =>
  tg
    .messages(chatId)
    .filter((m) => m.message_id > after && !m.deleted)
    .findLast((m) => buttons(m).some((b) => b.callback_data?.startsWith("p|")));
const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text ?? "");

describe("Telegram: /note and /status", { timeout: 90_000 }, () => {
  it("a note shapes the next chapter; /status draws bars and sends the chart as a photo", async () => {
    expect(tg.commands().map((c) => c.command)).toEqual(expect.arrayContaining(["note", "status"]));
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start a lighthouse keeper finds letters from the future");
    const first = await tg.waitFor(() => offer(chat.id));
    tg.sendText(chat, ann, "/note more dialogue, slower pace");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Author's note set: more dialogue, slower pace")));
    await tg.clickButton(chat, ann, first.message_id, buttons(first)[0]?.callback_data ?? "");
    await tg.waitFor(() => offer(chat.id, first.message_id));
    expect(texts(chat.id).some((t) => t.includes('Following the author\'s note: "more dialogue, slower pace"'))).toBe(
      true,
    );

    tg.sendText(chat, ann, "/status");
    const photo = await tg.waitFor(() => tg.messages(chat.id).find((m) => m.photo !== undefined));
    const shown = texts(chat.id).find((t) => t.includes("Story state"));
    expect(shown).toContain("Elias Wren  ░░░░░░░░░░│███░░░░░░░ +30");
    expect(shown).toContain("Arc  ████████░░░░░░░░░░░░ 40%");
    expect([...(photo.photo?.bytes.subarray(0, 4) ?? [])]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(photo.caption).toContain("Elias Wren, The Porter");
  });
});
