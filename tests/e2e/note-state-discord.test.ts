import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ballotIn, type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let discord: FakeDiscordServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let app: DiscordApp | undefined;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-dc-note-"));
  dbUrl = await databases.url(dir, "dc");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  discord = await FakeDiscordServer.start();
  logs.length = 0;
  app = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), queueEnv());
});

afterEach(async () => {
  if (app !== undefined) await stopDiscordApp(app);
  app = undefined;
  await discord.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("Discord: /story note and /story status", { timeout: 90_000 }, () => {
  it("the starter sets a note, a member may not; /story status posts bars and the chart as an attachment", async () => {
    const guild = discord.guild({ name: "Book Club" });
    const channel = discord.textChannel(guild, { name: "stories" });
    const ann = discord.user({ username: "ann" });
    const bea = discord.user({ username: "bea" });
    discord.addMember(guild, ann);
    discord.addMember(guild, bea);
    const modal = await discord
      .slashCommand(guild, channel, ann, "start", [{ name: "genre", type: 3, value: "horror" }])
      .response();
    const submitted = discord.submitModal(guild, channel, ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper finds letters from the future",
    });
    await submitted.response();
    const thread = await discord.waitFor(() => discord.threads(channel)[0]);
    await discord.waitFor(() => ballotIn(discord, thread.id), 15_000);

    const refused = discord.slashCommand(
      guild,
      thread,
      bea,
      "story",
      [{ name: "direction", type: 3, value: "all romance" }],
      "note",
    );
    await discord.waitFor(() => refused.original()?.content?.includes("Only the reader who started this story"));
    expect((refused.original()?.flags ?? 0) & 64).toBe(64);
    const set = discord.slashCommand(
      guild,
      thread,
      ann,
      "story",
      [{ name: "direction", type: 3, value: "more dialogue" }],
      "note",
    );
    await discord.waitFor(
      () =>
        discord.messages(thread.id).some((m) => m.content.includes("Author's note set: more dialogue")) ||
        set.original()?.content?.includes("Author's note set: more dialogue"),
    );

    discord.slashCommand(guild, thread, bea, "story", [], "status");
    const chart = await discord.waitFor(() =>
      discord.messages(thread.id).find((m) => m.attachments.some((a) => a.filename.endsWith(".png"))),
    );
    const shown = discord.messages(thread.id).find((m) => m.content.includes("Story state"));
    expect(shown?.content).toContain("Elias Wren  ░░░░░░░░░░│██░░░░░░░░ +15");
    expect(shown?.content).toContain("Arc  ████░░░░░░░░░░░░░░░░ 20%");
    const png = chart.attachments.find((a) => a.filename.endsWith(".png"))?.bytes;
    expect([...(png?.subarray(0, 4) ?? [])]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(chart.content).toContain("Elias Wren");
  });
});
