/**
 * /share and /remix end to end: the terminal (a second session remixes what the first
 * shared), Telegram through the fake Bot API (the deep link's /start payload), and Discord
 * through the fake gateway and REST API (the "Make my version" button) live in
 * tests/e2e/share-remix-discord.test.ts.
 */
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
import { ConsoleProcess, consoleEnv } from "./console-process.ts";

let model: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const logs: string[] = [];
const consoles: ConsoleProcess[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-share-e2e-"));
  dbUrl = await databases.url(dir, "share");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  logs.length = 0;
});

afterEach(async () => {
  for (const p of consoles.splice(0)) p.kill();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

const codeIn = (text: string) => /code: ([a-z0-9]{16})/.exec(text)?.[1] ?? "";

describe("terminal", { timeout: 120_000 }, () => {
  it("/share, then /remix in a fresh session: the reader's own story, credited, from the setup or from a chapter", async () => {
    const env = consoleEnv(model.baseUrl, dir, dbUrl);
    const first = new ConsoleProcess(env);
    consoles.push(first);
    await first.ready();
    await first.say("/start a lighthouse keeper hears a bell under the sea", 60_000);
    await first.say("1", 60_000);
    const shared = await first.say("/share");
    const code = codeIn(shared);
    expect(code).toHaveLength(16);
    expect(shared).toContain(`/remix ${code}`);
    expect(await first.quit()).toBe(0);

    const second = new ConsoleProcess(env);
    consoles.push(second);
    await second.ready();
    const fromSetup = await second.say(`/remix ${code}`, 60_000);
    expect(fromSetup).toMatch(/A remix of “[^”]+”: your own story/);
    expect(fromSetup).toContain("Chapter 1");
    const fromChapter = await second.say(`/remix ${code} 2`, 60_000);
    expect(fromChapter).toMatch(/continuing after its chapter 2/);
    // The copied chapter 2 is shown with its choices; nothing new was written.
    expect(fromChapter).toContain("Chapter 2");
    const listed = await second.say("/stories");
    expect(listed).toMatch(/Remix of “[^”]+” \(from chapter 2\)/);
    expect(listed).toMatch(/Remix of “[^”]+”$/m);
    const wrong = await second.say(`/remix ${code} 9`);
    expect(wrong).toContain("chapters 1 to 2; 9 is not one of them");
    const unknown = await second.say("/remix abcdefghijkmnpqr");
    expect(unknown).toContain("No shared story has that code");
    expect(await second.quit()).toBe(0);

    const again = new ConsoleProcess(env);
    consoles.push(again);
    await again.ready();
    const original = (await again.say("/stories")).split("\n").find((l) => /^\d+\./.test(l) && !l.includes("Remix of"));
    await again.say(`/stories ${original?.split(".")[0]}`);
    expect(await again.say("/share off")).toContain("Sharing stopped");
    expect(await again.say(`/remix ${code}`)).toContain("was revoked by the story's starter");
  });
});

describe("Telegram", { timeout: 120_000 }, () => {
  let tg: FakeTelegramServer;
  let app: TelegramApp | undefined;

  beforeEach(async () => {
    tg = await FakeTelegramServer.start({ privacyMode: true });
  });
  afterEach(async () => {
    if (app !== undefined) await stopTelegramApp(app);
    app = undefined;
    await tg.close();
  });

  const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text ?? "");

  it("/share gives a code and a deep link; following it (/start remix-<code>) starts the reader's version", async () => {
    app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), { ...queueEnv(dir) });
    const { engine } = app;
    const ann = tg.user({ first_name: "Ann" });
    const annChat = tg.chat("private", { user: ann });
    tg.sendText(annChat, ann, "/start a clockwork city under the sea");
    await tg.waitFor(() => texts(annChat.id).some((t) => t.startsWith("Chapter 1")));
    tg.sendText(annChat, ann, "/share");
    const link = await tg.waitFor(() => texts(annChat.id).find((t) => t.includes("?start=remix-")));
    const code = /start=remix-([a-z0-9]{16})/.exec(link)?.[1] ?? "";
    expect(link).toContain(`https://t.me/inkloom_test_bot?start=remix-${code}`);
    expect(texts(annChat.id).some((t) => t.includes(`code: ${code}`))).toBe(true);

    // Telegram sends the deep link's payload as /start <payload> in the reader's private chat.
    const bob = tg.user({ first_name: "Bob" });
    const bobChat = tg.chat("private", { user: bob });
    tg.sendText(bobChat, bob, `/start remix-${code}`);
    await tg.waitFor(() => texts(bobChat.id).some((t) => t.startsWith("Chapter 1")));
    expect(texts(bobChat.id).some((t) => /A remix of “[^”]+”/.test(t))).toBe(true);
    const theirs = await engine.db.story.findFirstOrThrow({
      where: { conversationId: `telegram:${bobChat.id}` },
      include: { owner: true },
    });
    expect(theirs.remixOfId).not.toBeNull();
    expect(theirs.owner.externalId).toBe(String(bob.id));

    // Only the starter may stop sharing; once stopped, the link answers that it was revoked.
    tg.sendText(annChat, ann, "/share off");
    await tg.waitFor(() => texts(annChat.id).some((t) => t.includes("Sharing stopped")));
    tg.sendText(bobChat, bob, `/start remix-${code}`);
    await tg.waitFor(() => texts(bobChat.id).some((t) => t.includes("was revoked by the story's starter")));
    expect(await engine.db.story.count()).toBe(2);
  });
});
