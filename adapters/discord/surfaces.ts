/**
 * Discord surfaces from a conversation key (`discord:<channel id>`) and the bot's REST
 * client alone: no gateway connection and nothing held in memory, so any process that
 * has the bot token (a worker on another machine, say) can stream into any thread.
 */
import { type APIChannel, ChannelType, type REST, Routes } from "discord.js";
import type { Locale } from "../../src/i18n/locale.ts";
import type { DeliveryLog } from "../../src/render/delivery-error.ts";
import type { AudienceResolver } from "../../src/story/ports/audience.ts";
import type { WorkspaceSettingsStore } from "../../src/story/workspace-settings.ts";
import { DiscordSurface } from "./discord-surface.ts";
import { discordDeliveryError } from "./errors.ts";

const PREFIX = "discord:";

/** The channel (or thread) id of a `discord:<channel id>` conversation key, if it is one. */
export function discordChannelId(conversationKey: string): string | undefined {
  if (!conversationKey.startsWith(PREFIX)) return undefined;
  const id = conversationKey.slice(PREFIX.length);
  // Snowflakes: up to 20 decimal digits.
  return /^\d{1,20}$/.test(id) ? id : undefined;
}

/**
 * The surface of a Discord conversation. `rest` is a `REST` with the bot token set: a
 * logged-in client's `client.rest`, or `new REST({ api }).setToken(token)` in a process
 * without a gateway connection. Mapped delivery errors are logged through `log`.
 */
export function discordSurfaceFor(
  rest: REST,
  conversationKey: string,
  locale: Locale,
  log: DeliveryLog,
): DiscordSurface {
  const channelId = discordChannelId(conversationKey);
  if (channelId === undefined) throw new RangeError(`not a Discord conversation: ${conversationKey}`);
  return new DiscordSurface(rest, channelId, locale, log);
}

/** Channels a bot can post messages in (text-based, as discord.js's `isTextBased` with `send`). */
const SENDABLE: ReadonlySet<ChannelType> = new Set([
  ChannelType.GuildText,
  ChannelType.DM,
  ChannelType.GuildAnnouncement,
  ChannelType.GuildVoice,
  ChannelType.GuildStageVoice,
  ChannelType.PublicThread,
  ChannelType.PrivateThread,
  ChannelType.AnnouncementThread,
]);

/**
 * The guild of each channel stories are written to (`"dm"` outside one): a channel never
 * moves, so it is read over REST once per process, or learnt from an interaction, and
 * looking a story's audience up costs no request of the bot's budget after that. The
 * oldest are forgotten first beyond `max`.
 */
export class ChannelGuilds {
  private readonly known = new Map<string, string>();

  constructor(private readonly max = 50_000) {}

  get(channelId: string): string | undefined {
    return this.known.get(channelId);
  }

  /** Remember a channel's guild, if the bot can post there. */
  learn(channelId: string, type: ChannelType, guildId: string): void {
    if (!SENDABLE.has(type)) return;
    this.known.delete(channelId);
    this.known.set(channelId, guildId);
    for (const key of this.known.keys()) {
      if (this.known.size <= this.max) break;
      this.known.delete(key);
    }
  }
}

/**
 * Where Discord stories are shown, for the audience registry: the thread's surface in its
 * server's language, always voting. The channel is read over REST (its server's settings
 * apply), once per process (`channels`), so a worker with no gateway registers it too.
 */
export function discordAudiences(
  rest: REST,
  settings: Pick<WorkspaceSettingsStore, "get">,
  log: DeliveryLog,
  channels: ChannelGuilds = new ChannelGuilds(),
): AudienceResolver {
  return async (conversationId) => {
    const channelId = discordChannelId(conversationId);
    if (channelId === undefined) return undefined;
    let guildId = channels.get(channelId);
    if (guildId === undefined) {
      let channel: APIChannel;
      try {
        channel = (await rest.get(Routes.channel(channelId))) as APIChannel;
      } catch (error) {
        // A deleted thread or a lost permission: the chapter is still written, unseen.
        discordDeliveryError(error, { channelId, action: "read channel" }, log);
        return undefined;
      }
      if (!SENDABLE.has(channel.type)) return undefined;
      guildId = "guild_id" in channel && typeof channel.guild_id === "string" ? channel.guild_id : "dm";
      channels.learn(channelId, channel.type, guildId);
    }
    const server = await settings.get("discord", guildId);
    return {
      surface: discordSurfaceFor(rest, conversationId, server.locale, log),
      locale: server.locale,
      voting: { windowSeconds: server.voteSeconds, closeWhenPreviousVotersReturn: true },
    };
  };
}
