import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  ChatBlockedError,
  chatKindOf,
  OutboxClosedError,
  type SharedBudget,
  TelegramOutbox,
} from "../../adapters/telegram/outbox.ts";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});

afterEach(() => {
  vi.useRealTimers();
});

interface Start {
  chat: string;
  n: number;
  at: number;
}

/** Calls that record when they start and take `ms` of (fake) time. */
function recorder() {
  const starts: Start[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const call =
    (chat: string, n: number, ms = 0) =>
    async (): Promise<string> => {
      starts.push({ chat, n, at: Date.now() });
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      inFlight--;
      return `${chat}#${n}`;
    };
  const times = (chat?: string) => starts.filter((s) => chat === undefined || s.chat === chat).map((s) => s.at);
  return { starts, call, times, maxInFlight: () => maxInFlight };
}

/** Shaped like telegraf's `TelegramError`. */
function telegramError(code: number, description: string, retryAfter?: number): Error {
  const parameters = retryAfter === undefined ? {} : { retry_after: retryAfter };
  return Object.assign(new Error(`${code}: ${description}`), { code, description, parameters });
}

/** Observe a promise's outcome without leaving a rejection unhandled while timers run. */
function outcome<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/** At most `limit` of the sorted `times` fall in any window of `spanMs`. */
function expectAtMostPerWindow(times: number[], limit: number, spanMs: number): void {
  const sorted = [...times].sort((a, b) => a - b);
  for (let i = 0; i + limit < sorted.length; i++) {
    expect((sorted[i + limit] as number) - (sorted[i] as number)).toBeGreaterThanOrEqual(spanMs);
  }
}

describe("per-chat limits", () => {
  it("runs one chat's calls in order, one at a time, each a second after the previous one completed", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    const results = [300, 1_500, 0, 0].map((ms, n) => outbox.send("a", "private", rec.call("a", n, ms)));

    await vi.advanceTimersByTimeAsync(6_000);

    expect(await Promise.all(results)).toEqual(["a#0", "a#1", "a#2", "a#3"]);
    expect(rec.starts.map((s) => s.n)).toEqual([0, 1, 2, 3]);
    // Spacing counts from completion (Telegram counts arrivals, which lie between start and completion).
    expect(rec.times()).toEqual([0, 1_300, 3_800, 4_800]);
    expect(rec.maxInFlight()).toBe(1);
  });

  it("starts at most 20 calls to a group in any sliding minute", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    for (let n = 0; n < 25; n++) void outbox.send(-100, "group", rec.call("g", n));

    await vi.advanceTimersByTimeAsync(70_000);

    const times = rec.times();
    expect(times).toHaveLength(25);
    expect(times.slice(18, 23)).toEqual([18_000, 19_000, 60_000, 61_000, 62_000]);
    expectAtMostPerWindow(times, 20, 60_000);
  });

  it("does not apply the group minute limit to a private chat", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    for (let n = 0; n < 25; n++) void outbox.send(7, "private", rec.call("p", n));

    await vi.advanceTimersByTimeAsync(30_000);

    expect(rec.times().at(-1)).toBe(24_000);
  });
});

describe("global budget", () => {
  async function fortyChatsWithFiveSendsEach() {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    for (let chat = 0; chat < 40; chat++) {
      for (let n = 0; n < 5; n++) void outbox.send(chat, "private", rec.call(String(chat), n));
    }
    await vi.advanceTimersByTimeAsync(20_000);
    expect(rec.starts).toHaveLength(200);
    return rec;
  }

  it("never starts more than 30 calls in any sliding second across all chats", async () => {
    const rec = await fortyChatsWithFiveSendsEach();
    expectAtMostPerWindow(rec.times(), 30, 1_000);
  });

  it("starts every chat's first message before any chat's third when the budget binds", async () => {
    const rec = await fortyChatsWithFiveSendsEach();
    const at = (n: number) => rec.starts.filter((s) => s.n === n).map((s) => s.at);
    expect(Math.max(...at(0))).toBe(1_000);
    expect(Math.max(...at(0))).toBeLessThan(Math.min(...at(2)));
  });

  it("serves a chat that arrives late before busy chats whose next call became eligible after it", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    for (let chat = 0; chat < 35; chat++) {
      for (let n = 0; n < 10; n++) void outbox.send(chat, "private", rec.call(String(chat), n));
    }
    await vi.advanceTimersByTimeAsync(2_500);
    void outbox.send("late", "private", rec.call("late", 0));

    await vi.advanceTimersByTimeAsync(2_000);

    // At 2.5 s the budget is spent; at 3 s the newcomer, eligible since 2.5 s, goes before every chat
    // that only became eligible at 3 s, although those have been queued all along.
    expect(rec.times("late")).toEqual([3_000]);
  });
});

describe("429 Too Many Requests", () => {
  it("pauses only that chat for retry_after, then retries the same call and resolves with its result", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    let attempts = 0;
    const flaky = async () => {
      rec.starts.push({ chat: "a", n: 0, at: Date.now() });
      if (attempts++ === 0) throw telegramError(429, "Too Many Requests: retry after 3", 3);
      return "delivered";
    };
    const first = outbox.send("a", "private", flaky);
    const second = outbox.send("a", "private", rec.call("a", 1));
    for (let n = 0; n < 3; n++) void outbox.send("b", "private", rec.call("b", n));

    await vi.advanceTimersByTimeAsync(5_000);

    expect(await first).toBe("delivered");
    expect(await second).toBe("a#1");
    expect(rec.times("a")).toEqual([0, 3_000, 4_000]);
    expect(rec.times("b")).toEqual([0, 1_000, 2_000]);
    expect(outbox.stats().rateLimited).toBe(1);
  });

  it("rejects with the Telegram error once maxRetries retries were refused too", async () => {
    const outbox = new TelegramOutbox({ maxRetries: 2 });
    const refused = { ok: false, error_code: 429, description: "Too Many Requests", parameters: { retry_after: 1 } };
    const starts: number[] = [];
    const result = outcome(
      outbox.send("a", "private", async () => {
        starts.push(Date.now());
        throw refused;
      }),
    );

    await vi.advanceTimersByTimeAsync(5_000);

    expect(await result).toEqual({ error: refused });
    expect(starts).toEqual([0, 1_000, 2_000]);
    expect(outbox.stats().rateLimited).toBe(3);
  });
});

describe("403 Forbidden", () => {
  it("rejects the call and the chat's queued calls, refuses later ones, calls onBlocked once; other chats go on", async () => {
    const onBlocked = vi.fn();
    const outbox = new TelegramOutbox({ onBlocked });
    const rec = recorder();
    const kicked = telegramError(403, "Forbidden: bot was blocked by the user");
    const failed = outcome(
      outbox.send(1, "private", async () => {
        throw kicked;
      }),
    );
    const queued = [
      outcome(outbox.send(1, "private", rec.call("1", 1))),
      outcome(outbox.edit(1, "private", "1:5", "x", rec.call("1", 2))),
    ];
    const other = [0, 1].map((n) => outbox.send(2, "private", rec.call("2", n)));

    await vi.advanceTimersByTimeAsync(3_000);

    const first = await failed;
    expect(first).toEqual({ error: expect.any(ChatBlockedError) });
    expect("error" in first && first.error instanceof ChatBlockedError && first.error.cause).toBe(kicked);
    for (const result of await Promise.all(queued)) expect(result).toEqual({ error: expect.any(ChatBlockedError) });
    await expect(outbox.send(1, "private", rec.call("1", 3))).rejects.toBeInstanceOf(ChatBlockedError);
    await expect(outbox.edit("1", "private", "1:5", "y", rec.call("1", 4))).rejects.toMatchObject({ chatId: "1" });
    expect(outbox.isBlocked(1)).toBe(true);
    expect(onBlocked).toHaveBeenCalledTimes(1);
    expect(onBlocked).toHaveBeenCalledWith(1);
    expect(rec.times("1")).toEqual([]);
    expect(await Promise.all(other)).toEqual(["2#0", "2#1"]);
  });

  it("accepts calls to the chat again after unblock", async () => {
    const outbox = new TelegramOutbox();
    const blocked = outcome(
      outbox.send(1, "private", async () => {
        throw telegramError(403, "Forbidden: bot was kicked from the group chat");
      }),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(await blocked).toEqual({ error: expect.any(ChatBlockedError) });

    outbox.unblock(1);
    const again = outbox.send(1, "private", async () => "welcome back");
    await vi.advanceTimersByTimeAsync(1_000);

    expect(outbox.isBlocked(1)).toBe(false);
    expect(await again).toBe("welcome back");
  });
});

describe("other errors", () => {
  it("rejects only the failing call; the chat's queue goes on", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    const notFound = telegramError(400, "Bad Request: message to edit not found");
    const failed = outcome(
      outbox.send("a", "private", async () => {
        throw notFound;
      }),
    );
    const next = outbox.send("a", "private", rec.call("a", 1));

    await vi.advanceTimersByTimeAsync(2_000);

    expect(await failed).toEqual({ error: notFound });
    expect(await next).toBe("a#1");
    expect(rec.times("a")).toEqual([1_000]);
  });
});

describe("edits", () => {
  it("makes one call with the last text when three edits of a message wait; the replaced ones resolve 'skipped'", async () => {
    const outbox = new TelegramOutbox();
    const texts: string[] = [];
    const editTo = (text: string) => outbox.edit("a", "private", "a:1", text, async () => texts.push(text));
    void outbox.send("a", "private", async () => "posted");
    const edits = [editTo("Once"), editTo("Once upon"), editTo("Once upon a time")];

    await vi.advanceTimersByTimeAsync(2_000);

    expect(texts).toEqual(["Once upon a time"]);
    expect(await Promise.all(edits)).toEqual(["skipped", "skipped", 1]);
    expect(outbox.stats()).toMatchObject({ sent: 2, coalesced: 2 });
  });

  it("resolves 'skipped' without a call when the message already shows the text", async () => {
    const outbox = new TelegramOutbox();
    const call = vi.fn(async () => "edited");
    outbox.remember("a:1", "Chapter 1");

    expect(await outbox.edit("a", "private", "a:1", "Chapter 1", call)).toBe("skipped");
    const edited = outbox.edit("a", "private", "a:1", "Chapter 1, revised", call);
    await vi.advanceTimersByTimeAsync(0);
    expect(await edited).toBe("edited");
    expect(await outbox.edit("a", "private", "a:1", "Chapter 1, revised", call)).toBe("skipped");

    expect(call).toHaveBeenCalledTimes(1);
    expect(outbox.stats().skipped).toBe(2);
  });

  it("still sends an edit back to the shown text while another edit of that message is in flight", async () => {
    const outbox = new TelegramOutbox();
    const texts: string[] = [];
    const editTo = (text: string) =>
      outbox.edit("a", "private", "a:1", text, async () => {
        texts.push(text);
        await new Promise((resolve) => setTimeout(resolve, 500));
      });
    outbox.remember("a:1", "A");
    void editTo("B");
    const back = editTo("A");

    await vi.advanceTimersByTimeAsync(2_000);

    expect(texts).toEqual(["B", "A"]);
    expect(await back).toBeUndefined();
  });

  it("resolves 'skipped' on Telegram's 400 'message is not modified' and does not send that text again", async () => {
    const outbox = new TelegramOutbox();
    const call = vi.fn(async () => {
      throw telegramError(400, "Bad Request: message is not modified: specified new message content is the same");
    });
    const edited = outbox.edit(5, "group", "5:9", "same", call);
    await vi.advanceTimersByTimeAsync(0);

    expect(await edited).toBe("skipped");
    expect(await outbox.edit(5, "group", "5:9", "same", call)).toBe("skipped");
    expect(call).toHaveBeenCalledTimes(1);
  });
});

describe("close", () => {
  it("resolves once the queued calls have run and refuses calls made after it", async () => {
    const outbox = new TelegramOutbox();
    const rec = recorder();
    for (let n = 0; n < 3; n++) void outbox.send("a", "private", rec.call("a", n));
    let closed = false;
    const closing = outbox.close().then(() => {
      closed = true;
    });

    await expect(outbox.send("b", "private", rec.call("b", 0))).rejects.toBeInstanceOf(OutboxClosedError);
    expect(outbox.stats().queued).toBe(2);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await closing;

    expect(rec.times()).toEqual([0, 1_000, 2_000]);
    expect(outbox.stats()).toMatchObject({ sent: 3, queued: 0 });
  });
});

describe("what the outbox remembers for every surface of the bot", () => {
  it("chats that refused message drafts, once each; a chat's kind comes from its id", () => {
    const outbox = new TelegramOutbox();
    expect(outbox.refusesDrafts(7)).toBe(false);
    expect(outbox.refuseDrafts(7)).toBe(true);
    expect(outbox.refuseDrafts(7)).toBe(false);
    expect(outbox.refusesDrafts(7)).toBe(true);
    expect(outbox.refusesDrafts(8)).toBe(false);
    expect(chatKindOf(7)).toBe("private");
    expect(chatKindOf(-4_000_000_001)).toBe("group");
    expect(chatKindOf(-1_001_234_567_890)).toBe("group");
  });
});

describe("TelegramOutbox under network delay", () => {
  it("never lets Telegram see two calls to a chat within a second, or 31 in a second, whatever the delays", async () => {
    const outbox = new TelegramOutbox();
    const arrivals: { chat: string; at: number }[] = [];
    // Each request reaches Telegram 0-190 ms after it starts and is answered 0-190 ms later.
    let seed = 7;
    const jitter = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return (seed % 20) * 10;
    };
    const call = (chat: string) => async () => {
      await new Promise((resolve) => setTimeout(resolve, jitter()));
      arrivals.push({ chat, at: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, jitter()));
    };
    for (let c = 0; c < 60; c++) for (let n = 0; n < 4; n++) void outbox.send(`chat${c}`, "private", call(`chat${c}`));

    await vi.advanceTimersByTimeAsync(60_000);

    expect(arrivals).toHaveLength(240);
    for (let c = 0; c < 60; c++) {
      const times = arrivals.filter((a) => a.chat === `chat${c}`).map((a) => a.at);
      for (let i = 1; i < times.length; i++) {
        expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(1_000);
      }
    }
    const all = arrivals.map((a) => a.at).sort((a, b) => a - b);
    for (let i = 0; i + 30 < all.length; i++) expect((all[i + 30] as number) - (all[i] as number)).toBeGreaterThan(999);
  });
});

describe("with a shared budget (other processes of the bot)", () => {
  /** A budget whose answers the test scripts: refusals by chat, in order; everything else is granted. */
  function scriptedBudget(refusals: Record<string, { waitMs: number; scope: "chat" | "bot" }[]>) {
    const events: string[] = [];
    const budget: SharedBudget = {
      async take(chatId) {
        const refusal = refusals[String(chatId)]?.shift();
        events.push(`take ${chatId}${refusal ? ` refused ${refusal.scope} ${refusal.waitMs}` : ""} @${Date.now()}`);
        if (refusal) return { granted: false, ...refusal };
        return {
          granted: true,
          settle: async () => {
            events.push(`settle ${chatId} @${Date.now()}`);
          },
        };
      },
      async pause(chatId, ms) {
        events.push(`pause ${chatId} ${ms} @${Date.now()}`);
      },
    };
    return { budget, events };
  }

  it("waits as long as the budget says when another process holds the chat; other chats go on", async () => {
    const { budget, events } = scriptedBudget({ a: [{ waitMs: 700, scope: "chat" }] });
    const outbox = new TelegramOutbox({ shared: budget });
    const rec = recorder();
    const a = outbox.send("a", "private", rec.call("a", 0));
    const b = outbox.send("b", "private", rec.call("b", 0));

    await vi.advanceTimersByTimeAsync(1_000);

    expect(await Promise.all([a, b])).toEqual(["a#0", "b#0"]);
    expect(rec.times("a")).toEqual([700]);
    expect(rec.times("b")).toEqual([0]);
    expect(events).toEqual(["take a refused chat 700 @0", "take b @0", "settle b @0", "take a @700", "settle a @700"]);
  });

  it("holds every chat when the bot's budget is spent, and the held chat keeps its place in line", async () => {
    const { budget } = scriptedBudget({ a: [{ waitMs: 500, scope: "bot" }] });
    const outbox = new TelegramOutbox({ shared: budget, globalPerSecond: 1 });
    const rec = recorder();
    void outbox.send("a", "private", rec.call("a", 0));
    await vi.advanceTimersByTimeAsync(100);
    void outbox.send("b", "private", rec.call("b", 0));

    await vi.advanceTimersByTimeAsync(3_000);

    // a, refused at 0 for the bot, goes at 500 before b (eligible since 100); b waits for the local second.
    expect(rec.starts.map((s) => `${s.chat}@${s.at}`)).toEqual(["a@500", "b@1500"]);
  });

  it("tells the budget about a 429, so every process pauses the chat, and settles every call it made", async () => {
    const { budget, events } = scriptedBudget({});
    const outbox = new TelegramOutbox({ shared: budget });
    let attempts = 0;
    const sent = outbox.send(9, "private", async () => {
      if (attempts++ === 0) throw telegramError(429, "Too Many Requests: retry after 2", 2);
      return "delivered";
    });

    await vi.advanceTimersByTimeAsync(3_000);

    expect(await sent).toBe("delivered");
    expect(events).toEqual(["take 9 @0", "pause 9 2000 @0", "settle 9 @0", "take 9 @2000", "settle 9 @2000"]);
  });

  it("while the bot's shared second is full, asks one call at a time; once a grant leaves room, all at once", async () => {
    // Four refusals for the bot, then a grant of the last free place, then grants with room.
    const answers: ({ waitMs: number } | { full: boolean })[] = [
      { waitMs: 100 },
      { waitMs: 100 },
      { waitMs: 100 },
      { waitMs: 100 },
      { full: true },
      { full: false },
    ];
    let asking = 0;
    const askingWhenAsked: number[] = [];
    const budget: SharedBudget = {
      async take() {
        askingWhenAsked.push(++asking);
        const answer = answers.shift() ?? { full: false };
        await new Promise((resolve) => setTimeout(resolve, 10));
        asking--;
        if ("waitMs" in answer) return { granted: false, waitMs: answer.waitMs, scope: "bot" };
        return { granted: true, full: answer.full, settle: async () => {} };
      },
      async pause() {},
    };
    const outbox = new TelegramOutbox({ shared: budget });
    const rec = recorder();
    const sends = ["a", "b", "c", "d"].map((chat) => outbox.send(chat, "private", rec.call(chat, 0)));

    await vi.advanceTimersByTimeAsync(1_000);

    expect(await Promise.all(sends)).toEqual(["a#0", "b#0", "c#0", "d#0"]);
    // Four ask at once and are refused; then one asks (granted the last place), then one
    // (granted with room to spare), then the remaining two together.
    expect(askingWhenAsked).toEqual([1, 2, 3, 4, 1, 1, 1, 2]);
    // Refused at 10 until 110; each answer takes 10 ms.
    expect(rec.times()).toEqual([120, 130, 140, 140]);
  });

  it("an edit held back by the budget is replaced by a newer edit of the same message", async () => {
    const { budget } = scriptedBudget({ a: [{ waitMs: 300, scope: "chat" }] });
    const outbox = new TelegramOutbox({ shared: budget });
    const texts: string[] = [];
    const editTo = (text: string) => outbox.edit("a", "private", "a:1", text, async () => texts.push(text));
    const first = editTo("Once");
    await vi.advanceTimersByTimeAsync(0);
    const second = editTo("Once upon a time");

    await vi.advanceTimersByTimeAsync(1_000);

    expect(texts).toEqual(["Once upon a time"]);
    expect(await Promise.all([first, second])).toEqual(["skipped", 1]);
  });
});
