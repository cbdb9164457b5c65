/**
 * Telegram's errors in the core's words (src/render/delivery-error.ts). The one place that
 * reads Bot API errors: the outbox asks it about 429s, 403s and no-op edits, the surface maps
 * (and logs) what a call threw here, once. It knows errors by shape (telegraf's
 * `TelegramError`, or a raw `{ok: false, error_code, description, parameters}` answer), so
 * neither it nor the outbox imports telegraf.
 */
import {
  DeliveryError,
  type DeliveryErrorKind,
  type DeliveryLog,
  isNetworkFailure,
} from "../../src/render/delivery-error.ts";

export type ChatId = number | string;

/** The chat blocked the bot, kicked it, or otherwise forbids it to write (HTTP 403). */
export class ChatBlockedError extends Error {
  override readonly name = "ChatBlockedError";
  readonly chatId: ChatId;

  constructor(chatId: ChatId, options?: ErrorOptions) {
    super(`Telegram chat ${chatId} does not accept messages from the bot (403)`, options);
    this.chatId = chatId;
  }
}

/** `close()` was called on the outbox; it takes no new calls. */
export class OutboxClosedError extends Error {
  override readonly name = "OutboxClosedError";

  constructor() {
    super("TelegramOutbox is closed");
  }
}

/** The parts of a Bot API error the bot acts on. */
export interface BotApiError {
  code: number;
  description: string;
  /** 429: seconds to wait (`parameters.retry_after`). */
  retryAfterS?: number;
}

/** A Bot API error read from telegraf's `TelegramError` or a raw answer; undefined for anything else. */
export function readTelegramError(error: unknown): BotApiError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as { code?: unknown; error_code?: unknown; parameters?: unknown; description?: unknown };
  // Node's system errors carry string codes ("ECONNRESET"); only numeric codes are Bot API answers.
  const code = typeof e.code === "number" ? e.code : typeof e.error_code === "number" ? e.error_code : undefined;
  if (code === undefined) return undefined;
  const description = typeof e.description === "string" ? e.description : "";
  const retryAfter = (e.parameters as { retry_after?: unknown } | null | undefined)?.retry_after;
  return typeof retryAfter === "number" ? { code, retryAfterS: retryAfter, description } : { code, description };
}

/** 400 "message is not modified": an edit to the text the message shows already. */
export function isNotModified(api: BotApiError | undefined): boolean {
  return api?.code === 400 && /message is not modified/i.test(api.description);
}

/**
 * Whether Telegram refused to take an upload as a photo (a 400: PHOTO_INVALID_DIMENSIONS,
 * IMAGE_PROCESS_FAILED, a chat that allows no photos...). A document may still go through.
 */
export function isPhotoRefused(error: unknown): boolean {
  return readTelegramError(error)?.code === 400;
}

/** 400s that say the chat or the message is no longer there (or the group moved to a supergroup). */
const GONE =
  /chat not found|message to edit not found|message to delete not found|MESSAGE_ID_INVALID|group chat was upgraded|chat was deleted/i;
/** 400s that say the bot may not write there (muted, or a member without the right). */
const NO_RIGHTS = /not enough rights|have no rights|need administrator rights|CHAT_WRITE_FORBIDDEN|_FORBIDDEN\b/i;

/**
 * What a Telegram error means:
 * - forbidden: 403 (blocked by the user, kicked from the group; `ChatBlockedError`), or a 400
 *   saying the bot has no right to write there;
 * - gone: 400 "chat not found", "message to edit not found" and the like;
 * - rate-limited: 429 (the outbox waits these out; this is one it gave up on);
 * - transient: 5xx, network failures and timeouts, an outbox closing for shutdown;
 * - other: everything else (a refused request, a bug).
 * A `DeliveryError` keeps its kind.
 */
export function telegramErrorKind(error: unknown): DeliveryErrorKind {
  if (error instanceof DeliveryError) return error.kind;
  if (error instanceof ChatBlockedError) return "forbidden";
  if (error instanceof OutboxClosedError) return "transient";
  const api = readTelegramError(error);
  if (api === undefined) return isNetworkFailure(error) ? "transient" : "other";
  if (api.code === 429) return "rate-limited";
  if (api.code === 403) return "forbidden";
  if (api.code >= 500) return "transient";
  if (api.code === 400 && GONE.test(api.description)) return "gone";
  if (api.code === 400 && NO_RIGHTS.test(api.description)) return "forbidden";
  return "other";
}

/**
 * Map what a Telegram call threw (`action` in `chatId`) to a `DeliveryError`, and log it
 * once, here. A chat that blocked the bot was logged by the outbox when it answered 403
 * (`onBlocked`), so the calls it refuses after that are not logged again. An error mapped
 * already passes through unchanged and unlogged.
 */
export function telegramDeliveryError(
  error: unknown,
  where: { chatId: ChatId; action: string },
  log: DeliveryLog,
): DeliveryError {
  if (error instanceof DeliveryError) return error;
  const kind = telegramErrorKind(error);
  const message = `telegram chat ${where.chatId}: ${where.action} failed: ${kind} (${detail(error)})`;
  if (!(error instanceof ChatBlockedError)) log(message);
  return new DeliveryError(kind, "telegram", message, { cause: error });
}

/** Code and Telegram's description; telegraf already redacts the token from network errors. */
function detail(error: unknown): string {
  const api = readTelegramError(error);
  if (api !== undefined) return `${api.code} ${api.description}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${typeof code === "string" ? ` ${code}` : ""}: ${error.message}`;
  }
  return String(error);
}
