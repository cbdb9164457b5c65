/**
 * Why a chat platform did not take what a surface sent, in the core's words. Each
 * platform maps its own errors to these kinds in one file (adapters/<platform>/errors.ts),
 * once, where its surface calls the platform; the core never sees a discord.js or
 * telegraf error. `describeError` (commands/dispatch.ts) decides what a reader sees.
 */

/**
 * - rate-limited: the platform asked us to slow down, and waiting it out did not help in time;
 * - gone: the chat, thread or message no longer exists (deleted, or a chat that moved);
 * - forbidden: the bot may not do this there (a missing permission, blocked, kicked);
 * - transient: a network failure, a timeout or a server error: trying again later may work;
 * - other: anything else (a refused request body, a bug).
 */
export type DeliveryErrorKind = "rate-limited" | "gone" | "forbidden" | "transient" | "other";

/** Operator messages (never secrets): where a mapped error is logged, once. */
export type DeliveryLog = (message: string) => void;

export class DeliveryError extends Error {
  override readonly name = "DeliveryError";
  readonly kind: DeliveryErrorKind;
  /** The platform that refused ("discord", "telegram"). */
  readonly platform: string;
  /** forbidden: the permission a moderator must grant, in the platform's own words, when known. */
  readonly permission: string | undefined;

  /** `message` says what failed and how (codes, the platform's description); never a secret. */
  constructor(
    kind: DeliveryErrorKind,
    platform: string,
    message: string,
    options: { cause?: unknown; permission?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.platform = platform;
    this.permission = options.permission;
  }
}

/** The neutral kind of a surface's error, or undefined for an error that did not come from a platform. */
export function deliveryErrorKind(error: unknown): DeliveryErrorKind | undefined {
  return error instanceof DeliveryError ? error.kind : undefined;
}

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
]);
const NETWORK_NAMES = new Set(["AbortError", "TimeoutError", "ConnectTimeoutError", "SocketError"]);
/** node-fetch's FetchError types for a failed connection or a timeout (telegraf uses node-fetch). */
const FETCH_ERROR_TYPES = new Set(["system", "request-timeout", "body-timeout"]);

/**
 * Whether `error` (or one of its causes) is a network failure or a timeout, as Node's fetch
 * (undici), node-fetch and the sockets below them report one. Platform clients wrap these
 * differently; the codes are the same everywhere.
 */
export function isNetworkFailure(error: unknown, depth = 0): boolean {
  if (typeof error !== "object" || error === null || depth > 3) return false;
  const { name, code, type, cause } = error as { name?: unknown; code?: unknown; type?: unknown; cause?: unknown };
  if (typeof name === "string" && NETWORK_NAMES.has(name)) return true;
  if (name === "FetchError" && typeof type === "string" && FETCH_ERROR_TYPES.has(type)) return true;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || code.startsWith("UND_ERR_"))) return true;
  if (error instanceof TypeError && error.message === "fetch failed") return true;
  return isNetworkFailure(cause, depth + 1);
}
