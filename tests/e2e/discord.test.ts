import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { registerCommands } from "../../adapters/discord/register.ts";
import { FakeDiscordServer, type FakeMessage } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import {
  type Button,
  ballotIn as ballotOf,
  buttonsOf,
  type DiscordApp,
  launchDiscordApp,
  stopDiscordApp,
} from "../helpers/discord-app.ts";
import { expectExportsHoldPicture } from "../helpers/exports.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let discord: FakeDiscordServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let running: DiscordApp[] = [];
const logs: string[] = [];
/** This test's queue (BullMQ under a fresh prefix in the PostgreSQL pass): every launch shares it. */
let queue: Record<string, string>;

async function launch(extra: Record<string, string> = {}) {
  const instance = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), { ...queue, ...extra });
  running.push(instance);
  return instance;
}

async function shutdown(instance: DiscordApp) {
  await stopDiscordApp(instance);
  running = running.filter((r) => r !== instance);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-dc-"));
  dbUrl = await databases.url(dir, "dc");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  discord = await FakeDiscordServer.start();
  logs.length = 0;
  queue = queueEnv();
});

afterEach(async () => {
  for (const r of [...running]) await shutdown(r);
  await discord.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Each reader's latest rating counted, from `rating` reaction rows oldest first. */
function tallyOf(rows: { data: unknown }[]): { up: number; down: number } {
  const latest = new Map<string, number>();
  for (const row of rows) {
    const { userId, value } = row.data as { userId: string; value: number };
    latest.set(userId, value);
  }
  const values = [...latest.values()];
  return { up: values.filter((v) => v === 1).length, down: values.filter((v) => v === -1).length };
}

const ballotIn = (channelId: string, after = "0") => ballotOf(discord, channelId, after);

function world() {
  const guild = discord.guild({ name: "Book Club" });
  const channel = discord.textChannel(guild, { name: "stories" });
  const [ann, bea, cal] = ["ann", "bea", "cal"].map((username) => {
    const u = discord.user({ username });
    discord.addMember(guild, u);
    return u;
  }) as [
    ReturnType<FakeDiscordServer["user"]>,
    ReturnType<FakeDiscordServer["user"]>,
    ReturnType<FakeDiscordServer["user"]>,
  ];
  return { guild, channel, ann, bea, cal };
}

/**
 * A vote is answered in its interaction callback by redrawing the pressed ballot (type 7,
 * UPDATE_MESSAGE) with the live count: no ephemeral reply, no edit with the bot token.
 */
async function voteAnswer(handle: ReturnType<FakeDiscordServer["clickButton"]>) {
  const answer = await handle.response();
  expect(answer.type).toBe(7);
  expect(handle.followups()).toEqual([]);
  return answer;
}
const countsOf = (components: unknown) =>
  ((components ?? []) as { components?: Button[] }[])
    .flatMap((row) => row.components ?? [])
    .filter((b) => b.custom_id?.startsWith("ink:v:"))
    .map((b) => Number(/ · (\d+)$/.exec(b.label ?? "")?.[1]));

async function startStory(w: ReturnType<typeof world>, scenario: string) {
  const modal = await discord
    .slashCommand(w.guild, w.channel, w.ann, "start", [{ name: "genre", type: 3, value: "horror" }])
    .response();
  expect(modal.type).toBe(9);
  const customId = String(modal.data?.custom_id);
  const submitted = discord.submitModal(w.guild, w.channel, w.ann, customId, { scenario });
  expect((await submitted.response()).type).toBe(5);
  const thread = await discord.waitFor(() => discord.threads(w.channel)[0]);
  const ballot = await discord.waitFor(() => ballotIn(thread.id), 15_000);
  await discord.waitFor(() => submitted.original()?.content?.includes(`<#${thread.id}>`));
  return { thread, ballot };
}

describe("Discord", { timeout: 120_000 }, () => {
  it("registers the commands in English and Chinese", async () => {
    const guild = discord.guild();
    await registerCommands({
      token: discord.token,
      applicationId: discord.applicationId,
      apiRoot: discord.apiRoot,
      devGuildId: guild.id,
    });
    const commands = discord.commands(guild) as {
      name: string;
      name_localizations?: Record<string, string>;
      options?: { name: string }[];
    }[];
    expect(commands.map((c) => c.name)).toEqual([
      "start",
      "story",
      "theme",
      "config",
      "illustrate",
      "character",
      "remix",
      "talk",
      "lore",
      "card",
      "help",
    ]);
    expect(commands.find((c) => c.name === "character")?.options?.map((o) => o.name)).toEqual(["name", "appearance"]);
    expect(commands.find((c) => c.name === "story")?.options?.map((o) => o.name)).toEqual([
      "undo",
      "rewrite",
      "branch",
      "recap",
      "note",
      "status",
      "export",
      "retry",
      "end",
      "share",
    ]);
    expect(commands[0]?.name_localizations?.["zh-CN"]).toBe("开始");
  });

  it("/start -> modal -> thread -> streamed chapter -> three members vote -> the winner's chapter follows", async () => {
    await launch();
    const w = world();
    const { thread, ballot } = await startStory(w, "a ghost detective in 1920s Shanghai");
    const prose = discord.messages(thread.id).find((m) => m.content.startsWith("Chapter 1\n"));
    expect(prose).toBeDefined();
    expect(discord.messages(thread.id).every((m) => m.content.length <= 2000)).toBe(true);

    const votes = buttonsOf(ballot).filter((b) => b.custom_id?.startsWith("ink:v:"));
    const second = votes[1]?.custom_id ?? "";
    const seen: number[][] = [];
    for (const [user, id] of [
      [w.ann, second],
      [w.bea, second],
      [w.cal, votes[0]?.custom_id ?? ""],
    ] as const) {
      seen.push(
        countsOf((await voteAnswer(discord.clickButton(w.guild, thread, user, ballot.id, id))).data?.components),
      );
    }
    // Each voter sees the live count, their own vote included, on the ballot itself.
    expect(seen).toEqual([
      [0, 1, 0],
      [0, 2, 0],
      [1, 2, 0],
    ]);
    expect(countsOf(discord.message(ballot.id)?.components)).toEqual([1, 2, 0]);
    const close = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    const refused = discord.clickButton(w.guild, thread, w.bea, ballot.id, close);
    // A refusal is the presser's alone: an ephemeral reply in the callback.
    expect(await refused.response()).toMatchObject({ type: 4, data: { flags: 64 } });
    expect(refused.original()?.content).toContain("Only the reader who started this story");
    const closing = discord.clickButton(w.guild, thread, w.ann, ballot.id, close);
    // The close redraws the ballot with the result, announced in that one edit.
    expect((await closing.response()).type).toBe(7);
    expect(discord.message(ballot.id)?.content).toMatch(/^The readers chose: “.+” \(2 of 3 votes\)\.\n/);
    await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);
    // No separate announcement: the closing edit was it.
    expect(discord.messages(thread.id).filter((m) => m.content.includes("readers chose"))).toHaveLength(1);
    // The choices are gone; only chapter 1's rating buttons stay.
    expect(buttonsOf(discord.messages(thread.id).find((m) => m.id === ballot.id)).map((b) => b.label)).toEqual([
      "👍",
      "👎",
    ]);
  });

  it("members rate chapter 1 privately; a reader's latest rating counts; the row outlives the ballot", async () => {
    const { engine } = await launch();
    const w = world();
    const { thread, ballot } = await startStory(w, "a ghost detective in 1920s Shanghai");
    const chapter = await engine.db.chapter.findFirstOrThrow({ where: { number: 1 } });
    const [up, down] = [`ink:u:${chapter.id}`, `ink:d:${chapter.id}`];
    const rows = (m: FakeMessage | undefined) => ((m?.components ?? []) as { components?: Button[] }[]).length;
    const lastRow = (m: FakeMessage | undefined) =>
      (((m?.components ?? []) as { components?: Button[] }[]).at(-1)?.components ?? []).map((b) => [
        b.label,
        b.custom_id,
      ]);
    expect(lastRow(ballot)).toEqual([
      ["👍", up],
      ["👎", down],
    ]);
    expect(rows(ballot)).toBeLessThanOrEqual(5);
    const ballotEdits = () =>
      discord.calls.filter(
        (c) => c.method === "PATCH" && c.path.endsWith(`/channels/${thread.id}/messages/${ballot.id}`),
      ).length;
    const edits = ballotEdits();

    const rate = async (user: typeof w.ann, id: string) => {
      const handle = discord.clickButton(w.guild, thread, user, ballot.id, id);
      expect((await handle.response()).data?.flags).toBe(64);
      return await discord.waitFor(() => handle.original()?.content?.startsWith("Thanks") && handle.original());
    };
    expect((await rate(w.ann, up)).content).toBe("Thanks for rating this chapter: 👍 1 · 👎 0");
    expect((await rate(w.ann, down)).content).toBe("Thanks for rating this chapter: 👍 0 · 👎 1");
    const third = await rate(w.bea, up);
    expect(third.content).toBe("Thanks for rating this chapter: 👍 1 · 👎 1");
    expect(third.flags).toBe(64);

    const ratings = () => engine.db.reaction.findMany({ where: { kind: "rating" }, orderBy: { createdAt: "asc" } });
    const stored = await ratings();
    expect(stored.map((r) => [r.chapterId, (r.data as { value: number }).value])).toEqual([
      [chapter.id, 1],
      [chapter.id, -1],
      [chapter.id, 1],
    ]);
    expect(tallyOf(stored)).toEqual({ up: 1, down: 1 });
    // No live counts: a rating never edits the message.
    expect(ballotEdits()).toBe(edits);

    // Pressed in another story's thread, the chapter's button is refused.
    const form = await discord.slashCommand(w.guild, w.channel, w.cal, "start").response();
    discord.submitModal(w.guild, w.channel, w.cal, String(form.data?.custom_id), { scenario: "a lantern festival" });
    const other = await discord.waitFor(() => discord.threads(w.channel).find((t) => t.id !== thread.id));
    const theirs = await discord.waitFor(() => ballotIn(other.id), 15_000);
    const refused = discord.clickButton(w.guild, other, w.cal, theirs.id, up);
    await discord.waitFor(() => refused.original()?.content === "This belongs to someone else's story.");
    expect(refused.original()?.flags).toBe(64);
    const forged = discord.clickButton(w.guild, thread, w.cal, ballot.id, `${up}:1`);
    await discord.waitFor(() => forged.original()?.content === "These choices are no longer open.");
    expect(await ratings()).toHaveLength(3);

    // The ballot closes: its choices go, the rating row stays and still counts.
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    // A vote does show its live count (in its callback), and keeps the rating row.
    const voted = await voteAnswer(discord.clickButton(w.guild, thread, w.bea, ballot.id, vote));
    expect(countsOf(voted.data?.components)).toEqual([1, 0, 0]);
    expect(lastRow(discord.message(ballot.id))).toEqual([
      ["👍", up],
      ["👎", down],
    ]);
    const close = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    discord.clickButton(w.guild, thread, w.ann, ballot.id, close);
    const next = await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);
    const closed = discord.messages(thread.id).find((m) => m.id === ballot.id);
    expect(closed?.content).toMatch(/^The readers chose: /);
    expect(buttonsOf(closed).map((b) => b.custom_id)).toEqual([up, down]);
    expect((await rate(w.cal, up)).content).toBe("Thanks for rating this chapter: 👍 2 · 👎 1");
    // Chapter 2's ballot rates chapter 2.
    const second = await engine.db.chapter.findFirstOrThrow({ where: { number: 2 } });
    expect(lastRow(next).map(([, id]) => id)).toEqual([`ink:u:${second.id}`, `ink:d:${second.id}`]);
  });

  it("the thread takes the story's title, cast notes reach the model, and a branch opens a linked thread", async () => {
    const { engine } = await launch();
    const w = world();
    const modal = await discord.slashCommand(w.guild, w.channel, w.ann, "start").response();
    discord.submitModal(w.guild, w.channel, w.ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper finds a message in a bottle",
      cast: "Mara is afraid of the sea",
    });
    const thread = await discord.waitFor(() => discord.threads(w.channel)[0]);
    const ballot = await discord.waitFor(() => ballotIn(thread.id), 15_000);
    const story = await engine.db.story.findFirstOrThrow();
    expect(discord.channel(thread.id)?.name).toBe(story.title);
    expect(JSON.stringify(model.requests.map((r) => r.body))).toContain("Mara is afraid of the sea");

    const close = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    discord.clickButton(w.guild, thread, w.bea, ballot.id, vote);
    await discord.waitFor(() =>
      buttonsOf(discord.messages(thread.id).find((m) => m.id === ballot.id)).some((b) => b.label?.endsWith("· 1")),
    );
    discord.clickButton(w.guild, thread, w.ann, ballot.id, close);
    await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);

    const branched = discord.slashCommand(
      w.guild,
      thread,
      w.ann,
      "story",
      [{ name: "chapter", type: 4, value: 1 }],
      "branch",
    );
    await discord.waitFor(() => branched.original()?.content === "Done.");
    const fresh = discord.threads(w.channel).find((t) => t.id !== thread.id);
    expect(fresh).toBeDefined();
    expect(discord.messages(thread.id).some((m) => m.content.includes(`<#${fresh?.id}>`))).toBe(true);
    expect(discord.messages(fresh?.id ?? "").some((m) => m.content.includes(`<#${thread.id}>`))).toBe(true);
    await discord.waitFor(() => ballotIn(fresh?.id ?? ""));
    expect((await engine.db.story.findFirstOrThrow()).conversationId).toBe(`discord:${fresh?.id}`);
  });

  it("a write-in from the Suggest modal joins the ballot and can win", async () => {
    await launch();
    const w = world();
    const { thread, ballot } = await startStory(w, "a lighthouse that moves at night");
    const suggest = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:w:"))?.custom_id ?? "";
    const modal = await discord.clickButton(w.guild, thread, w.bea, ballot.id, suggest).response();
    expect(modal.type).toBe(9);
    const submit = discord.submitModal(w.guild, thread, w.bea, String(modal.data?.custom_id), {
      text: "Follow the light into the sea",
    });
    await discord.waitFor(() => submit.original()?.content?.includes("Added to the ballot"));
    const updated = await discord.waitFor(() =>
      buttonsOf(discord.messages(thread.id).find((m) => m.id === ballot.id)).find((b) =>
        b.label?.includes("Follow the light"),
      ),
    );
    discord.clickButton(
      w.guild,
      thread,
      w.ann,
      ballot.id,
      buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "",
    );
    await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);
    expect(updated.custom_id).toMatch(/^ink:v:/);
    expect(discord.messages(thread.id).some((m) => m.content.includes("Follow the light into the sea"))).toBe(true);
  });

  it("a moderator adds a theme; a member picks it at /start and its rules reach the model", async () => {
    await launch();
    const w = world();
    const mod = discord.user({ username: "mod" });
    discord.addMember(w.guild, mod, { permissions: ["ManageGuild"] });
    const themeOptions = [
      { name: "name", type: 3, value: "Noir" },
      { name: "description", type: 3, value: "rain, smoke and bad decisions" },
      { name: "rules", type: 3, value: "no supernatural powers" },
      { name: "rating", type: 3, value: "teen" },
    ];
    const refused = discord.slashCommand(w.guild, w.channel, w.bea, "theme", themeOptions, "add");
    await discord.waitFor(() => refused.original()?.content?.includes("Only a moderator (Manage Server)"));
    const added = discord.slashCommand(w.guild, w.channel, mod, "theme", themeOptions, "add");
    await discord.waitFor(() => discord.messages(w.channel).some((m) => m.content.includes("Theme “Noir” saved.")));
    expect((await added.response()).data?.flags).toBe(64);

    const choices = await discord
      .autocomplete(w.guild, w.channel, w.bea, "start", [{ name: "theme", type: 3, value: "no", focused: true }])
      .response();
    expect(choices.type).toBe(8);
    expect(((choices.data?.choices ?? []) as { name: string }[]).map((c) => c.name)).toEqual(["Noir"]);

    const modal = await discord
      .slashCommand(w.guild, w.channel, w.bea, "start", [{ name: "theme", type: 3, value: "Noir" }])
      .response();
    expect(modal.type).toBe(9);
    discord.submitModal(w.guild, w.channel, w.bea, String(modal.data?.custom_id), {
      scenario: "a detective on a wet pier",
    });
    const thread = await discord.waitFor(() => discord.threads(w.channel)[0]);
    await discord.waitFor(() => ballotIn(thread.id), 15_000);
    expect(JSON.stringify(model.requests.map((r) => r.body))).toContain(
      "Theme rules (binding; never break them): no supernatural powers",
    );
  });

  it("an adult theme is only offered and accepted in an age-restricted channel", async () => {
    await launch();
    const w = world();
    const mod = discord.user({ username: "mod" });
    discord.addMember(w.guild, mod, { permissions: ["ManageGuild"] });
    const add = discord.slashCommand(
      w.guild,
      w.channel,
      mod,
      "theme",
      [
        { name: "name", type: 3, value: "Velvet" },
        { name: "rating", type: 3, value: "adult" },
      ],
      "add",
    );
    await add.response();
    await discord.waitFor(() => discord.messages(w.channel).some((m) => m.content.includes("Theme “Velvet” saved.")));
    const offered = await discord
      .autocomplete(w.guild, w.channel, w.bea, "start", [{ name: "theme", type: 3, value: "", focused: true }])
      .response();
    expect(offered.data?.choices).toEqual([]);
    const modal = await discord
      .slashCommand(w.guild, w.channel, w.bea, "start", [{ name: "theme", type: 3, value: "Velvet" }])
      .response();
    const refused = discord.submitModal(w.guild, w.channel, w.bea, String(modal.data?.custom_id), {
      scenario: "a masquerade",
    });
    await discord.waitFor(() => refused.original()?.content?.includes("age-restricted channel"));
    expect(refused.original()?.flags).toBe(64);
    // Refused before any thread was opened.
    expect(discord.threads(w.channel)).toEqual([]);
    const nsfw = discord.textChannel(w.guild, { name: "after-dark", nsfw: true });
    const again = await discord
      .slashCommand(w.guild, nsfw, w.bea, "start", [{ name: "theme", type: 3, value: "Velvet" }])
      .response();
    const accepted = discord.submitModal(w.guild, nsfw, w.bea, String(again.data?.custom_id), {
      scenario: "a masquerade",
    });
    await discord.waitFor(() => accepted.original()?.content?.includes("Your story begins"), 15_000);
  });

  it("/config set changes the server's vote window and rating, for moderators only", async () => {
    await launch();
    const w = world();
    const mod = discord.user({ username: "mod" });
    discord.addMember(w.guild, mod, { permissions: ["ManageGuild"] });
    const set = [
      { name: "key", type: 3, value: "votes" },
      { name: "value", type: 3, value: "120" },
    ];
    const refused = discord.slashCommand(w.guild, w.channel, w.bea, "config", set, "set");
    await discord.waitFor(() => refused.original()?.content?.includes("Only a moderator (Manage Server)"));
    discord.slashCommand(w.guild, w.channel, mod, "config", set, "set");
    await discord.waitFor(() => discord.messages(w.channel).some((m) => m.content === "Saved."));
    discord.slashCommand(w.guild, w.channel, w.bea, "config", [], "show");
    await discord.waitFor(() => discord.messages(w.channel).some((m) => m.content.includes("vote window: 120 s")));
    // Discord's own words: its settings command is /config, never Telegram's /settings.
    const shown = discord.messages(w.channel).find((m) => m.content.includes("vote window: 120 s"))?.content ?? "";
    expect(shown).toContain("/config set language zh");
    expect(shown).not.toContain("/settings");
    discord.slashCommand(
      w.guild,
      w.channel,
      mod,
      "config",
      [
        { name: "key", type: 3, value: "rating" },
        { name: "value", type: 3, value: "teen" },
      ],
      "set",
    );
    await discord.waitFor(() => discord.messages(w.channel).filter((m) => m.content === "Saved.").length === 2);
    await startStory(w, "a heist at the opera");
    expect(JSON.stringify(model.requests.map((r) => r.body))).toContain("Content rating: teen");
  });

  it("stories start only in the channels moderators allow, and the starter can end one", async () => {
    const { engine } = await launch();
    const w = world();
    const mod = discord.user({ username: "mod" });
    discord.addMember(w.guild, mod, { permissions: ["ManageGuild"] });
    const other = discord.textChannel(w.guild, { name: "off-topic" });
    discord.slashCommand(
      w.guild,
      w.channel,
      mod,
      "config",
      [
        { name: "key", type: 3, value: "channels" },
        { name: "value", type: 3, value: `<#${w.channel.id}>` },
      ],
      "set",
    );
    await discord.waitFor(() => discord.messages(w.channel).some((m) => m.content === "Saved."));
    const form = await discord.slashCommand(w.guild, other, w.ann, "start").response();
    const refused = discord.submitModal(w.guild, other, w.ann, String(form.data?.custom_id), { scenario: "x" });
    await discord.waitFor(() => refused.original()?.content?.includes("Stories are not started in this channel"));

    const { thread, ballot } = await startStory(w, "a caravan crossing salt flats");
    const byOther = discord.slashCommand(w.guild, thread, w.bea, "story", [], "end");
    await discord.waitFor(() => byOther.original()?.content?.includes("Only the reader who started this story"));
    discord.slashCommand(w.guild, thread, w.ann, "story", [], "end");
    await discord.waitFor(() => discord.messages(thread.id).some((m) => m.content.includes("The story ends here")));
    expect((await engine.db.story.findFirstOrThrow()).status).toBe("ended");
    expect((await engine.db.ballot.findFirstOrThrow()).status).toBe("closed");
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    const late = discord.clickButton(w.guild, thread, w.cal, ballot.id, vote);
    await discord.waitFor(() => late.original()?.content?.includes("This vote is closed"));
  });

  it("with a moderation model, a refused scenario or write-in never reaches the story", async () => {
    const { engine } = await launch({ MODERATION_MODEL: "fake-moderator" });
    const w = world();
    const modal = await discord.slashCommand(w.guild, w.channel, w.ann, "start").response();
    const refused = discord.submitModal(w.guild, w.channel, w.ann, String(modal.data?.custom_id), {
      scenario: "a forbidden ritual",
    });
    await discord.waitFor(() => refused.original()?.content?.includes("can't go into the story"));
    expect(await engine.db.story.count()).toBe(0);
    // The thread opened for it is removed again.
    await discord.waitFor(() => discord.threads(w.channel).length === 0);

    const { thread, ballot } = await startStory(w, "a lantern festival");
    const suggest = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:w:"))?.custom_id ?? "";
    const form = await discord.clickButton(w.guild, thread, w.bea, ballot.id, suggest).response();
    const writeIn = discord.submitModal(w.guild, thread, w.bea, String(form.data?.custom_id), {
      text: "do the forbidden thing",
    });
    await discord.waitFor(() => writeIn.original()?.content?.includes("can't go into the story"));
    expect(await engine.db.choice.count({ where: { writeIn: true } })).toBe(0);
    expect(model.requests.some((r) => r.body?.model === "fake-moderator")).toBe(true);
  });

  it("a press the core answers late is deferred within Discord's 3 s, then answered in its deferred reply", async () => {
    await launch({ MODERATION_MODEL: "fake-moderator" });
    const w = world();
    const { thread, ballot } = await startStory(w, "a lantern festival");
    // The moderation model now takes longer than a press may wait for its answer.
    const story = storyResponder();
    model.setResponder(async (req) => {
      const reply = await story(req);
      return req.body?.model === "fake-moderator" ? { ...reply, delayMs: 2500 } : reply;
    });
    const suggest = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:w:"))?.custom_id ?? "";
    const form = await discord.clickButton(w.guild, thread, w.bea, ballot.id, suggest).response();
    const writeIn = discord.submitModal(w.guild, thread, w.bea, String(form.data?.custom_id), {
      text: "Release the lanterns",
    });
    const first = await writeIn.response();
    expect(first).toMatchObject({ type: 5, data: { flags: 64 } });
    expect(first.respondedWithinMs).toBeLessThan(3000);
    await discord.waitFor(() => writeIn.original()?.content === "Added to the ballot: Release the lanterns", 10_000);
    // The ballot shows it (a trailing edit with the bot token: a modal cannot update the ballot).
    await discord.waitFor(
      () => buttonsOf(discord.message(ballot.id)).some((b) => b.label?.includes("Release the lanterns")),
      10_000,
    );
  });

  it("a daily chapter quota stops a member's second story; the chapter length reaches the prompt", async () => {
    await launch();
    const w = world();
    const mod = discord.user({ username: "mod" });
    discord.addMember(w.guild, mod, { permissions: ["ManageGuild"] });
    for (const [key, value] of [
      ["quota", "1"],
      ["length", "short"],
    ] as const) {
      discord.slashCommand(
        w.guild,
        w.channel,
        mod,
        "config",
        [
          { name: "key", type: 3, value: key },
          { name: "value", type: 3, value: value },
        ],
        "set",
      );
    }
    await discord.waitFor(() => discord.messages(w.channel).filter((m) => m.content === "Saved.").length === 2);
    await startStory(w, "a bakery that sells memories");
    expect(JSON.stringify(model.requests.map((r) => r.body))).toContain("Chapter length: about 300 words");
    const form = await discord.slashCommand(w.guild, w.channel, w.ann, "start").response();
    const second = discord.submitModal(w.guild, w.channel, w.ann, String(form.data?.custom_id), { scenario: "again" });
    await discord.waitFor(() => second.original()?.content?.includes("this server's daily limit"));
    await discord.waitFor(() => discord.threads(w.channel).length === 1);
  });

  it("/story export without the Attach Files permission says so privately", async () => {
    await launch();
    const w = world();
    discord.denyPermission(w.channel, "AttachFiles");
    const { thread } = await startStory(w, "a library that rearranges itself");
    const exported = discord.slashCommand(w.guild, thread, w.ann, "story", [], "export");
    await discord.waitFor(() => exported.original()?.content?.includes("“Attach Files” permission"));
    expect(exported.original()?.flags).toBe(64);
  });

  it("a failed chapter's Try again button answers as /story retry does, and the chapter is written", async () => {
    const { engine } = await launch();
    const w = world();
    const story = storyResponder();
    let down = true;
    model.setResponder((req) => (down && req.body?.stream === true ? { kind: "error", status: 500 } : story(req)));
    const modal = await discord
      .slashCommand(w.guild, w.channel, w.ann, "start", [{ name: "genre", type: 3, value: "horror" }])
      .response();
    discord.submitModal(w.guild, w.channel, w.ann, String(modal.data?.custom_id), { scenario: "a clockwork city" });
    const thread = await discord.waitFor(() => discord.threads(w.channel)[0]);
    const failed = await discord.waitFor(
      () => discord.messages(thread.id).find((m) => buttonsOf(m).some((b) => b.custom_id?.startsWith("ink:r:"))),
      15_000,
    );
    down = false;
    const retryId = buttonsOf(failed).find((b) => b.custom_id?.startsWith("ink:r:"))?.custom_id ?? "";
    const press = discord.clickButton(w.guild, thread, w.ann, failed.id, retryId);
    await discord.waitFor(() => discord.messages(thread.id).some((m) => m.content.includes("Trying chapter 1 again")));
    await discord.waitFor(() => ballotIn(thread.id), 15_000);
    await discord.waitFor(() => press.original()?.content === "Done.");
    expect((await engine.db.chapter.findFirstOrThrow()).status).toBe("done");
  });

  it("/help spells the commands as Discord has them", async () => {
    await launch();
    const w = world();
    discord.slashCommand(w.guild, w.channel, w.ann, "help");
    const help = await discord.waitFor(() =>
      discord.messages(w.channel).find((m) => m.content.startsWith("Commands:")),
    );
    expect(help.content).toContain("/story undo");
    expect(help.content).toContain("/config");
    expect(help.content).not.toMatch(/^ {2}\/undo/m);
  });

  it("a missing thread permission is named in an ephemeral reply and nothing is created", async () => {
    const { engine } = await launch();
    const w = world();
    discord.denyPermission(w.channel, "CreatePublicThreads");
    const modal = await discord.slashCommand(w.guild, w.channel, w.ann, "start").response();
    const submitted = discord.submitModal(w.guild, w.channel, w.ann, String(modal.data?.custom_id), {
      scenario: "a quiet village",
    });
    await discord.waitFor(() => submitted.original()?.content?.includes("Create Public Threads"));
    expect(submitted.original()?.flags).toBe(64);
    expect(await engine.db.story.count()).toBe(0);
  });

  it("a 429 on an edit is waited out and a button from before a restart still votes", async () => {
    const first = await launch();
    const w = world();
    discord.failNext("PATCH /channels/:channel/messages/:message", { retryAfter: 0.5 });
    const { thread, ballot } = await startStory(w, "a clockwork city");
    expect(discord.calls.some((c) => c.status === 429)).toBe(true);
    await shutdown(first);

    await launch();
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    const handle = discord.clickButton(w.guild, thread, w.bea, ballot.id, vote);
    expect(countsOf((await voteAnswer(handle)).data?.components)).toEqual([1, 0, 0]);
    const up = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:u:"))?.custom_id ?? "";
    const rated = discord.clickButton(w.guild, thread, w.bea, ballot.id, up);
    await discord.waitFor(() => rated.original()?.content === "Thanks for rating this chapter: 👍 1 · 👎 0");
  });
});

describe("Discord, illustrations", { timeout: 60_000 }, () => {
  const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const illustrated = () =>
    launch({ IMAGE_MODEL: "fake-image", IMAGE_DIR: join(dir, "images"), ILLUSTRATE_COOLDOWN_SECONDS: "0" });
  const pictures = (channelId: string) =>
    discord.messages(channelId).filter((m) => m.attachments.some((a) => a.filename.endsWith(".png")));
  const png = (m: FakeMessage | undefined) => m?.attachments.find((a) => a.filename.endsWith(".png"))?.bytes;
  const newer = (a: FakeMessage, b: FakeMessage) => BigInt(a.id) > BigInt(b.id);
  // /images/edits is multipart: form encoding sends a field's line breaks as CRLF.
  const prompts = () => model.imageRequests().map((r) => String(r.body?.prompt ?? "").replace(/\r\n/g, "\n"));
  const mara = (p: string) => p.split("\n").find((l) => l.startsWith("- Mara Quill: "));

  it("chapter 1's picture follows its prose as a reply, without holding back the ballot", async () => {
    await illustrated();
    // Pictures are held until released: the chapter must not wait for them.
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    model.setImageResponder(async () => {
      await held;
      return { kind: "image" };
    });
    const w = world();
    const { thread, ballot } = await startStory(w, "a ghost detective in 1920s Shanghai");
    // The ballot is out while the picture is still being drawn.
    await discord.waitFor(() => model.imageRequests().length === 1);
    expect(pictures(thread.id)).toEqual([]);
    release();
    const picture = await discord.waitFor(() => pictures(thread.id)[0]);
    const prose = discord.messages(thread.id).filter((m) => m.content.startsWith("Chapter 1\n"));
    expect(prose).toHaveLength(1);
    const passage = prose[0] as FakeMessage;
    expect(newer(ballot, passage)).toBe(true);
    expect(newer(picture, ballot)).toBe(true);
    expect(picture.reference?.messageId).toBe(passage.id);
    expect(picture.content).toMatch(/^Chapter 1: /);
    expect([...(png(picture)?.subarray(0, 8) ?? [])]).toEqual(PNG);
    expect(picture.attachments).toHaveLength(1);
    expect(model.imageRequests()).toHaveLength(1);
  });

  it("/illustrate draws the member's scene; /character changes the look from the next picture on", async () => {
    await illustrated();
    const w = world();
    const { thread, ballot } = await startStory(w, "a harbour mystery");
    await discord.waitFor(() => pictures(thread.id).length === 1);
    const asked = discord.slashCommand(w.guild, thread, w.bea, "illustrate", [
      { name: "what", type: 3, value: "Mara on the pier at dawn" },
    ]);
    expect((await asked.response()).data?.flags).toBe(64);
    const second = await discord.waitFor(() => pictures(thread.id)[1]);
    expect([...(png(second)?.subarray(0, 8) ?? [])]).toEqual(PNG);
    expect(prompts().at(-1)).toContain("Mara on the pier at dawn");

    const changed = discord.slashCommand(w.guild, thread, w.ann, "character", [
      { name: "name", type: 3, value: "Mara" },
      { name: "appearance", type: 3, value: "long red hair, green cloak" },
    ]);
    await discord.waitFor(() =>
      discord
        .messages(thread.id)
        .some((m) => m.content.includes("From now on Mara Quill is drawn as: long red hair, green cloak")),
    );
    await discord.waitFor(() => changed.original()?.content === "Done.");
    const before = prompts();
    expect(before).toHaveLength(2);
    // Every picture of her so far described her the same way.
    expect(before.map(mara)).toEqual([
      "- Mara Quill: short black hair, grey coat, silver ring",
      "- Mara Quill: short black hair, grey coat, silver ring",
    ]);

    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    const close = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    await voteAnswer(discord.clickButton(w.guild, thread, w.bea, ballot.id, vote));
    discord.clickButton(w.guild, thread, w.ann, ballot.id, close);
    await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);
    const third = await discord.waitFor(() => pictures(thread.id)[2]);
    expect(third.content).toMatch(/^Chapter 2: /);
    expect(prompts()).toHaveLength(3);
    expect(mara(prompts()[2] ?? "")).toBe("- Mara Quill: long red hair, green cloak");
    // Her old portrait shows the old look: the new one is drawn from the prompt alone.
    expect(model.imageRequests()[2]?.path).toBe("/images/generations");
  });

  it("a failing image endpoint leaves the story going, with a short notice and no picture", async () => {
    await illustrated();
    model.setImageResponder(() => ({ kind: "error", status: 500 }));
    const w = world();
    const { thread } = await startStory(w, "a ferry lost in fog");
    const notice = await discord.waitFor(() =>
      discord.messages(thread.id).find((m) => m.content.startsWith("Illustration unavailable: ")),
    );
    expect(notice.content).toContain("The story goes on without it.");
    expect(discord.messages(thread.id).some((m) => m.content.startsWith("Chapter 1\n"))).toBe(true);
    expect(model.imageRequests().length).toBeGreaterThan(0);
    expect(discord.messages(thread.id).filter((m) => m.attachments.length > 0)).toEqual([]);
  });

  it("/story export sends a Markdown zip and an EPUB holding the posted picture", async () => {
    await illustrated();
    const w = world();
    const { thread } = await startStory(w, "a library that rearranges itself");
    const picture = await discord.waitFor(() => pictures(thread.id)[0]);
    const exported = discord.slashCommand(w.guild, thread, w.ann, "story", [], "export");
    const files = await discord.waitFor(() => {
      const found = discord
        .messages(thread.id)
        .flatMap((m) => m.attachments)
        .filter((a) => !a.filename.endsWith(".png"));
      return found.length === 2 && found;
    });
    await discord.waitFor(() => exported.original()?.content === "Done.");
    const [zip, epub] = files;
    expect(zip?.filename).toMatch(/\.zip$/);
    expect(epub?.filename).toMatch(/\.epub$/);
    expectExportsHoldPicture(
      new Uint8Array(zip?.bytes ?? []),
      new Uint8Array(epub?.bytes ?? []),
      png(picture) ?? Buffer.alloc(0),
    );
  });
});
