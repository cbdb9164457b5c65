/**
 * /talk on Telegram and Discord, end to end through the fakes (the bot as `npm start`
 * runs it; in the PostgreSQL pass a front with two workers): the reply streams into the
 * chat within the platform's limits, 👍/👎 under it are recorded as the talk run's
 * outcome, and the reader's next action cites the exchange.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TALK_MARKER } from "../../src/agent/prompts.ts";
import type { Engine } from "../../src/app/wiring.ts";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ballotIn, buttonsOf, type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const logs: string[] = [];
let queue: Record<string, string>;
const stops: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-talk-chat-"));
  dbUrl = await databases.url(dir, "talk");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  logs.length = 0;
  queue = queueEnv();
});

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The writing requests of the chapter that followed `action`: do they cite the exchange? */
function citedIn(action: string): boolean[] {
  return model
    .chatRequests()
    .map((r) => JSON.stringify(r.body))
    .filter((b) => b.includes(`Reader's action: ${action}`) && b.includes("Step: "))
    .map((b) => b.includes(`${TALK_MARKER} (not canon)`));
}

async function talkRuns(engine: Engine) {
  return engine.db.agentRun.findMany({ where: { task: "talk" }, orderBy: { createdAt: "asc" } });
}

describe("/talk on Telegram", { timeout: 120_000 }, () => {
  it("streams the reply, records 👍/👎 under it, and the next action cites it", async () => {
    const tg = await FakeTelegramServer.start({ privacyMode: true });
    stops.push(() => tg.close());
    const app: TelegramApp = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), {
      ...queue,
      TALK_COOLDOWN_SECONDS: "0",
    });
    stops.push(() => stopTelegramApp(app));
    const { engine } = app;
    expect(tg.commands().map((c) => c.command)).toContain("talk");
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    const texts = () => tg.messages(chat.id).map((m) => m.text ?? "");
    type Msg = ReturnType<FakeTelegramServer["messages"]>[number];
    const buttons = (m: Msg | undefined) =>
      (
        m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
      )?.inline_keyboard?.flat() ?? [];

    tg.sendText(chat, ann, "/start a lighthouse keeper hears a bell under the sea");
    await tg.waitFor(() => tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data?.startsWith("p|"))));

    tg.sendText(chat, ann, "/talk Elias: who rings the bell at night?");
    const prompt = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data?.startsWith("tu|"))),
    );
    const reply = texts().find((x) => x.startsWith("Elias Wren: "));
    expect(reply).toContain('You ask "who rings the bell at night?"');
    expect(tg.messages(chat.id).every((m) => (m.text ?? "").length <= 4096)).toBe(true);
    expect(prompt.text).toContain("How was Elias Wren's reply?");
    const [run] = await talkRuns(engine);
    expect(buttons(prompt).map((b) => [b.text, b.callback_data])).toEqual([
      ["👍", `tu|${run?.id}`],
      ["👎", `td|${run?.id}`],
    ]);
    expect(await engine.db.chapter.count()).toBe(1);

    const rated = await tg.clickButton(chat, ann, prompt.message_id, `tu|${run?.id}`);
    expect(rated.text).toBe("Thanks! This reply: 👍 1 · 👎 0");
    const stored = await engine.db.reaction.findMany({ where: { kind: "talk-rating" } });
    expect(stored.map((r) => r.data)).toEqual([expect.objectContaining({ runId: run?.id, value: 1 })]);

    tg.sendText(chat, ann, "/talk Nobody: hello");
    await tg.waitFor(() => texts().some((x) => x.includes("There is no character “Nobody” in this story.")));

    tg.sendText(chat, ann, "I climb the tower as Elias hinted");
    await tg.waitFor(() => texts().some((x) => x.startsWith("Chapter 2")));
    const cited = citedIn("I climb the tower as Elias hinted");
    expect(cited.length).toBeGreaterThan(0);
    expect(cited).toContain(true);
  });
});

describe("/talk on Discord", { timeout: 120_000 }, () => {
  it("streams the reply in the thread as a slash command, and records 👍/👎 under it", async () => {
    const discord = await FakeDiscordServer.start();
    stops.push(() => discord.close());
    const app: DiscordApp = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), {
      ...queue,
      TALK_COOLDOWN_SECONDS: "0",
    });
    stops.push(() => stopDiscordApp(app));
    const { engine } = app;
    const guild = discord.guild({ name: "Book Club" });
    const channel = discord.textChannel(guild, { name: "stories" });
    const ann = discord.user({ username: "ann" });
    discord.addMember(guild, ann);

    const modal = await discord
      .slashCommand(guild, channel, ann, "start", [{ name: "genre", type: 3, value: "horror" }])
      .response();
    discord.submitModal(guild, channel, ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper hears a bell under the sea",
    });
    const thread = await discord.waitFor(() => discord.threads(channel)[0]);
    await discord.waitFor(() => ballotIn(discord, thread.id), 15_000);

    const asked = discord.slashCommand(guild, thread, ann, "talk", [
      { name: "name", type: 3, value: "Mara" },
      { name: "message", type: 3, value: "are you afraid of the sea?" },
    ]);
    expect((await asked.response()).data?.flags).toBe(64);
    const prompt = await discord.waitFor(() =>
      discord.messages(thread).find((m) => buttonsOf(m).some((b) => b.custom_id?.startsWith("ink:tu:"))),
    );
    const reply = discord.messages(thread).find((m) => m.content.startsWith("Mara Quill: "));
    expect(reply?.content).toContain('You ask "are you afraid of the sea?"');
    expect(discord.messages(thread).every((m) => m.content.length <= 2000)).toBe(true);
    const [run] = await talkRuns(engine);
    expect(buttonsOf(prompt).map((b) => [b.label, b.custom_id])).toEqual([
      ["👍", `ink:tu:${run?.id}`],
      ["👎", `ink:td:${run?.id}`],
    ]);

    const press = discord.clickButton(guild, thread, ann, prompt.id, `ink:td:${run?.id}`);
    expect((await press.response()).data?.flags).toBe(64);
    await discord.waitFor(() => press.original()?.content === "Thanks! This reply: 👍 0 · 👎 1");
    const stored = await engine.db.reaction.findMany({ where: { kind: "talk-rating" } });
    expect(stored.map((r) => r.data)).toEqual([expect.objectContaining({ runId: run?.id, value: -1 })]);
    expect(await engine.db.chapter.count()).toBe(1);
  });
});
