import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ConsoleSurface } from "../../adapters/console/console-surface.ts";
import { StreamRenderer } from "../../src/render/stream-renderer.ts";

function terminal() {
  const out = new PassThrough();
  let text = "";
  out.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
  });
  return { out, read: () => text };
}

describe("ConsoleSurface", () => {
  it("prints streamed text once, in order, as it grows", async () => {
    const { out, read } = terminal();
    const surface = new ConsoleSurface(out, "en", tmpdir());
    const renderer = new StreamRenderer(surface);
    for (const delta of ["The rain ", "fell on ", "the quay.\n\nA bell rang."]) renderer.push(delta);
    await renderer.finish();
    expect(read()).toBe("\nThe rain fell on the quay.\n\nA bell rang.");
  });

  it("lists choices with their numbers and remembers the offer", async () => {
    const { out, read } = terminal();
    const surface = new ConsoleSurface(out, "en", tmpdir());
    await surface.offerChoices({
      storyId: "s",
      revision: 4,
      choices: ["Run", "Hide"],
      allowWriteIn: true,
      mode: "pick",
    });
    expect(read()).toContain("  1. Run\n  2. Hide\nWhat happens next? Pick 1-2, or type your own action.");
    expect(surface.lastOffer?.revision).toBe(4);
  });

  it("saves files under the export folder and says where", async () => {
    const dir = mkdtempSync(join(tmpdir(), "inkloom-export-"));
    const { out, read } = terminal();
    const surface = new ConsoleSurface(out, "en", join(dir, "nested", "exports"));
    await surface.sendFile({ name: "tale.md", content: "# Tale\n" });
    const path = join(dir, "nested", "exports", "tale.md");
    expect(readFileSync(path, "utf8")).toBe("# Tale\n");
    expect(read()).toContain(`Exported the current branch to ${path}`);
    rmSync(dir, { recursive: true, force: true });
  });
});
