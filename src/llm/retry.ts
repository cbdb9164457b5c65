/**
 * Retry policy for model calls, kept pure so it can be tested without a network.
 * The SDK's own retries are switched off: this is the one place that decides.
 */

export interface BackoffOptions {
  /** Delay before the first retry, before jitter (default 250 ms). */
  baseMs?: number;
  /** No single wait is longer than this, retry-after included (default 8 s). */
  capMs?: number;
  /** What the server asked for through `retry-after` / `retry-after-ms`, if anything. */
  retryAfterMs?: number | undefined;
  /** Source of jitter in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

export const RETRY_DEFAULTS = { baseMs: 250, capMs: 8_000 } as const satisfies Required<
  Pick<BackoffOptions, "baseMs" | "capMs">
>;

/**
 * How long to wait before retry number `retry` (0 for the first retry).
 * Exponential growth with "equal jitter": half the step is fixed, half random, so
 * clients that failed together do not all come back at the same instant, yet the
 * wait never collapses to zero. A server's retry-after wins, within the cap.
 */
export function retryDelayMs(retry: number, options: BackoffOptions = {}): number {
  const baseMs = options.baseMs ?? RETRY_DEFAULTS.baseMs;
  const capMs = options.capMs ?? RETRY_DEFAULTS.capMs;
  if (options.retryAfterMs !== undefined && Number.isFinite(options.retryAfterMs)) {
    return Math.min(Math.max(0, options.retryAfterMs), capMs);
  }
  const step = Math.min(capMs, baseMs * 2 ** Math.max(0, retry));
  const random = options.random ?? Math.random;
  return Math.round(step / 2 + (step / 2) * random());
}

/**
 * Whether an HTTP status is worth retrying: rate limits, request timeouts and server
 * errors are; the rest (bad request, auth, not found, validation) will fail again.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * The wait a server asked for, in ms: `retry-after-ms` (OpenAI's, more precise) first,
 * then `retry-after` as seconds or an HTTP date. Undefined when absent or unreadable.
 */
export function parseRetryAfter(
  headers: Headers | Record<string, string | undefined> | undefined,
  now: number = Date.now(),
): number | undefined {
  if (headers === undefined) return undefined;
  const get = (name: string): string | null | undefined =>
    headers instanceof Headers ? headers.get(name) : headers[name];
  const ms = get("retry-after-ms");
  if (ms != null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const after = get("retry-after");
  if (after == null || after.trim() === "") return undefined;
  if (Number.isFinite(Number(after))) return Math.max(0, Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The neutral failure kind of an HTTP error status (retried or not, see `isRetryableStatus`). */
export function kindForStatus(status: number): "auth" | "timeout" | "rate_limited" | "server" | "bad_request" {
  if (status === 401 || status === 403) return "auth";
  if (status === 408) return "timeout";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "server";
  return "bad_request";
}
