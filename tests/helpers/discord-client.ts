/** The real discord.js client logged in to a fake Discord, for integration tests. */
import {
  ChannelType,
  Client,
  type ClientOptions,
  GatewayIntentBits,
  REST,
  type TextChannel,
  type ThreadChannel,
} from "discord.js";
import type { FakeChannel, FakeDiscordServer } from "../fakes/fake-discord-server.ts";

/** A Guilds-intent client (what the bot uses), logged in and ready (`options`: its shards, say). The caller destroys it. */
export async function loggedInClient(fake: FakeDiscordServer, options: Partial<ClientOptions> = {}): Promise<Client> {
  const bot = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake.apiRoot }, ...options });
  const ready = new Promise<void>((resolve) => bot.once("clientReady", () => resolve()));
  await bot.login(fake.token);
  await ready;
  return bot;
}

/**
 * A bare REST client with the bot token, as a process without a gateway connection has
 * (a chapter worker): surfaces need nothing more.
 */
export function restFor(fake: FakeDiscordServer): REST {
  return new REST({ api: fake.apiRoot }).setToken(fake.token);
}

/** The client's view of a fake text channel. */
export function textChannelOf(bot: Client, channel: FakeChannel | string): TextChannel {
  const id = typeof channel === "string" ? channel : channel.id;
  const text = bot.channels.cache.get(id);
  if (!text || text.type !== ChannelType.GuildText) throw new Error(`no text channel ${id}`);
  return text;
}

/** A public thread in `channel`, as story threads are. */
export function storyThread(bot: Client, channel: FakeChannel): Promise<ThreadChannel> {
  return textChannelOf(bot, channel).threads.create({ name: "The Lighthouse", type: ChannelType.PublicThread });
}
