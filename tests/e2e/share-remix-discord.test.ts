/**
 * /share and /remix on Discord through the fake gateway and REST API: `/story share` posts
 * the code and a "Make my version" button; a press remixes into a new thread for the
 * presser; `/remix <code> <chapter>` does the same from the channel.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ballotIn, buttonsOf, type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let discord: FakeDiscordServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let app: DiscordApp | undefined;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-dc-share-"));
  dbUrl = await databases.url(dir, "dcshare");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  discord = await FakeDiscordServer.start();
  logs.length = 0;
});

afterEach(async () => {
  if (app !== undefined) await stopDiscordApp(app);
  app = undefined;
  await discord.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("Discord share and remix", { timeout: 120_000 }, () => {
  it("/story share posts the code and a Make my version button; a press and /remix open the reader's own thread", async () => {
    app = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), queueEnv());
    const { engine } = app;
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
    const modal = await discord.slashCommand(guild, channel, ann, "start").response();
    discord.submitModal(guild, channel, ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper finds a message in a bottle",
    });
    const thread = await discord.waitFor(() => discord.threads(channel)[0]);
    await discord.waitFor(() => ballotIn(discord, thread.id), 15_000);

    // Only the starter shares.
    const refused = discord.slashCommand(guild, thread, bea, "story", [], "share");
    await discord.waitFor(() => refused.original()?.content?.includes("Only the story's starter"));
    const shared = discord.slashCommand(guild, thread, ann, "story", [], "share");
    await discord.waitFor(() => shared.original()?.content === "Done.");
    const code =
      /code: ([a-z0-9]{16})/.exec(
        discord
          .messages(thread.id)
          .map((m) => m.content)
          .join("\n"),
      )?.[1] ?? "";
    expect(code).toHaveLength(16);
    expect(discord.messages(thread.id).some((m) => m.content.includes(`/remix ${code}`))).toBe(true);
    const offer = discord.messages(thread.id).find((m) => buttonsOf(m).some((b) => b.custom_id === `ink:k:${code}`));
    expect(buttonsOf(offer).map((b) => b.label)).toEqual(["Make my version"]);

    // Bea presses it: her own story, in a new thread of the channel.
    const pressed = discord.clickButton(guild, thread, bea, offer?.id ?? "", `ink:k:${code}`);
    const beaThread = await discord.waitFor(() => discord.threads(channel).find((t) => t.id !== thread.id));
    await discord.waitFor(() => pressed.original()?.content?.includes(`<#${beaThread.id}>`), 15_000);
    await discord.waitFor(() => ballotIn(discord, beaThread.id), 15_000);
    expect(discord.messages(beaThread.id).some((m) => /A remix of “[^”]+”/.test(m.content))).toBe(true);
    const beas = await engine.db.story.findFirstOrThrow({
      where: { conversationId: `discord:${beaThread.id}` },
      include: { owner: true },
    });
    expect(beas.owner.externalId).toBe(bea.id);
    expect(beas.remixOfId).not.toBeNull();

    // Cal types /remix with a chapter: the shared chapter 1 is copied, nothing is written.
    const remixed = discord.slashCommand(guild, channel, cal, "remix", [
      { name: "code", type: 3, value: code },
      { name: "chapter", type: 4, value: 1 },
    ]);
    const calThread = await discord.waitFor(() =>
      discord.threads(channel).find((t) => t.id !== thread.id && t.id !== beaThread.id),
    );
    await discord.waitFor(() => remixed.original()?.content?.includes(`<#${calThread.id}>`), 15_000);
    expect(discord.messages(calThread.id).some((m) => m.content.includes("continuing after its chapter 1"))).toBe(true);
    const cals = await engine.db.story.findFirstOrThrow({ where: { conversationId: `discord:${calThread.id}` } });
    expect(cals.remixOfChapter).toBe(1);
    expect(await engine.db.chapter.findMany({ where: { storyId: cals.id }, select: { status: true } })).toEqual([
      { status: "done" },
    ]);

    // Stopped sharing: the button answers that the code was revoked, and no thread is left behind.
    const off = discord.slashCommand(guild, thread, ann, "story", [{ name: "mode", type: 3, value: "off" }], "share");
    await discord.waitFor(() => off.original()?.content === "Done.");
    const late = discord.clickButton(guild, thread, cal, offer?.id ?? "", `ink:k:${code}`);
    await discord.waitFor(() => late.original()?.content?.includes("was revoked"), 15_000);
    await discord.waitFor(() => discord.threads(channel).length === 3);
    expect(await engine.db.story.count()).toBe(3);
  });
});
