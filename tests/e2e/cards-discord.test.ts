import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { discordCommands } from "../../adapters/discord/command-data.ts";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { cardPng, v2Card, v3Card } from "../helpers/cards.ts";
import { TestDatabases } from "../helpers/database.ts";
import { type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let discord: FakeDiscordServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let app: DiscordApp | undefined;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-dc-cards-"));
  dbUrl = await databases.url(dir, "dc");
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

describe("Discord: /card with an attachment option", { timeout: 120_000 }, () => {
  it("declares /card import (attachment) and /card export (name)", () => {
    const card = discordCommands().find((c) => c.name === "card") as {
      options: { name: string; options: { name: string; type: number; required: boolean }[] }[];
    };
    expect(card.options.map((o) => [o.name, o.options.map((x) => [x.name, x.type, x.required])])).toEqual([
      ["import", [["file", 11, true]]],
      ["export", [["name", 3, true]]],
    ]);
  });

  it("a PNG card imported in a channel starts its story in a thread; a JSON card joins it there; /card export posts the file", async () => {
    app = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), queueEnv());
    const guild = discord.guild({ name: "Book Club" });
    const channel = discord.textChannel(guild, { name: "stories" });
    const ann = discord.user({ username: "ann" });
    discord.addMember(guild, ann);

    const png = discord.userAttachment("mara.png", cardPng(v2Card()), "image/png");
    const imported = discord.slashCommand(
      guild,
      channel,
      ann,
      "card",
      [{ name: "file", type: 11, value: png }],
      "import",
    );
    const thread = await discord.waitFor(() => discord.threads(channel)[0]);
    await discord.waitFor(() => imported.original()?.content?.includes(`<#${thread.id}>`));
    await discord.waitFor(() =>
      discord.messages(thread.id).some((m) => m.content.includes("Starting a story from Mara Vell's card")),
    );
    await discord.waitFor(() => discord.messages(thread.id).some((m) => m.content.startsWith("Chapter 1")), 15_000);
    expect(discord.downloads).toEqual([png]);
    const story = await app.engine.db.story.findFirstOrThrow({ include: { characters: true, lore: true } });
    expect(story.conversationId).toBe(`discord:${thread.id}`);
    expect(story.characters.map((c) => c.name)).toContain("Mara Vell");
    expect(story.lore).toHaveLength(2);

    const json = discord.userAttachment("orrin.json", Buffer.from(JSON.stringify(v3Card())), "application/json");
    const joined = discord.slashCommand(
      guild,
      thread,
      ann,
      "card",
      [{ name: "file", type: 11, value: json }],
      "import",
    );
    await discord.waitFor(() => joined.original()?.content === "Done.");
    expect(discord.messages(thread.id).some((m) => m.content.includes("Orrin Hale joined the story"))).toBe(true);

    const exported = discord.slashCommand(
      guild,
      thread,
      ann,
      "card",
      [{ name: "name", type: 3, value: "orrin" }],
      "export",
    );
    const file = await discord.waitFor(() =>
      discord
        .messages(thread.id)
        .flatMap((m) => m.attachments)
        .find((a) => a.filename === "orrin-hale.card.json"),
    );
    await discord.waitFor(() => exported.original()?.content === "Done.");
    const card = JSON.parse(file.bytes.toString("utf8")) as { spec: string; data: { extensions: unknown } };
    expect(card.spec).toBe("chara_card_v3");
    expect(card.data.extensions).toEqual(v3Card().data.extensions);
  });

  it("a bad card in a channel is refused privately and leaves no thread behind", async () => {
    app = await launchDiscordApp({ model, discord }, dbUrl, (m) => logs.push(m), queueEnv());
    const guild = discord.guild();
    const channel = discord.textChannel(guild, { name: "stories" });
    const ann = discord.user({ username: "ann" });
    discord.addMember(guild, ann);
    const bad = discord.userAttachment("bad.json", Buffer.from("{ nope"), "application/json");
    const refused = discord.slashCommand(
      guild,
      channel,
      ann,
      "card",
      [{ name: "file", type: 11, value: bad }],
      "import",
    );
    await discord.waitFor(() => refused.original()?.content?.includes("it is not valid JSON"));
    expect(refused.original()?.flags).toBe(64);
    await discord.waitFor(() => discord.threads(channel).length === 0);
    expect(await app.engine.db.story.count()).toBe(0);
  });
});
