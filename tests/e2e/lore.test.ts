/**
 * Lore (world info) end to end: the terminal as a person types, Telegram and Discord through
 * their fakes. An entry added with /lore reaches the chapter's prompt when its key comes up,
 * and stays out when it does not.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeRequest } from "../fakes/fake-openai-types.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ballotIn, buttonsOf, type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";
import { queueEnv } from "../helpers/topology.ts";
import { ConsoleProcess, consoleEnv } from "./console-process.ts";

let model: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-lore-e2e-"));
  dbUrl = await databases.url(dir, "lore");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  logs.length = 0;
});

afterEach(async () => {
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

const ENTRY = "A secret society that trades in ghosts; its members wear moth pins.";

const isProse = (req: FakeRequest) =>
  req.path === "/chat/completions" && req.body?.stream === true && !Array.isArray(req.body?.tools);

/** The prose requests so far, each as the text of its messages. */
function prosePrompts(): string[] {
  return model.requests.filter(isProse).map((r) => JSON.stringify(r.body?.messages ?? []));
}

describe("lore in the terminal", { timeout: 90_000 }, () => {
  let p: ConsoleProcess | undefined;
  afterEach(() => p?.kill());

  it("lore add, then a chapter whose prompt carries the entry when its key comes up and leaves it out when not", async () => {
    p = new ConsoleProcess(consoleEnv(model.baseUrl, dir, dbUrl));
    await p.ready();
    await p.say("/start");
    await p.say("");
    expect(await p.say("a lighthouse keeper hears a bell under the sea")).toContain("Chapter 1");
    expect(await p.say(`/lore add Red Lantern, lanterns: ${ENTRY}`)).toMatch(
      /Lore entry \d+ added \[Red Lantern, lanterns\]/,
    );
    expect(await p.say("/lore")).toContain(`[Red Lantern, lanterns] ${ENTRY}`);

    const quiet = await p.say("I walk along the shore at dawn");
    expect(quiet).toContain("Chapter 2");
    expect(prosePrompts().at(-1)).not.toContain("trades in ghosts");

    const keyed = await p.say("I follow the red lantern into the fog");
    expect(keyed).toContain("Chapter 3");
    expect(prosePrompts().at(-1)).toContain(ENTRY);

    expect(await p.say("/lore add /(a+)+$/: slow")).toContain("can take forever to match");
    expect(await p.quit()).toBe(0);
  });
});

describe("lore on Telegram", { timeout: 120_000 }, () => {
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
  const offers = (chatId: number) =>
    tg
      .messages(chatId)
      .filter((m) =>
        ((m.reply_markup as { inline_keyboard?: { callback_data?: string }[][] } | undefined)?.inline_keyboard ?? [])
          .flat()
          .some((b) => /^[pv]\|/.test(b.callback_data ?? "")),
      ).length;

  it("a private chat adds lore and its next chapter's prompt carries it; in a group only admins and the starter change it", async () => {
    app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), queueEnv());
    expect(tg.commands().map((c) => c.command)).toContain("lore");
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start a lighthouse keeper hears a bell under the sea");
    await tg.waitFor(() => offers(chat.id) >= 1, 20_000);
    tg.sendText(chat, ann, `/lore add Red Lantern: ${ENTRY}`);
    await tg.waitFor(() => texts(chat.id).some((t) => /Lore entry \d+ added \[Red Lantern\]/.test(t)));
    tg.sendText(chat, ann, "I walk along the shore at dawn");
    await tg.waitFor(() => offers(chat.id) >= 2, 20_000);
    expect(prosePrompts().at(-1)).not.toContain("trades in ghosts");
    tg.sendText(chat, ann, "I follow the red lantern into the fog");
    await tg.waitFor(() => offers(chat.id) >= 3, 20_000);
    expect(prosePrompts().at(-1)).toContain(ENTRY);

    // A group: a member who did not start the story is refused, an admin may.
    const [bo, cy, admin] = ["Bo", "Cy", "Di"].map((first_name) => tg.user({ first_name })) as [
      ReturnType<FakeTelegramServer["user"]>,
      ReturnType<FakeTelegramServer["user"]>,
      ReturnType<FakeTelegramServer["user"]>,
    ];
    const group = tg.chat("group", { title: "Salon" });
    tg.setAdmins(group.id, [admin.id]);
    tg.sendText(group, bo, "/start a heist at the opera");
    await tg.waitFor(() => offers(group.id) >= 1, 20_000);
    tg.sendText(group, cy, "/lore add moth: A moth pin marks a debt.");
    await tg.waitFor(() =>
      texts(group.id).some((t) =>
        t.includes("Only the reader who started this story or a moderator can do that here."),
      ),
    );
    tg.sendText(group, admin, "/lore add moth: A moth pin marks a debt.");
    await tg.waitFor(() => texts(group.id).some((t) => /Lore entry \d+ added \[moth\]/.test(t)));
    tg.sendText(group, cy, "/lore");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("[moth] A moth pin marks a debt.")));
  });
});

describe("lore on Discord", { timeout: 120_000 }, () => {
  let discord: FakeDiscordServer;
  let app: DiscordApp | undefined;
  beforeEach(async () => {
    discord = await FakeDiscordServer.start();
  });
  afterEach(async () => {
    if (app !== undefined) await stopDiscordApp(app);
    app = undefined;
    await discord.close();
  });

  it("/lore in a story thread: a member is refused, the starter adds, and the voted chapter's prompt carries it", async () => {
    app = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), queueEnv());
    const guild = discord.guild({ name: "Book Club" });
    const channel = discord.textChannel(guild, { name: "stories" });
    const [ann, bea] = ["ann", "bea"].map((username) => {
      const u = discord.user({ username });
      discord.addMember(guild, u);
      return u;
    }) as [ReturnType<FakeDiscordServer["user"]>, ReturnType<FakeDiscordServer["user"]>];
    const modal = await discord.slashCommand(guild, channel, ann, "start").response();
    discord.submitModal(guild, channel, ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper hears a bell under the sea",
    });
    const thread = await discord.waitFor(() => discord.threads(channel)[0]);
    const ballot = await discord.waitFor(() => ballotIn(discord, thread.id), 15_000);

    const what = (value: string) => [{ name: "what", type: 3, value }];
    const refused = discord.slashCommand(guild, thread, bea, "lore", what("add moth: A moth pin."));
    await discord.waitFor(() => refused.original()?.content?.includes("Only the reader who started this story"));
    discord.slashCommand(guild, thread, ann, "lore", what(`add Red Lantern: ${ENTRY}`));
    await discord.waitFor(() =>
      discord.messages(thread.id).some((m) => /Lore entry \d+ added \[Red Lantern\]/.test(m.content)),
    );
    discord.slashCommand(guild, thread, bea, "lore", []);
    await discord.waitFor(() => discord.messages(thread.id).some((m) => m.content.includes(`[Red Lantern] ${ENTRY}`)));

    // The vote closes on a choice that does not name the key: the entry stays out.
    const close = (m: typeof ballot) => buttonsOf(m).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    const before = prosePrompts().length;
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    discord.clickButton(guild, thread, bea, ballot.id, vote);
    await discord.waitFor(() =>
      buttonsOf(discord.messages(thread.id).find((m) => m.id === ballot.id)).some((b) => b.label?.endsWith("· 1")),
    );
    discord.clickButton(guild, thread, ann, ballot.id, close(ballot));
    const second = await discord.waitFor(() => ballotIn(discord, thread.id, ballot.id), 20_000);
    expect(prosePrompts().length).toBeGreaterThan(before);
    expect(prosePrompts().at(-1)).not.toContain("trades in ghosts");

    // A write-in naming the key wins the next vote: the entry goes in.
    const suggest = buttonsOf(second).find((b) => b.custom_id?.startsWith("ink:w:"))?.custom_id ?? "";
    const form = await discord.clickButton(guild, thread, bea, second.id, suggest).response();
    const submit = discord.submitModal(guild, thread, bea, String(form.data?.custom_id), {
      text: "Follow the red lantern into the fog",
    });
    await discord.waitFor(() => submit.original()?.content?.includes("Added to the ballot"));
    const writeIn = await discord.waitFor(() =>
      buttonsOf(discord.messages(thread.id).find((m) => m.id === second.id)).find((b) =>
        b.label?.includes("red lantern"),
      ),
    );
    discord.clickButton(guild, thread, bea, second.id, writeIn.custom_id ?? "");
    await discord.waitFor(() =>
      buttonsOf(discord.messages(thread.id).find((m) => m.id === second.id)).some(
        (b) => b.label?.includes("red lantern") && b.label.endsWith("· 1"),
      ),
    );
    discord.clickButton(guild, thread, ann, second.id, close(second));
    await discord.waitFor(() => ballotIn(discord, thread.id, second.id), 20_000);
    expect(prosePrompts().at(-1)).toContain(ENTRY);
  });
});
