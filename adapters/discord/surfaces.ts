/**
 * Discord surfaces from a conversation key (`discord:<channel id>`) and the bot's REST
 * client alone: no gateway connection and nothing held in memory, so any process that
 * has the bot token (a worker on another machine, say) can stream into any thread.
 */
import type { REST } from "discord.js";
import type { Locale } from "../../src/i18n/locale.ts";
import type { DeliveryLog } from "../../src/render/delivery-error.ts";
import { DiscordSurface } from "./discord-surface.ts";

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
