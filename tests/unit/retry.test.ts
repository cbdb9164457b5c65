import { describe, expect, it } from "vitest";
import {
  isRetryableStatus,
  kindForStatus,
  parseRetryAfter,
  RETRY_DEFAULTS,
  retryDelayMs,
} from "../../src/llm/retry.ts";

const noJitter = () => 0.999_999;
const fullJitterFloor = () => 0;

describe("retryDelayMs", () => {
  it("doubles the step with every retry, starting from the base", () => {
    const delays = [0, 1, 2, 3].map((retry) => retryDelayMs(retry, { baseMs: 100, random: noJitter }));
    expect(delays).toEqual([100, 200, 400, 800]);
  });

  it("never waits less than half the step, so jitter cannot collapse the backoff to zero", () => {
    expect(retryDelayMs(0, { baseMs: 100, random: fullJitterFloor })).toBe(50);
    expect(retryDelayMs(3, { baseMs: 100, random: fullJitterFloor })).toBe(400);
  });

  it("stays within [step/2, step] for random jitter", () => {
    for (let i = 0; i < 200; i++) {
      const d = retryDelayMs(2, { baseMs: 100 });
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });

  it("is capped however many retries have happened", () => {
    expect(retryDelayMs(30, { baseMs: 250, capMs: 8_000, random: noJitter })).toBe(8_000);
    expect(retryDelayMs(100, { random: noJitter })).toBe(RETRY_DEFAULTS.capMs);
  });

  it("uses the 250 ms base and 8 s cap by default", () => {
    expect(retryDelayMs(0, { random: noJitter })).toBe(250);
    expect(retryDelayMs(5, { random: noJitter })).toBe(8_000);
  });

  it("honours a server's retry-after instead of the backoff", () => {
    expect(retryDelayMs(3, { baseMs: 100, retryAfterMs: 1_500, random: noJitter })).toBe(1_500);
    expect(retryDelayMs(0, { baseMs: 100, retryAfterMs: 0 })).toBe(0);
  });

  it("caps a retry-after longer than the cap", () => {
    expect(retryDelayMs(0, { capMs: 8_000, retryAfterMs: 120_000 })).toBe(8_000);
  });
});

describe("isRetryableStatus", () => {
  it.each([408, 429, 500, 502, 503, 504])("retries %i", (status) => {
    expect(isRetryableStatus(status)).toBe(true);
  });

  it.each([400, 401, 403, 404, 409, 422])("does not retry %i", (status) => {
    expect(isRetryableStatus(status)).toBe(false);
  });
});

describe("parseRetryAfter", () => {
  it("reads retry-after-ms before retry-after", () => {
    expect(parseRetryAfter(new Headers({ "retry-after-ms": "150", "retry-after": "3" }))).toBe(150);
  });

  it("reads retry-after as seconds", () => {
    expect(parseRetryAfter({ "retry-after": "2" })).toBe(2_000);
    expect(parseRetryAfter({ "retry-after": "0.5" })).toBe(500);
  });

  it("reads retry-after as an HTTP date relative to now", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(parseRetryAfter({ "retry-after": "Wed, 01 Jan 2025 00:00:05 GMT" }, now)).toBe(5_000);
    expect(parseRetryAfter({ "retry-after": "Tue, 31 Dec 2024 23:59:00 GMT" }, now)).toBe(0);
  });

  it("returns undefined when the headers are absent or unreadable", () => {
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter(new Headers())).toBeUndefined();
    expect(parseRetryAfter({ "retry-after": "soon" })).toBeUndefined();
  });
});

describe("kindForStatus", () => {
  it("names the failure of every status family the same way for chat, images and fine-tuning", () => {
    expect([401, 403, 408, 429, 500, 503, 400, 404, 422].map(kindForStatus)).toEqual([
      "auth",
      "auth",
      "timeout",
      "rate_limited",
      "server",
      "server",
      "bad_request",
      "bad_request",
      "bad_request",
    ]);
  });
});
