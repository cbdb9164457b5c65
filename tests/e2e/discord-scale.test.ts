/**
 * Discord at scale: the bot's REST budget (requests per voted round, interaction callbacks
 * apart), every process through one REST proxy, and gateway sharding. The real engine and the
 * real discord.js adapter against the fake Discord.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REST } from "discord.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type DiscordProxy, startDiscordProxy } from "../../adapters/discord/proxy.ts";
import { discordSurfaceFor } from "../../adapters/discord/surfaces.ts";
import {
  countsAgainstGlobalLimit,
  type FakeDiscordOptions,
  FakeDiscordServer,
  type RestCall,
  shardOf,
} from "../fakes/fake-discord-server.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import {
  ballotIn as ballotOf,
  buttonsOf,
  type DiscordApp,
  launchDiscordApp,
  stopDiscordApp,
} from "../helpers/discord-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let discord: FakeDiscordServer;
let proxy: DiscordProxy | undefined;
let dir: string;
let running: DiscordApp[] = [];
const databases = new TestDatabases();
const logs: string[] = [];

async function fake(options: FakeDiscordOptions = {}) {
  await discord?.close();
  discord = await FakeDiscordServer.start(options);
  return discord;
}

async function launch(extra: Record<string, string> = {}) {
  // The starter closes the vote; the window never does.
  const app = await launchDiscordApp({ model, discord }, await databases.url(dir, "dcs"), (m) => logs.push(m), {
    VOTE_SECONDS: "3600",
    ...queueEnv(),
    ...extra,
  });
  running.push(app);
  return app;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-dcs-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  discord = await FakeDiscordServer.start();
  logs.length = 0;
});

afterEach(async () => {
  for (const app of running) await stopDiscordApp(app);
  running = [];
  await proxy?.close();
  proxy = undefined;
  await discord.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

const ballotIn = (channelId: string, after = "0") => ballotOf(discord, channelId, after);
const describeCall = (c: RestCall) => `${c.method} ${c.route}`;

function world(guildOptions: Parameters<FakeDiscordServer["guild"]>[0] = {}) {
  const guild = discord.guild({ name: "Book Club", ...guildOptions });
  const channel = discord.textChannel(guild, { name: "stories" });
  const members = ["ann", "bea", "cal"].map((username) => {
    const u = discord.user({ username });
    discord.addMember(guild, u);
    return u;
  });
  const [ann, bea, cal] = members as [(typeof members)[0], (typeof members)[0], (typeof members)[0]];
  return { guild, channel, ann, bea, cal };
}

async function startStory(w: ReturnType<typeof world>, scenario: string) {
  const modal = await discord.slashCommand(w.guild, w.channel, w.ann, "start").response();
  expect(modal.type).toBe(9);
  discord.submitModal(w.guild, w.channel, w.ann, String(modal.data?.custom_id), { scenario });
  const thread = await discord.waitFor(() => discord.threads(w.channel).find((t) => t.name === scenario));
  const ballot = await discord.waitFor(() => ballotIn(thread.id), 15_000);
  return { thread, ballot };
}

describe("Discord's REST budget", { timeout: 60_000 }, () => {
  it("one voted round costs at most 6 requests of the bot's budget; its interaction callbacks are apart", async () => {
    await launch();
    const w = world();
    const { thread, ballot } = await startStory(w, "a lighthouse keeper finds a message in a bottle");
    // The round starts once the ballot is out (chapter 1's job has finished its writes)...
    await new Promise((r) => setTimeout(r, 500));
    const from = discord.calls.length;
    const votes = buttonsOf(ballot).filter((b) => b.custom_id?.startsWith("ink:v:"));
    const close = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    for (const [user, k] of [
      [w.ann, 0],
      [w.bea, 0],
      [w.cal, 1],
    ] as const) {
      const answer = await discord.clickButton(w.guild, thread, user, ballot.id, votes[k]?.custom_id ?? "").response();
      expect(answer.type).toBe(7);
    }
    // ...the readers take longer than the live-count interval (3 s) before the close...
    await new Promise((r) => setTimeout(r, 3500));
    expect((await discord.clickButton(w.guild, thread, w.ann, ballot.id, close).response()).type).toBe(7);
    // ...and it ends when the next chapter's first message is created.
    await discord.waitFor(
      () =>
        discord.calls
          .slice(from)
          .find(
            (c) => c.method === "POST" && String((c.body as { content?: unknown })?.content).startsWith("Chapter 2\n"),
          ),
      15_000,
    );
    const chapter2 = discord.calls.findIndex(
      (c, i) =>
        i >= from &&
        c.method === "POST" &&
        String((c.body as { content?: unknown })?.content).startsWith("Chapter 2\n"),
    );
    const round = discord.calls.slice(from, chapter2);
    const budget = round.filter(countsAgainstGlobalLimit).map(describeCall);
    const callbacks = round.filter((c) => !countsAgainstGlobalLimit(c));
    logs.push(`voted round: budget ${JSON.stringify(budget)}, ${callbacks.length} callbacks`);
    expect(budget.length).toBeLessThanOrEqual(6);
    // Three votes and the close, each answered in its callback (Discord exempts those from the budget).
    expect(callbacks.map(describeCall)).toEqual(Array(4).fill("POST /interactions/:interaction/:token/callback"));
    // The ballot shows the result, announced in its one closing edit.
    expect(discord.message(ballot.id)?.content).toMatch(/^The readers chose: “.+” \(2 of 3 votes\)\.\n/);
    expect(discord.messages(thread.id).filter((m) => m.content.includes("readers chose"))).toHaveLength(1);
    await discord.waitFor(() => ballotIn(thread.id, ballot.id), 15_000);
  });

  it("every process reaches Discord through one @discordjs/proxy: the front's gateway login, its REST, a worker's surface", async () => {
    proxy = await startDiscordProxy({ upstream: discord.apiRoot, port: 0, host: "127.0.0.1", token: discord.token });
    await launch({ DISCORD_API_ROOT: proxy.apiRoot });
    const w = world();
    const { thread, ballot } = await startStory(w, "a clockwork city under the sea");
    const vote = buttonsOf(ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
    expect((await discord.clickButton(w.guild, thread, w.bea, ballot.id, vote).response()).type).toBe(7);
    // A chapter worker: no gateway, a REST client of its own pointed at the same proxy.
    const worker = new REST({ api: proxy.apiRoot }).setToken(discord.token);
    await discordSurfaceFor(worker, `discord:${thread.id}`, "en", (m) => logs.push(m)).notice("From the worker");
    expect(discord.messages(thread.id).some((m) => m.content === "From the worker")).toBe(true);
    // Every request the fake Discord answered came through the proxy, callbacks included: a
    // request that went around it would make the fake's count exceed the proxy's. (Under a
    // full CI run the proxy has been seen to forward more than the fake recorded; to be
    // explained, see the closing note.)
    expect(discord.calls.length).toBeGreaterThan(0);
    expect(discord.calls.length).toBeLessThanOrEqual(proxy.forwarded);
    expect(discord.calls.map(describeCall)).toEqual(
      expect.arrayContaining([
        "GET /gateway/bot",
        "POST /channels/:channel/threads",
        "POST /interactions/:interaction/:token/callback",
      ]),
    );
    // Another bot's token is refused, so the proxy's budget stays this bot's.
    const stranger = new REST({ api: proxy.apiRoot, retries: 0 }).setToken("someone.else.token");
    await expect(stranger.get(`/channels/${thread.id}`)).rejects.toMatchObject({ status: 401 });
    expect(discord.calls.length).toBe(proxy.forwarded);
  });
});

describe("Discord sharding", { timeout: 60_000 }, () => {
  const shardsOf = () => discord.connectedShards().sort((a, b) => a[0] - b[0]);

  it("SHARD_COUNT=2: both shards identify and interactions from guilds on either shard are handled", async () => {
    // Both shards may identify at once (max_concurrency 2), as for large bots.
    await fake({ maxConcurrency: 2 });
    const first = world({ shard: [0, 2] });
    const second = world({ shard: [1, 2] });
    expect([shardOf(first.guild.id, 2), shardOf(second.guild.id, 2)]).toEqual([0, 1]);
    const { bot } = await launch({ SHARD_COUNT: "2" });
    expect(shardsOf()).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect(bot.client.ws.shards.size).toBe(2);
    for (const w of [first, second]) {
      const started = await startStory(w, `a story in ${w.guild.id}`);
      const vote = buttonsOf(started.ballot).find((b) => b.custom_id?.startsWith("ink:v:"))?.custom_id ?? "";
      const answer = await discord.clickButton(w.guild, started.thread, w.bea, started.ballot.id, vote).response();
      expect(answer.type).toBe(7);
    }
    // Each guild reached the bot through its own shard.
    expect(bot.client.guilds.cache.get(first.guild.id)?.shardId).toBe(0);
    expect(bot.client.guilds.cache.get(second.guild.id)?.shardId).toBe(1);
  });

  it("SHARD_COUNT=auto (the default) runs as many shards as GET /gateway/bot recommends", async () => {
    await fake({ recommendedShards: 2, maxConcurrency: 2 });
    world({ shard: [1, 2] });
    await launch();
    expect(shardsOf()).toEqual([
      [0, 2],
      [1, 2],
    ]);
    const gateway = discord.calls.find((c) => c.route === "/gateway/bot");
    expect(gateway?.status).toBe(200);
  });
});
