/**
 * The download's progress display (src/llm/download-progress.ts): a bar redrawn in place on
 * a terminal, at most ten times a second, with percent, MB of MB, speed and time left; plain
 * lines every tenth elsewhere. A manual clock stands in for time.
 */
import { describe, expect, it } from "vitest";
import { clock, progressDisplay } from "../../src/llm/download-progress.ts";

function recorder(isTTY: boolean) {
  const writes: string[] = [];
  let t = 0;
  return {
    writes,
    writer: { isTTY, write: (text: string) => writes.push(text) },
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe("the progress bar on a terminal", () => {
  it("is redrawn in place with percent, MB of MB, speed and time left", () => {
    const r = recorder(true);
    const bar = progressDisplay(r.writer, "model.gguf", { now: r.now });
    bar.start(100_000_000, 0);
    r.advance(1_000);
    bar.update(10_000_000);
    const last = r.writes.at(-1) ?? "";
    expect(last.startsWith("\r")).toBe(true);
    expect(last.endsWith("\x1b[K")).toBe(true);
    expect(last).toContain("model.gguf [##----------------------]  10% 10.0/100.0 MB 10.0 MB/s ETA 0:09");
    expect(r.writes.join("")).not.toContain("\n");
  });

  it("is redrawn at most ten times a second, and always at 100%", () => {
    const r = recorder(true);
    const bar = progressDisplay(r.writer, "model.gguf", { now: r.now });
    bar.start(1_000_000, 0);
    for (let i = 1; i <= 999; i++) {
      if (i % 20 === 0) r.advance(1);
      bar.update(i * 1000);
    }
    // About 50 ms went by: the start's draw, nothing more.
    expect(r.writes).toHaveLength(1);
    r.advance(100);
    bar.update(999_500);
    expect(r.writes).toHaveLength(2);
    bar.update(1_000_000);
    expect(r.writes).toHaveLength(3);
    expect(r.writes.at(-1)).toContain("100% 1.0/1.0 MB");
    bar.end();
    expect(r.writes.slice(3)).toEqual(["\n"]);
  });

  it("fits a narrow terminal by shortening the file's name", () => {
    const r = recorder(true);
    const bar = progressDisplay({ ...r.writer, columns: 80 }, "qwen2.5-1.5b-instruct-q4_k_m.gguf", { now: r.now });
    bar.start(1_120_000_000, 0);
    r.advance(10_000);
    bar.update(123_000_000);
    const line = (r.writes.at(-1) ?? "").replace("\r", "").replace("\x1b[K", "");
    expect(line).toHaveLength(79);
    expect(line).toBe("qwen2.5-1.5… [##----------------------]  10% 123.0/1120.0 MB 12.3 MB/s ETA 1:21");
  });

  it("clears itself for a log line and comes back on the next update", () => {
    const r = recorder(true);
    const bar = progressDisplay(r.writer, "model.gguf", { now: r.now });
    bar.start(1_000_000, 0);
    bar.above(() => r.writes.push("[inkloom] retrying\n"));
    expect(r.writes.slice(-2)).toEqual(["\r\x1b[K", "[inkloom] retrying\n"]);
    bar.update(10);
    expect(r.writes.at(-1)).toMatch(/^\rmodel\.gguf \[/);
  });
});

describe("progress in a log (no terminal)", () => {
  it("writes one plain line per tenth, never a carriage return", () => {
    const r = recorder(false);
    const bar = progressDisplay(r.writer, "model.gguf", { now: r.now });
    bar.start(1_000_000, 0);
    for (let i = 1; i <= 100; i++) {
      r.advance(10);
      bar.update(i * 10_000);
    }
    bar.end();
    const lines = r.writes.join("").trim().split("\n");
    expect(lines).toHaveLength(11);
    expect(lines[0]).toBe("model.gguf: 0% of 1.0 MB");
    expect(lines[1]).toBe("model.gguf: 10% (0.1 of 1.0 MB, 1.0 MB/s)");
    expect(lines[10]).toMatch(/^model\.gguf: 100% \(1\.0 of 1\.0 MB/);
    expect(r.writes.join("")).not.toContain("\r");
  });

  it("says where a resumed download starts, then goes on from the next tenth", () => {
    const r = recorder(false);
    const bar = progressDisplay(r.writer, "model.gguf", { now: r.now });
    bar.start(1_000_000, 430_000);
    r.advance(100);
    bar.update(450_000);
    r.advance(100);
    bar.update(510_000);
    expect(r.writes.join("").trim().split("\n")).toEqual([
      "model.gguf: resuming at 43% (0.4 of 1.0 MB)",
      "model.gguf: 50% (0.5 of 1.0 MB, 0.4 MB/s)",
    ]);
  });
});

describe("time left", () => {
  it("reads as minutes and seconds, with hours when there are", () => {
    expect(clock(9)).toBe("0:09");
    expect(clock(125)).toBe("2:05");
    expect(clock(3723)).toBe("1:02:03");
  });
});
