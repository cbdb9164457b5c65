import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { StreamRenderer } from "../../src/render/stream-renderer.ts";
import { FakeSurface, FakeSurfaceError } from "../fakes/fake-surface.ts";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});

afterEach(() => {
  vi.useRealTimers();
});

async function finish(renderer: StreamRenderer) {
  const done = renderer.finish();
  await vi.runAllTimersAsync();
  return done;
}

/** Push `text` in chunks of `size`, `everyMs` apart, like a model stream. */
async function stream(renderer: StreamRenderer, text: string, size = 12, everyMs = 50): Promise<void> {
  for (let i = 0; i < text.length; i += size) {
    renderer.push(text.slice(i, i + size));
    await vi.advanceTimersByTimeAsync(everyMs);
  }
}

/** The parts appear in order in `text`, separated only by whitespace. */
function expectReassembles(parts: string[], text: string): void {
  let at = 0;
  for (const part of parts) {
    const found = text.indexOf(part, at);
    expect(found).toBeGreaterThanOrEqual(0);
    expect(text.slice(at, found).trim()).toBe("");
    at = found + part.length;
  }
  expect(text.slice(at).trim()).toBe("");
}

const chapter = Array.from(
  { length: 30 },
  (_, i) => `Paragraph ${i + 1}. The rain over the Bund had not stopped for three days, and Mei counted the drops.`,
).join("\n\n");

describe("StreamRenderer", () => {
  it("posts the first text immediately, without waiting for the edit interval", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("Once upon");
    await vi.advanceTimersByTimeAsync(0);
    expect(surface.calls).toMatchObject([{ kind: "post", text: "Once upon", at: 0 }]);
  });

  it("waits for non-whitespace text before posting", async () => {
    const surface = new FakeSurface();
    const renderer = new StreamRenderer(surface);
    renderer.push("\n\n");
    await vi.advanceTimersByTimeAsync(0);
    expect(surface.calls).toHaveLength(0);
    renderer.push("Title");
    await vi.advanceTimersByTimeAsync(0);
    expect(surface.callsOf("post").map((c) => c.text)).toEqual(["Title"]);
  });

  it("throttles edits of a streaming message to at least minEditIntervalMs apart and coalesces deltas", async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 4096, minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    const text = "word ".repeat(100); // 500 chars, 42 deltas over ~2.1 s
    await stream(renderer, text);
    await finish(renderer);

    const times = surface.calls.map((c) => c.at);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(1000);
    expect(surface.callsOf("edit").length).toBeGreaterThanOrEqual(2);
    expect(surface.callsOf("edit").length).toBeLessThanOrEqual(3);
    expect(surface.texts()).toEqual([text]);
  });

  it("delivers the final exact text on finish even when the last delta arrived inside the interval", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1500 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("She opened");
    await vi.advanceTimersByTimeAsync(10);
    renderer.push(" the letter.");
    const messages = await finish(renderer);
    expect(surface.texts()).toEqual(["She opened the letter."]);
    expect(messages).toEqual([{ ref: { id: "m1" }, text: "She opened the letter." }]);
    expect(surface.calls.map((c) => [c.kind, c.at])).toEqual([
      ["post", 0],
      ["edit", 1500],
    ]);
  });

  it("splits a long chapter at paragraph boundaries into messages within the limit, in order", async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    await stream(renderer, chapter, 40, 30);
    const messages = await finish(renderer);

    const texts = surface.texts();
    expect(texts.length).toBeGreaterThan(1);
    for (const text of texts) {
      expect(text.length).toBeLessThanOrEqual(2000);
      expect(text).toMatch(/^Paragraph \d+\./);
      expect(text).toMatch(/drops\.$/);
    }
    expect(texts.join("\n\n")).toBe(chapter);
    expect(messages.map((m) => m.text)).toEqual(texts);
    expect(messages.map((m) => m.ref.id)).toEqual([...surface.messages.keys()]);
  });

  it("splits one huge delta into several posted messages", async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 500, minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push(chapter);
    const messages = await finish(renderer);
    expect(messages.length).toBeGreaterThanOrEqual(chapter.length / 500);
    for (const m of messages) expect(m.text.length).toBeLessThanOrEqual(500);
    expectReassembles(surface.texts(), chapter);
  });

  it("splits CJK text without spaces at 。 when it exceeds the limit", async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 100, minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    const text = "雨夜的上海，侦探推开了那扇门，灵媒正在等她。".repeat(12);
    await stream(renderer, text, 7, 100);
    await finish(renderer);
    const texts = surface.texts();
    expect(texts.length).toBeGreaterThan(1);
    for (const t of texts) {
      expect(t.length).toBeLessThanOrEqual(100);
      expect(t.endsWith("。")).toBe(true);
    }
    expect(texts.join("")).toBe(text);
  });

  it("skips an edit when the text did not change", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("Same");
    await vi.advanceTimersByTimeAsync(0);
    renderer.push("");
    await vi.advanceTimersByTimeAsync(3000);
    await finish(renderer);
    expect(surface.calls.map((c) => c.kind)).toEqual(["post"]);
  });

  it("replaces a message whose edit fails with a fresh post carrying the text", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("The ghost");
    await vi.advanceTimersByTimeAsync(0);
    surface.deleteMessage("m1");
    renderer.push(" whispered.");
    const messages = await finish(renderer);
    expect(surface.calls.map((c) => [c.kind, c.error === undefined])).toEqual([
      ["post", true],
      ["edit", false],
      ["post", true],
    ]);
    expect(surface.texts()).toEqual(["The ghost whispered."]);
    expect(messages).toEqual([{ ref: { id: "m2" }, text: "The ghost whispered." }]);
  });

  it("rejects finish with the post error and posts nothing after it", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    const error = new FakeSurfaceError("Missing Access");
    surface.failNextPost(error);
    renderer.push("First words");
    await vi.advanceTimersByTimeAsync(2000);
    renderer.push(" and more");
    const done = renderer.finish();
    const settled = expect(done).rejects.toBe(error);
    await vi.runAllTimersAsync();
    await settled;
    expect(surface.calls).toHaveLength(1);
  });

  it("appends the note to the last message on abort and stops streaming", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("Her hand reached for the");
    await vi.advanceTimersByTimeAsync(0);
    const aborted = renderer.abort("(interrupted)");
    await vi.runAllTimersAsync();
    expect(await aborted).toEqual([{ ref: { id: "m1" }, text: "Her hand reached for the (interrupted)" }]);
    expect(surface.texts()).toEqual(["Her hand reached for the (interrupted)"]);
    expect(() => renderer.push("more")).toThrow(/after finish\(\) or abort\(\)/);
  });

  it("posts nothing on abort when no text was streamed", async () => {
    const surface = new FakeSurface();
    const renderer = new StreamRenderer(surface);
    const aborted = renderer.abort("(interrupted)");
    await vi.runAllTimersAsync();
    expect(await aborted).toEqual([]);
    expect(surface.calls).toHaveLength(0);
  });

  it("edits on every push without an interval but never has two calls in flight", async () => {
    const surface = new FakeSurface({ limits: { maxMessageLength: 300, minEditIntervalMs: 0 }, latencyMs: 20 });
    const renderer = new StreamRenderer(surface);
    const text = "tick tock. ".repeat(60);
    await stream(renderer, text, 5, 30);
    await finish(renderer);
    expect(surface.maxInFlight).toBe(1);
    expect(surface.callsOf("edit").length).toBeGreaterThan(10);
    expectReassembles(surface.texts(), text);
  });

  it("coalesces deltas pushed while a slow call is in flight into one edit", async () => {
    const surface = new FakeSurface({ limits: { minEditIntervalMs: 0 }, latencyMs: 100 });
    const renderer = new StreamRenderer(surface);
    renderer.push("a");
    for (const delta of ["b", "c", "d"]) {
      await vi.advanceTimersByTimeAsync(10);
      renderer.push(delta);
    }
    await finish(renderer);
    expect(surface.calls.map((c) => [c.kind, "text" in c ? c.text : ""])).toEqual([
      ["post", "a"],
      ["edit", "abcd"],
    ]);
  });
});

describe("StreamRenderer with a surface that finalizes (message drafts)", () => {
  class DraftSurface extends FakeSurface {
    readonly finalized: { ref: string; text: string }[] = [];
    async finalize(ref: { id: string }, text: string) {
      this.finalized.push({ ref: ref.id, text });
      return { id: `final-${ref.id}` };
    }
  }

  it("finalizes every message once, in order, with its final text, and returns the final refs", async () => {
    const surface = new DraftSurface({ limits: { maxMessageLength: 500, minEditIntervalMs: 1000 } });
    const renderer = new StreamRenderer(surface);
    renderer.push(chapter);
    const done = renderer.finish();
    await vi.runAllTimersAsync();
    const messages = await done;
    expect(surface.finalized.map((f) => f.text)).toEqual(messages.map((m) => m.text));
    expect(surface.finalized.length).toBeGreaterThan(1);
    expect(messages.every((m) => m.ref.id.startsWith("final-"))).toBe(true);
  });

  it("does not finalize on abort: a failed chapter leaves no real message behind", async () => {
    const surface = new DraftSurface({ limits: { minEditIntervalMs: 0 } });
    const renderer = new StreamRenderer(surface);
    renderer.push("Half a sentence");
    const aborted = renderer.abort("(interrupted)");
    await vi.runAllTimersAsync();
    await aborted;
    expect(surface.finalized).toEqual([]);
  });
});
