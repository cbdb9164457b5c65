import {
  ActionRowBuilder,
  AttachmentBuilder,
  ButtonBuilder,
  ButtonStyle,
  ChannelType,
  type Client,
  DiscordAPIError,
  type Interaction,
  MessageFlags,
  ModalBuilder,
  Routes,
  TextInputBuilder,
  TextInputStyle,
} from "discord.js";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  type FakeChannel,
  FakeDiscordServer,
  type FakeGuild,
  type FakeUser,
  shardOf,
} from "../fakes/fake-discord-server.ts";
import { loggedInClient, restFor, textChannelOf } from "../helpers/discord-client.ts";

let server: FakeDiscordServer | undefined;
let client: Client | undefined;

afterEach(async () => {
  if (client) await client.destroy();
  client = undefined;
  await server?.close();
  server = undefined;
});

interface World {
  fake: FakeDiscordServer;
  bot: Client;
  guild: FakeGuild;
  channel: FakeChannel;
  reader: FakeUser;
}

/** A server with one guild, one text channel and one reader, and a logged-in discord.js client. */
async function world(options: Parameters<typeof FakeDiscordServer.start>[0] = {}): Promise<World> {
  const fake = await FakeDiscordServer.start(options);
  server = fake;
  const guild = fake.guild({ name: "Ink Club" });
  const channel = fake.textChannel(guild, { name: "stories" });
  const reader = fake.user({ username: "reader" });
  fake.addMember(guild, reader);
  const bot = await loggedInClient(fake);
  client = bot;
  return { fake, bot, guild, channel, reader };
}

const textChannel = textChannelOf;

function nextInteraction(bot: Client): Promise<Interaction> {
  return new Promise((resolve) => bot.once("interactionCreate", resolve));
}

describe("FakeDiscordServer with the real discord.js client", () => {
  it("login reaches ready and sees the guild, its channel, roles and the bot member", async () => {
    const { fake, bot, guild, channel } = await world();
    expect(bot.user?.id).toBe(fake.bot.id);
    expect(bot.user?.username).toBe("Inkloom");
    expect(bot.application?.id).toBe(fake.applicationId);
    const g = bot.guilds.cache.get(guild.id);
    expect(g?.name).toBe("Ink Club");
    expect(g?.channels.cache.get(channel.id)?.name).toBe("stories");
    expect(g?.members.me?.id).toBe(fake.bot.id);
    expect(fake.calls.map((c) => `${c.method} ${c.route} ${c.status}`)).toContain("GET /gateway/bot 200");
  });

  it("a member given ManageGuild has it in memberPermissions and an ordinary reader does not", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    const admin = fake.user({ username: "admin" });
    fake.addMember(guild, admin, { permissions: ["ManageGuild"] });
    const first = nextInteraction(bot);
    fake.slashCommand(guild, channel, admin, "settings");
    expect((await first).memberPermissions?.has("ManageGuild")).toBe(true);
    const second = nextInteraction(bot);
    fake.slashCommand(guild, channel, reader, "settings");
    expect((await second).memberPermissions?.has("ManageGuild")).toBe(false);
  });

  it("heartbeats are acknowledged so the shard measures a ping", async () => {
    const { fake, bot } = await world({ heartbeatIntervalMs: 100 });
    await fake.waitFor(() => fake.gatewayReceived.filter((p) => p.op === 1).length >= 2, 3000);
    await fake.waitFor(() => bot.ws.ping >= 0, 3000);
    expect(bot.ws.ping).toBeGreaterThanOrEqual(0);
  });

  it("bulk command registration stores guild and global commands with ids", async () => {
    const { fake, bot, guild } = await world();
    const app = bot.application;
    if (!app) throw new Error("no application");
    await app.commands.set([{ name: "start", description: "Start a story" }], guild.id);
    await app.commands.set([
      { name: "start", description: "Start a story" },
      { name: "vote", description: "Vote", options: [{ name: "choice", description: "which", type: 3 }] },
    ]);
    expect(fake.commands(guild).map((c) => c.name)).toEqual(["start"]);
    expect(fake.commands().map((c) => c.name)).toEqual(["start", "vote"]);
    expect(fake.commands().every((c) => typeof c.id === "string")).toBe(true);
    const fetched = await app.commands.fetch();
    expect([...fetched.values()].map((c) => c.name).sort()).toEqual(["start", "vote"]);
  });

  it("a slash command is deferred then followed up; the callback arrives within the deadline", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    bot.on("interactionCreate", async (i) => {
      if (!i.isChatInputCommand()) return;
      await i.deferReply();
      await i.editReply(`Chapter for ${i.options.getString("genre")}`);
      await i.followUp({ content: "Only you see this", flags: MessageFlags.Ephemeral });
    });
    const handle = fake.slashCommand(guild, channel, reader, "start", [{ name: "genre", type: 3, value: "noir" }]);
    const cb = await handle.response();
    expect(cb.type).toBe(5);
    expect(handle.respondedWithinMs).toBeLessThan(3000);
    await fake.waitFor(() => handle.followups().length === 1);
    expect(handle.original()?.content).toBe("Chapter for noir");
    expect(handle.original()?.flags).toBe(0);
    expect(handle.followups()[0]?.ephemeral).toBe(true);
    expect(fake.calls.some((c) => c.path.endsWith("/messages/@original") && c.method === "PATCH")).toBe(true);
  });

  it("an ephemeral reply carries flag 64 and a subcommand reaches the bot", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    bot.on("interactionCreate", async (i) => {
      if (!i.isChatInputCommand()) return;
      await i.reply({ content: `sub=${i.options.getSubcommand()}`, flags: MessageFlags.Ephemeral });
    });
    const handle = fake.slashCommand(guild, channel, reader, "story", [], "status");
    const cb = await handle.response();
    expect(cb.type).toBe(4);
    expect(cb.data?.content).toBe("sub=status");
    expect(cb.data?.flags).toBe(64);
  });

  it("an autocomplete interaction is answered with choices (callback type 8)", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    bot.on("interactionCreate", async (i) => {
      if (!i.isAutocomplete()) return;
      const typed = i.options.getFocused();
      await i.respond([{ name: `${typed} story`, value: `${typed}-1` }]);
    });
    const handle = fake.autocomplete(guild, channel, reader, "continue", [
      { name: "story", type: 3, value: "light", focused: true },
    ]);
    const cb = await handle.response();
    expect(cb.type).toBe(8);
    expect(cb.data?.choices).toEqual([{ name: "light story", value: "light-1" }]);
  });

  it("showModal answers the command and the modal submit round trip delivers the fields", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    bot.on("interactionCreate", async (i) => {
      if (i.isChatInputCommand()) {
        const modal = new ModalBuilder()
          .setCustomId("premise")
          .setTitle("New story")
          .addComponents(
            new ActionRowBuilder<TextInputBuilder>().addComponents(
              new TextInputBuilder().setCustomId("idea").setLabel("Idea").setStyle(TextInputStyle.Paragraph),
            ),
          );
        await i.showModal(modal);
      } else if (i.isModalSubmit()) {
        await i.reply(`idea: ${i.fields.getTextInputValue("idea")}`);
      }
    });
    const cmd = fake.slashCommand(guild, channel, reader, "start");
    const modal = await cmd.response();
    expect(modal.type).toBe(9);
    expect(modal.data?.custom_id).toBe("premise");
    expect(modal.data?.title).toBe("New story");
    const submit = fake.submitModal(guild, channel, reader, "premise", { idea: "A lighthouse keeper" });
    const reply = await submit.response();
    expect(reply.type).toBe(4);
    expect(reply.data?.content).toBe("idea: A lighthouse keeper");
  });

  it("a button click reaches interactionCreate with the full message and update edits it", async () => {
    const { fake, bot, guild, channel, reader } = await world();
    const sent = await textChannel(bot, channel.id).send({
      content: "Chapter 1",
      components: [
        new ActionRowBuilder<ButtonBuilder>().addComponents(
          new ButtonBuilder().setCustomId("vote:1:a").setLabel("Open the door").setStyle(ButtonStyle.Primary),
        ),
      ],
    });
    const got = nextInteraction(bot);
    const handle = fake.clickButton(guild, channel, reader, sent.id, "vote:1:a");
    const interaction = await got;
    if (!interaction.isButton()) throw new Error("expected a button interaction");
    expect(interaction.customId).toBe("vote:1:a");
    expect(interaction.message.id).toBe(sent.id);
    expect(interaction.message.content).toBe("Chapter 1");
    await interaction.update({ content: "Chapter 1 (voted)", components: [] });
    expect((await handle.response()).type).toBe(7);
    expect(fake.messages(channel)[0]?.content).toBe("Chapter 1 (voted)");
    expect(fake.messages(channel)[0]?.components).toEqual([]);
  });

  it("a public thread is created with the explicit type, announced, then written and edited", async () => {
    const { fake, bot, channel } = await world();
    const created = new Promise<string>((resolve) => bot.once("threadCreate", (t) => resolve(t.id)));
    const thread = await textChannel(bot, channel.id).threads.create({
      name: "The Lighthouse",
      type: ChannelType.PublicThread,
    });
    expect(thread.type).toBe(ChannelType.PublicThread);
    expect(await created).toBe(thread.id);
    const msg = await thread.send("Once");
    await msg.edit("Once upon a time");
    expect(fake.threads(channel).map((t) => [t.name, t.type])).toEqual([["The Lighthouse", 11]]);
    const stored = fake.messages(thread.id)[0];
    expect(stored?.content).toBe("Once upon a time");
    expect(stored?.edits).toBe(1);
    expect(stored?.contentHistory).toEqual(["Once", "Once upon a time"]);
  });

  it("a thread created without a type defaults to private and one from a message takes its id", async () => {
    const { fake, bot, channel } = await world();
    const text = textChannel(bot, channel.id);
    const priv = await bot.rest.post(`/channels/${channel.id}/threads`, { body: { name: "secret" } });
    expect((priv as { type: number }).type).toBe(12);
    const start = await text.send("Start here");
    const fromMessage = await start.startThread({ name: "from message" });
    expect(fromMessage.id).toBe(start.id);
    expect(fromMessage.type).toBe(ChannelType.PublicThread);
    expect(fake.threads(channel).map((t) => t.type)).toEqual([12, 11]);
  });

  it("a multipart attachment arrives with its name and bytes", async () => {
    const { fake, bot, channel } = await world();
    const bytes = Buffer.from("# Chapter 1\n\nIt was a dark and stormy night.\n");
    await textChannel(bot, channel.id).send({
      content: "The full chapter",
      files: [new AttachmentBuilder(bytes, { name: "chapter-1.md" })],
    });
    const stored = fake.messages(channel)[0];
    expect(stored?.content).toBe("The full chapter");
    expect(stored?.attachments.map((a) => a.filename)).toEqual(["chapter-1.md"]);
    expect(stored?.attachments[0]?.bytes.equals(bytes)).toBe(true);
    expect(fake.calls.at(-1)?.files).toEqual([{ name: "chapter-1.md", size: bytes.length }]);
  });

  it("a 429 from failNext is waited out by discord.js and the edit still succeeds", async () => {
    const { fake, bot, channel } = await world();
    const msg = await textChannel(bot, channel.id).send("draft");
    fake.failNext("PATCH /channels/:channel/messages/:message", { retryAfter: 0.2 });
    const started = Date.now();
    await msg.edit("final");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(fake.messages(channel)[0]?.content).toBe("final");
    const edits = fake.calls.filter((c) => c.method === "PATCH").map((c) => c.status);
    expect(edits).toEqual([429, 200]);
  });

  it("per-route limits make discord.js pace edits instead of failing", async () => {
    const { fake, bot, channel } = await world({
      rateLimits: [{ route: "PATCH /channels/:channel/messages/:message", limit: 2, windowMs: 300 }],
    });
    const msg = await textChannel(bot, channel.id).send("v0");
    for (let i = 1; i <= 4; i++) await msg.edit(`v${i}`);
    expect(fake.messages(channel)[0]?.content).toBe("v4");
    expect(fake.messages(channel)[0]?.edits).toBe(4);
  });

  it("a denied permission gives DiscordAPIError 50013 Missing Permissions", async () => {
    const { fake, bot, channel } = await world();
    fake.denyPermission(channel, "SendMessages");
    const error = await textChannel(bot, channel.id)
      .send("hello")
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect((error as DiscordAPIError).code).toBe(50013);
    expect((error as DiscordAPIError).status).toBe(403);
  });

  it("a denied CreatePublicThreads blocks thread creation with 50013", async () => {
    const { fake, bot, channel } = await world();
    fake.denyPermission(channel, "CreatePublicThreads");
    const error = await textChannel(bot, channel.id)
      .threads.create({ name: "nope", type: ChannelType.PublicThread })
      .catch((e: unknown) => e);
    expect((error as DiscordAPIError).code).toBe(50013);
  });

  it("editing a message a moderator deleted gives DiscordAPIError 10008 Unknown Message", async () => {
    const { fake, bot, channel } = await world();
    const msg = await textChannel(bot, channel.id).send("streaming...");
    fake.deleteMessage(channel, msg.id);
    const error = await msg.edit("more").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect((error as DiscordAPIError).code).toBe(10008);
    expect(fake.messages(channel)[0]?.deleted).toBe(true);
  });

  it("posting to an archived thread fails with 50083 and succeeds after setArchived(false)", async () => {
    const { fake, bot, channel } = await world();
    const thread = await textChannel(bot, channel.id).threads.create({ name: "Saga", type: ChannelType.PublicThread });
    fake.archiveThread(thread.id);
    await fake.waitFor(() => thread.archived === true);
    const error = await thread.send("next chapter").catch((e: unknown) => e);
    expect((error as DiscordAPIError).code).toBe(50083);
    await thread.setArchived(false);
    await thread.send("next chapter");
    expect(fake.messages(thread.id).map((m) => m.content)).toEqual(["next chapter"]);
  });

  it("reading and changing a channel over REST checks permissions as Discord does", async () => {
    const { fake, bot, guild, channel } = await world();
    const thread = await textChannel(bot, channel.id).threads.create({ name: "Saga", type: ChannelType.PublicThread });
    const read = (await bot.rest.get(Routes.channel(thread.id))) as { guild_id?: string; type: number };
    expect(read).toMatchObject({ guild_id: guild.id, type: ChannelType.PublicThread });
    // A text channel: Manage Channels, which the bot does not have.
    const renamed = await bot.rest
      .patch(Routes.channel(channel.id), { body: { name: "mine now" } })
      .catch((e: unknown) => e);
    expect((renamed as DiscordAPIError).code).toBe(50013);
    expect(fake.channel(channel.id)?.name).toBe("stories");
    // Its own thread: the creator renames it without Manage Threads, but may not lock it.
    fake.denyPermission(channel, "ManageThreads");
    await bot.rest.patch(Routes.channel(thread.id), { body: { name: "Saga, part two" } });
    expect(fake.channel(thread.id)?.name).toBe("Saga, part two");
    const locked = await bot.rest.patch(Routes.channel(thread.id), { body: { locked: true } }).catch((e: unknown) => e);
    expect((locked as DiscordAPIError).code).toBe(50013);
    // Without View Channel the channel cannot even be read: 403 50001 Missing Access.
    fake.denyPermission(channel, "ViewChannel");
    const hidden = await bot.rest.get(Routes.channel(thread.id)).catch((e: unknown) => e);
    expect(hidden).toBeInstanceOf(DiscordAPIError);
    expect((hidden as DiscordAPIError).code).toBe(50001);
    expect((hidden as DiscordAPIError).status).toBe(403);
  });

  it("invalid components are refused with Discord's 50035 Invalid Form Body shape", async () => {
    const { fake, bot, channel } = await world();
    const button = { type: 2, style: 1, label: "x".repeat(81), custom_id: "c".repeat(101) };
    const error = await bot.rest
      .post(`/channels/${channel.id}/messages`, {
        body: { content: "a".repeat(2001), components: [{ type: 1, components: [button] }] },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscordAPIError);
    const api = error as DiscordAPIError;
    expect(api.code).toBe(50035);
    expect(api.rawError).toMatchObject({
      message: "Invalid Form Body",
      errors: {
        content: { _errors: [{ code: "BASE_TYPE_MAX_LENGTH" }] },
        components: { "0": { components: { "0": { custom_id: { _errors: [{}] }, label: { _errors: [{}] } } } } },
      },
    });
    expect(fake.messages(channel)).toEqual([]);
  });

  it("an interaction answered twice gets 40060 and a late one 10062", async () => {
    const { fake, bot, guild, channel, reader } = await world({ interactionDeadlineMs: 500 });
    const errors: unknown[] = [];
    bot.on("interactionCreate", async (i) => {
      if (!i.isChatInputCommand()) return;
      if (i.commandName === "slow") await new Promise((r) => setTimeout(r, 700));
      await i.reply("one").catch((e: unknown) => errors.push(e));
      if (i.commandName === "twice") {
        await bot.rest
          .post(`/interactions/${i.id}/${i.token}/callback`, {
            body: { type: 4, data: { content: "two" } },
            auth: false,
          })
          .catch((e: unknown) => errors.push(e));
      }
    });
    fake.slashCommand(guild, channel, reader, "twice");
    await fake.waitFor(() => errors.length === 1);
    fake.slashCommand(guild, channel, reader, "slow");
    await fake.waitFor(() => errors.length === 2);
    expect(errors.map((e) => (e as DiscordAPIError).code)).toEqual([40060, 10062]);
  });

  it("shards: GET /gateway/bot recommends them, IDENTIFY names one, and a guild's events reach its shard only", async () => {
    const fake = await FakeDiscordServer.start({ recommendedShards: 2, maxConcurrency: 2 });
    server = fake;
    const [a, b] = [fake.guild({ shard: [0, 2] }), fake.guild({ shard: [1, 2] })];
    expect([shardOf(a.id, 2), shardOf(b.id, 2)]).toEqual([0, 1]);
    expect(await restFor(fake).get(Routes.gatewayBot())).toMatchObject({
      shards: 2,
      session_start_limit: { remaining: 1000, max_concurrency: 2 },
    });
    // Two processes, one shard each.
    const clients = await Promise.all([0, 1].map((id) => loggedInClient(fake, { shards: [id], shardCount: 2 })));
    try {
      expect(fake.connectedShards().sort()).toEqual([
        [0, 2],
        [1, 2],
      ]);
      expect(clients.map((c) => [...c.guilds.cache.keys()])).toEqual([[a.id], [b.id]]);
      const channel = fake.textChannel(b);
      const reader = fake.user();
      fake.addMember(b, reader);
      const seen: number[] = [];
      for (const [i, c] of clients.entries()) {
        c.on("interactionCreate", () => {
          seen.push(i);
        });
      }
      fake.slashCommand(b, channel, reader, "help");
      await fake.waitFor(() => seen.length > 0);
      await new Promise((r) => setTimeout(r, 100));
      expect(seen).toEqual([1]);
      expect(
        (await restFor(fake).get(Routes.gatewayBot())) as { session_start_limit: { remaining: number } },
      ).toMatchObject({ session_start_limit: { remaining: 998 } });
    } finally {
      await Promise.all(clients.map((c) => c.destroy()));
    }
  });

  it("an IDENTIFY naming no valid shard is closed with 4010 Invalid shard", async () => {
    const fake = await FakeDiscordServer.start();
    server = fake;
    const ws = new WebSocket(`${fake.gatewayUrl}?v=10&encoding=json`);
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    ws.on("message", (raw) => {
      if (JSON.parse(String(raw)).op === 10) {
        ws.send(JSON.stringify({ op: 2, d: { token: fake.token, intents: 1, properties: {}, shard: [2, 2] } }));
      }
    });
    expect(await closed).toBe(4010);
  });
});
