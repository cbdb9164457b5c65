/**
 * Telegram surfaces from a conversation key (`telegram:<chat id>`), the bot's `Telegram`
 * client and the process's outbox alone: no update loop and nothing from the adapter, so
 * any process that has the bot token (a worker on another machine, say) can stream into
 * any chat. The chat's kind follows from its id (negative: a group or a channel).
 */
import type { Redis } from "ioredis";
import type { Telegram } from "telegraf";
import type { Locale } from "../../src/i18n/locale.ts";
import type { DeliveryLog } from "../../src/render/delivery-error.ts";
import type { AudienceResolver } from "../../src/story/ports/audience.ts";
import type { WorkspaceSettingsStore } from "../../src/story/workspace-settings.ts";
import { chatKindOf, TelegramOutbox } from "./outbox.ts";
import { RedisTelegramBudget, telegramRedisPrefix } from "./redis-budget.ts";
import { TelegramSurface } from "./telegram-surface.ts";

const PREFIX = "telegram:";

/** The chat id of a `telegram:<chat id>` conversation key, if it is one. */
export function telegramChatId(conversationKey: string): number | undefined {
  if (!conversationKey.startsWith(PREFIX)) return undefined;
  const text = conversationKey.slice(PREFIX.length);
  const id = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(id) && id !== 0 ? id : undefined;
}

/**
 * The surface of a Telegram conversation. `telegram` is a client with the bot token (a
 * running bot's `bot.telegram`, or `new Telegram(token, { apiRoot })` in a process without
 * updates); `outbox` is the one outbox of this process for that bot, which holds its flood
 * limits and which chats refuse drafts. Mapped delivery errors are logged through `log`.
 */
export function telegramSurfaceFor(
  telegram: Telegram,
  outbox: TelegramOutbox,
  conversationKey: string,
  locale: Locale,
  log: DeliveryLog,
): TelegramSurface {
  const chatId = telegramChatId(conversationKey);
  if (chatId === undefined) throw new RangeError(`not a Telegram conversation: ${conversationKey}`);
  return new TelegramSurface(telegram, outbox, chatId, locale, log);
}

/**
 * Where Telegram stories are shown, for the audience registry: each chat's surface in its
 * language, and a vote in groups. Needs no update loop, so a worker registers it too.
 */
export function telegramAudiences(
  telegram: Telegram,
  outbox: TelegramOutbox,
  settings: Pick<WorkspaceSettingsStore, "get">,
  log: DeliveryLog,
): AudienceResolver {
  return async (conversationId) => {
    const chatId = telegramChatId(conversationId);
    if (chatId === undefined) return undefined;
    const chat = await settings.get("telegram", String(chatId));
    return {
      surface: telegramSurfaceFor(telegram, outbox, conversationId, chat.locale, log),
      locale: chat.locale,
      ...(chatKindOf(chatId) === "group" ? { voting: { windowSeconds: chat.voteSeconds } } : {}),
    };
  };
}

/** What a process of the bot shares with its other processes (REDIS_URL). */
export interface TelegramShared {
  redis: Redis;
  /** Key prefix; default `telegramRedisPrefix(token)`. Every process of the bot must use the same. */
  prefix?: string;
}

/**
 * The one outbox of a process for the bot with `token`, for `telegramSurfaceFor`. With
 * `shared`, its flood limits are taken together with every other process of the bot (fronts
 * and workers) from Redis; without, this process paces alone.
 */
export function telegramOutboxFor(
  token: string,
  log: (message: string) => void,
  shared?: TelegramShared,
): TelegramOutbox {
  return new TelegramOutbox({
    onBlocked: (chatId) => log(`telegram chat ${chatId} blocked the bot: its stories pause`),
    ...(shared === undefined
      ? {}
      : {
          shared: new RedisTelegramBudget(shared.redis, { prefix: shared.prefix ?? telegramRedisPrefix(token), log }),
        }),
  });
}
