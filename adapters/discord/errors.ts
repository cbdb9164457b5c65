/**
 * Discord's errors in the core's words (src/render/delivery-error.ts). The one place that
 * reads discord.js / @discordjs/rest errors: surfaces and the adapter map what a call threw
 * here, once, and the mapping logs it.
 */
import { DiscordAPIError, HTTPError, RateLimitError } from "discord.js";
import {
  DeliveryError,
  type DeliveryErrorKind,
  type DeliveryLog,
  isNetworkFailure,
} from "../../src/render/delivery-error.ts";

/** Discord error codes the surface and the adapter care about. */
export const DiscordErrorCode = {
  UnknownChannel: 10003,
  UnknownMessage: 10008,
  MissingAccess: 50001,
  MissingPermissions: 50013,
  ThreadArchived: 50083,
} as const;

/**
 * What a Discord error means:
 * - forbidden: 50013 Missing Permissions, 50001 Missing Access, any other 403 (tell a moderator);
 * - gone: 10003 Unknown Channel, 10008 Unknown Message (the thread or message was deleted);
 * - rate-limited: 429 (@discordjs/rest normally waits these out itself);
 * - transient: 5xx, 408, network failures and timeouts (try again later);
 * - other: everything else (a refused body, a bug...).
 * A `DeliveryError` keeps its kind.
 */
export function discordErrorKind(error: unknown): DeliveryErrorKind {
  if (error instanceof DeliveryError) return error.kind;
  if (error instanceof DiscordAPIError) {
    switch (error.code) {
      case DiscordErrorCode.MissingPermissions:
      case DiscordErrorCode.MissingAccess:
        return "forbidden";
      case DiscordErrorCode.UnknownChannel:
      case DiscordErrorCode.UnknownMessage:
        return "gone";
      default:
        return statusKind(error.status);
    }
  }
  if (error instanceof RateLimitError) return "rate-limited";
  if (error instanceof HTTPError) return statusKind(error.status);
  return isNetworkFailure(error) ? "transient" : "other";
}

function statusKind(status: number): DeliveryErrorKind {
  if (status === 429) return "rate-limited";
  if (status === 403) return "forbidden";
  if (status >= 500 || status === 408) return "transient";
  return "other";
}

/** 50083 "Thread is archived": unarchive the thread, then send again. */
export function isThreadArchived(error: unknown): boolean {
  return error instanceof DiscordAPIError && error.code === DiscordErrorCode.ThreadArchived;
}

/**
 * Map what a Discord call threw (`action` in `channelId`) to a `DeliveryError`, and log it
 * once, here. A forbidden write names `permission` (the one a moderator must grant) when
 * the caller knows it. An error mapped already passes through unchanged and unlogged.
 */
export function discordDeliveryError(
  error: unknown,
  where: { channelId: string; action: string; permission?: string | undefined },
  log: DeliveryLog,
): DeliveryError {
  if (error instanceof DeliveryError) return error;
  const kind = discordErrorKind(error);
  const message = `discord channel ${where.channelId}: ${where.action} failed: ${kind} (${detail(error)})`;
  log(message);
  const permission = kind === "forbidden" ? where.permission : undefined;
  return new DeliveryError(kind, "discord", message, {
    cause: error,
    ...(permission === undefined ? {} : { permission }),
  });
}

/** Status, code and Discord's message; no URL (an interaction's carries its token). */
function detail(error: unknown): string {
  if (error instanceof DiscordAPIError) return `${error.status} ${error.code} ${error.message}`;
  if (error instanceof RateLimitError) return `429 retry after ${error.retryAfter} ms`;
  if (error instanceof HTTPError) return `${error.status} ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${typeof code === "string" ? ` ${code}` : ""}: ${error.message}`;
  }
  return String(error);
}
