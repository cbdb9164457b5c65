import type { Client, TextChannel, ThreadChannel } from "discord.js";
import { afterEach, describe, expect, it } from "vitest";
import { decodeCustomId, SUGGESTION_INPUT_ID } from "../../adapters/discord/custom-id.ts";
import { DISCORD_LIMITS, type DiscordSurface, suggestionModal } from "../../adapters/discord/discord-surface.ts";
import { discordErrorKind } from "../../adapters/discord/errors.ts";
import { discordSurfaceFor } from "../../adapters/discord/surfaces.ts";
import { describeError } from "../../commands/dispatch.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { DeliveryError } from "../../src/render/delivery-error.ts";
import { StreamRenderer } from "../../src/render/stream-renderer.ts";
import type { ChoiceOffer } from "../../src/render/surface.ts";
import { LIMITS } from "../../src/story/limits.ts";
import { type FakeChannel, FakeDiscordServer, type FakeMessage } from "../fakes/fake-discord-server.ts";
import { loggedInClient, restFor, storyThread, textChannelOf } from "../helpers/discord-client.ts";

let server: FakeDiscordServer | undefined;
let client: Client | undefined;
/** What the surfaces logged (the delivery errors they mapped). */
let logs: string[] = [];

afterEach(async () => {
  if (client) await client.destroy();
  client = undefined;
  await server?.close();
  server = undefined;
  logs = [];
});

/** A surface as a chapter worker builds one: from the conversation key and a bare REST client. */
function surfaceIn(channel: { id: string }, locale: Locale = "en"): DiscordSurface {
  if (server === undefined) throw new Error("no fake Discord");
  return discordSurfaceFor(restFor(server), `discord:${channel.id}`, locale, (line) => logs.push(line));
}

interface World {
  fake: FakeDiscordServer;
  bot: Client;
  channel: FakeChannel;
  text: TextChannel;
  thread: ThreadChannel;
}

/** One guild, one text channel with a public thread in it, and a logged-in discord.js client. */
async function world(): Promise<World> {
  const fake = await FakeDiscordServer.start();
  server = fake;
  const guild = fake.guild({ name: "Ink Club" });
  const channel = fake.textChannel(guild, { name: "stories" });
  const bot = await loggedInClient(fake);
  client = bot;
  const text = textChannelOf(bot, channel);
  const thread = await storyThread(bot, channel);
  return { fake, bot, channel, text, thread };
}

interface RawButton {
  type: number;
  style: number;
  label: string;
  custom_id: string;
}

function rows(message: FakeMessage | undefined): RawButton[][] {
  return ((message?.components ?? []) as { components: RawButton[] }[]).map((row) => row.components);
}

const storyId = "cmwwuk7kf00009n7de680sdgd";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A paragraph of about `length` characters. */
function paragraph(n: number, length: number): string {
  const words = `Paragraph ${n}: the lamp turned and the sea kept its counsel.`;
  let text = words;
  while (text.length < length) text += ` ${words}`;
  return `${text.slice(0, length - 1).trimEnd()}.`;
}

describe("DiscordSurface against the fake Discord with the real discord.js client", () => {
  it("streams a 5000-character chapter in messages <= 2000 chars, cut at paragraphs, edits >= 1.2 s apart", async () => {
    const { fake, thread } = await world();
    const paragraphs = Array.from({ length: 20 }, (_, i) => paragraph(i + 1, 252));
    const chapter = paragraphs.join("\n\n");
    expect(chapter.length).toBeGreaterThanOrEqual(4900);
    const renderer = new StreamRenderer(surfaceIn(thread));
    // The first paragraphs trickle in (so the first message is edited twice), then the rest at once.
    for (let i = 0; i < 7; i++) {
      renderer.push(i === 0 ? (paragraphs[0] ?? "") : `\n\n${paragraphs[i]}`);
      await sleep(400);
    }
    renderer.push(`\n\n${paragraphs.slice(7).join("\n\n")}`);
    const rendered = await renderer.finish();

    const stored = fake.messages(thread.id);
    expect(stored.length).toBeGreaterThanOrEqual(3);
    expect(stored.map((m) => m.id)).toEqual(rendered.map((m) => m.ref.id));
    for (const m of stored) {
      expect(m.content.length).toBeLessThanOrEqual(DISCORD_LIMITS.maxMessageLength);
      expect(m.content.startsWith("Paragraph")).toBe(true);
    }
    expect(stored.map((m) => m.content).join("\n\n")).toBe(chapter);

    const first = stored[0];
    if (!first) throw new Error("no first message");
    const edits = fake.calls.filter((c) => c.method === "PATCH" && c.path.endsWith(`/messages/${first.id}`));
    const created = fake.calls.find((c) => c.method === "POST" && c.route === "/channels/:channel/messages");
    expect(edits.length).toBeGreaterThanOrEqual(2);
    const times = [created?.at ?? 0, ...edits.map((c) => c.at)];
    for (let i = 1; i < Math.min(times.length, 3); i++) {
      // Server receive times (a few ms of jitter); the renderer spaces the starts of its calls by 1200 ms.
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(DISCORD_LIMITS.minEditIntervalMs - 50);
    }
    // Story text never pings: every post sent an empty allowed_mentions.parse.
    const posts = fake.calls.filter((c) => c.method === "POST" && c.route === "/channels/:channel/messages");
    for (const p of posts) expect((p.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [] });
  });

  it("offers 8 picks as buttons whose custom ids decode back, within Discord's limits", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    const long = `Climb ${"the endless spiral stair ".repeat(6)}to the lamp room`;
    const choices = ["Go north", long, "Wait", "Call out", "Hide", "Run", "Pray", "Sleep"];
    const offer: ChoiceOffer = { storyId, revision: 4, choices, allowWriteIn: true, mode: "pick" };
    const ref = await surface.offerChoices(offer);
    const message = fake.message(ref.id);
    const buttons = rows(message);
    expect(buttons.length).toBeLessThanOrEqual(5);
    for (const row of buttons) expect(row.length).toBeLessThanOrEqual(5);
    const all = buttons.flat();
    const picks = all.map((b) => decodeCustomId(b.custom_id)).filter((a) => a?.kind === "pick");
    expect(picks).toEqual(choices.map((_, i) => ({ kind: "pick", storyId, revision: 4, position: i + 1 })));
    expect(all[0]?.label).toBe("1. Go north");
    expect(all[1]?.label.length).toBe(80);
    expect(all[1]?.label.startsWith("2. Climb")).toBe(true);
    expect(all[1]?.label.endsWith("…")).toBe(true);
    // The pick's own action opens a modal; the full long choice is in the text.
    expect(decodeCustomId(buttons.at(-1)?.[0]?.custom_id)).toEqual({ kind: "suggest", storyId, revision: 4 });
    expect(buttons.at(-1)?.[0]?.label).toBe("Write your own");
    expect(message?.content).toContain(`2. ${long}`);
  });

  it("a vote has counts and a suggest/close row; updateChoices shows new counts; closeChoices removes the buttons", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    const offer: ChoiceOffer = {
      storyId,
      revision: 2,
      choices: ["Go north", "Stay"],
      allowWriteIn: true,
      mode: "vote",
      counts: [2, 0],
      closesAt: new Date(Date.now() + 30_000),
    };
    const ref = await surface.offerChoices(offer);
    let buttons = rows(fake.message(ref.id));
    expect(buttons[0]?.map((b) => b.label)).toEqual(["1. Go north · 2", "2. Stay · 0"]);
    expect(buttons[0]?.map((b) => decodeCustomId(b.custom_id))).toEqual([
      { kind: "vote", storyId, revision: 2, position: 1 },
      { kind: "vote", storyId, revision: 2, position: 2 },
    ]);
    expect(buttons[1]?.map((b) => b.label)).toEqual(["Suggest your own", "Close vote"]);
    expect(buttons[1]?.map((b) => decodeCustomId(b.custom_id)?.kind)).toEqual(["suggest", "close"]);
    expect(fake.message(ref.id)?.content).toMatch(/<t:\d+:R>/);

    await surface.updateChoices(ref, { ...offer, choices: [...offer.choices, "Swim"], counts: [2, 1, 1] });
    buttons = rows(fake.message(ref.id));
    expect(buttons[0]?.map((b) => b.label)).toEqual(["1. Go north · 2", "2. Stay · 1", "3. Swim · 1"]);

    const result = { chosen: 1, label: "Go north", counts: [2, 1] };
    await surface.closeChoices(ref, offer, result);
    const closed = fake.message(ref.id);
    expect(closed?.components).toEqual([]);
    expect(closed?.content).toContain("✅ Go north · 2");
    // The result is announced in the closing edit itself.
    expect(closed?.content).toContain("The readers chose: “Go north” (2 of 3 votes).");
    // What an interaction's update callback carries is what the closing edit sent.
    expect(surface.redrawMessage({ ref, offer, result })).toEqual({
      content: closed?.content,
      components: closed?.components,
    });
  });

  it("a finished chapter gets a 👍/👎 row that stays when the vote closes; 8 choices still fit in 5 rows", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    const chapterId = "cmwwuk9zq0001b2c3d4e5f6g7";
    const rating = [
      { kind: "rate", chapterId, value: 1 },
      { kind: "rate", chapterId, value: -1 },
    ];
    const offer: ChoiceOffer = {
      storyId,
      revision: 3,
      chapterId,
      choices: ["Go north", "Stay"],
      allowWriteIn: true,
      mode: "vote",
      counts: [0, 0],
      closesAt: null,
    };
    const ref = await surface.offerChoices(offer);
    let buttons = rows(fake.message(ref.id));
    expect(buttons.map((row) => row.map((b) => decodeCustomId(b.custom_id)?.kind))).toEqual([
      ["vote", "vote"],
      ["suggest", "close"],
      ["rate", "rate"],
    ]);
    expect(buttons[2]?.map((b) => b.label)).toEqual(["👍", "👎"]);
    expect(buttons[2]?.map((b) => decodeCustomId(b.custom_id))).toEqual(rating);

    await surface.updateChoices(ref, { ...offer, counts: [1, 0] });
    buttons = rows(fake.message(ref.id));
    expect(buttons[0]?.[0]?.label).toBe("1. Go north · 1");
    expect(buttons.at(-1)?.map((b) => decodeCustomId(b.custom_id))).toEqual(rating);

    await surface.closeChoices(ref, offer, { chosen: 1, label: "Go north", counts: [1, 0] });
    const closed = fake.message(ref.id);
    expect(closed?.content).toContain("The readers chose: “Go north” (1 of 1 votes).");
    expect(rows(closed).map((row) => row.map((b) => decodeCustomId(b.custom_id)))).toEqual([rating]);

    const many = ["A", "B", "C", "D", "E", "F", "G", "H"];
    const picks = rows(
      fake.message((await surface.offerChoices({ ...offer, choices: many, counts: many.map(() => 0) })).id),
    );
    expect(picks.length).toBeLessThanOrEqual(5);
    for (const row of picks) expect(row.length).toBeLessThanOrEqual(5);
    const kinds = picks.flat().map((b) => decodeCustomId(b.custom_id)?.kind);
    expect(kinds.filter((k) => k === "vote")).toHaveLength(8);
    expect(picks.at(-1)?.map((b) => decodeCustomId(b.custom_id))).toEqual(rating);
  });

  it("the suggest button's modal comes back with a suggestion id for the same story and revision", async () => {
    const { fake, bot, thread } = await world();
    const surface = surfaceIn(thread);
    const offer: ChoiceOffer = { storyId, revision: 9, choices: ["A", "B"], allowWriteIn: true, mode: "vote" };
    const ref = await surface.offerChoices(offer);
    const suggest = rows(fake.message(ref.id))[1]?.[0]?.custom_id ?? "";
    bot.on("interactionCreate", async (i) => {
      if (!i.isButton()) return;
      const action = decodeCustomId(i.customId);
      if (action?.kind !== "suggest") return;
      await i.showModal(suggestionModal("en", { ...action, mode: "vote" }, LIMITS.writeIn));
    });
    const reader = fake.user({ username: "reader" });
    fake.addMember(thread.guildId, reader);
    const handle = fake.clickButton(thread.guildId, thread.id, reader, ref.id, suggest);
    const modal = await handle.response();
    expect(modal.type).toBe(9);
    expect(decodeCustomId(String(modal.data?.custom_id))).toEqual({ kind: "suggestion", storyId, revision: 9 });
    expect(modal.data?.title).toBe("Suggest your own");
    expect(JSON.stringify(modal.data?.components)).toContain(`"custom_id":"${SUGGESTION_INPUT_ID}"`);
  });

  it("re-posts a message a moderator deleted mid-stream", async () => {
    const { fake, thread } = await world();
    const renderer = new StreamRenderer(surfaceIn(thread));
    renderer.push("The keeper woke.");
    const first = await fake.waitFor(() => fake.messages(thread.id)[0]);
    fake.deleteMessage(thread.id, first.id);
    renderer.push(" The lamp was dark.");
    const rendered = await renderer.finish();
    expect(rendered).toHaveLength(1);
    expect(rendered[0]?.ref.id).not.toBe(first.id);
    const live = fake.messages(thread.id).filter((m) => !m.deleted);
    expect(live.map((m) => m.content)).toEqual(["The keeper woke. The lamp was dark."]);
    const failedEdit = fake.calls.find((c) => c.method === "PATCH" && c.path.endsWith(first.id));
    expect(failedEdit?.status).toBe(404);
  });

  it("an edit of a deleted message is a 'gone' DeliveryError, logged once where it was mapped", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    const ref = await surface.post("draft");
    fake.deleteMessage(thread.id, ref.id);
    const error = await surface.edit(ref, "more").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ kind: "gone", platform: "discord" });
    expect(discordErrorKind(error)).toBe("gone");
    expect(logs).toEqual([expect.stringContaining(`discord channel ${thread.id}: edit failed: gone (404 10008`)]);
    expect(describeError(error, "en")).toBe("The message or chat I was writing to no longer exists.");
  });

  it("unarchives an archived thread once before its posts go through", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    fake.archiveThread(thread.id);
    await Promise.all([surface.post("Chapter 2"), surface.notice("Still here")]);
    expect(
      fake
        .messages(thread.id)
        .map((m) => m.content)
        .sort(),
    ).toEqual(["Chapter 2", "Still here"]);
    const unarchive = fake.calls.filter((c) => c.method === "PATCH" && c.route === "/channels/:channel");
    expect(unarchive.map((c) => c.body)).toEqual([{ archived: false }]);
    // The surface knows nothing in advance: the first post is refused (50083), the thread is
    // unarchived once for both writes, and both go through after it.
    const posts = fake.calls.filter((c) => c.method === "POST" && c.path === `/channels/${thread.id}/messages`);
    expect(posts[0]?.status).toBe(400);
    const firstDelivered = fake.calls.findIndex(
      (c) => c.method === "POST" && c.path === `/channels/${thread.id}/messages` && c.status === 200,
    );
    expect(fake.calls.indexOf(unarchive[0] as (typeof fake.calls)[number])).toBeLessThan(firstDelivered);
    expect(fake.channel(thread.id)?.archived).toBe(false);
    expect(logs).toEqual([]);
  });

  it("unarchives and retries once when a thread was archived between two posts", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread);
    await surface.post("Chapter 2");
    fake.archiveThread(thread.id);
    const ref = await surface.post("Chapter 3");
    expect(fake.message(ref.id)?.content).toBe("Chapter 3");
    expect(fake.calls.filter((c) => c.method === "PATCH" && c.route === "/channels/:channel")).toHaveLength(1);
    // Archived again later (auto-archive): unarchived again.
    fake.archiveThread(thread.id);
    await surface.notice("Chapter 4 soon");
    expect(fake.calls.filter((c) => c.method === "PATCH" && c.route === "/channels/:channel")).toHaveLength(2);
    expect(fake.messages(thread.id).map((m) => m.content)).toEqual(["Chapter 2", "Chapter 3", "Chapter 4 soon"]);
  });

  it("a denied permission becomes a 'forbidden' DeliveryError naming it, for a channel and a thread", async () => {
    const { fake, channel, text, thread } = await world();
    fake.denyPermission(channel, "SendMessages");
    const error = await surfaceIn(text)
      .post("hello")
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ kind: "forbidden", platform: "discord", permission: "Send Messages" });
    expect(describeError(error, "en")).toBe(
      "I am missing the “Send Messages” permission in this channel. A moderator can grant it.",
    );
    expect(describeError(error, "zh")).toBe("我在这个频道缺少“Send Messages”权限，请管理员授予。");
    fake.denyPermission(channel, "SendMessagesInThreads");
    const inThread = await surfaceIn(thread)
      .notice("hello")
      .catch((e: unknown) => e);
    expect(inThread).toMatchObject({ kind: "forbidden", permission: "Send Messages in Threads" });
    await fake.waitFor(() => text.permissionOverwrites.cache.size > 0);
    const raw = await text.send("direct").catch((e: unknown) => e);
    expect(discordErrorKind(raw)).toBe("forbidden");
    expect(discordErrorKind(new Error("something else"))).toBe("other");
    expect(discordErrorKind(Object.assign(new Error("socket"), { code: "ECONNRESET" }))).toBe("transient");
  });

  it("a deleted thread is 'gone' for every write, and retitle renames only a thread", async () => {
    const { fake, text, thread } = await world();
    await surfaceIn(text).retitle("Not for a channel");
    expect(fake.channel(text.id)?.name).toBe("stories");
    await surfaceIn(thread).retitle(`  ${"The Keeper of the Lamp ".repeat(6)}`);
    expect(fake.channel(thread.id)?.name).toBe("The Keeper of the Lamp ".repeat(6).trim().slice(0, 100));
    fake.deleteChannel(thread.id);
    const surface = surfaceIn(thread);
    const error = await surface.post("Chapter 9").catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "gone", platform: "discord" });
    expect(logs.some((l) => l.includes(`discord channel ${thread.id}: post failed: gone (404 10003`))).toBe(true);
  });

  it("failed posts a Try again button with a retry id", async () => {
    const { fake, thread } = await world();
    await surfaceIn(thread).failed("The chapter could not be written.", { storyId });
    const message = fake.messages(thread.id)[0];
    expect(message?.content).toBe("The chapter could not be written.");
    const button = rows(message)[0]?.[0];
    expect(button?.label).toBe("Try again");
    expect(decodeCustomId(button?.custom_id)).toEqual({ kind: "retry", storyId });
  });

  it("sendFile delivers an attachment with its bytes; no typing call spends the request budget", async () => {
    const { fake, thread } = await world();
    const surface = surfaceIn(thread, "zh");
    expect("typing" in surface).toBe(false);
    const content = "# 第一章\n\n灯塔。\n";
    await surface.sendFile({ name: "story.md", content });
    await surface.sendFile({ name: "story.bin", content: new Uint8Array([0, 1, 2, 255]) });
    const [text, binary] = fake.messages(thread.id);
    expect(text?.attachments.map((a) => a.filename)).toEqual(["story.md"]);
    expect(text?.attachments[0]?.bytes.toString("utf8")).toBe(content);
    expect(binary?.attachments[0]?.bytes.equals(Buffer.from([0, 1, 2, 255]))).toBe(true);
  });
});
