import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TOOL_NAMES } from "../../src/agent/schemas.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeRequest } from "../fakes/fake-openai-types.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ConsoleProcess, consoleEnv } from "./console-process.ts";

let server: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const running: ConsoleProcess[] = [];

beforeAll(async () => {
  server = await FakeOpenAiServer.start({ responder: storyResponder() });
});
afterAll(async () => {
  await server.close();
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-note-e2e-"));
  dbUrl = await databases.url(dir, "inkloom");
  server.setResponder(storyResponder());
});
afterEach(async () => {
  for (const p of running.splice(0)) p.kill();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function launch(): ConsoleProcess {
  const p = new ConsoleProcess(consoleEnv(server.baseUrl, dir, dbUrl));
  running.push(p);
  return p;
}

/** The streamed prose requests of the chapter numbered `n`, as JSON text. */
function proseRequests(n: number): string {
  const isProse = (r: FakeRequest) =>
    r.path === "/chat/completions" && r.body?.stream === true && !Array.isArray(r.body?.tools);
  return server.requests
    .filter(isProse)
    .map((r) => JSON.stringify(r.body?.messages ?? []))
    .filter((m) => m.includes(`Chapter number: ${n}`))
    .join("\n");
}

describe("terminal: author's note and story state, end to end", () => {
  it("/note shapes the next chapters' prompts until cleared, and undo returns to the note its chapter had", async () => {
    const p = launch();
    await p.ready();
    expect(await p.say("/start a lighthouse keeper finds letters from the future")).toContain("Chapter 1");
    expect(await p.say("/note")).toContain("No author's note is set");
    expect(await p.say("/note more dialogue, slower pace")).toContain("Author's note set: more dialogue, slower pace");

    const ch2 = await p.say("1");
    expect(ch2).toContain("Chapter 2");
    // The fake model follows a note it finds in its prompt by quoting it.
    expect(ch2).toContain('(Following the author\'s note: "more dialogue, slower pace".)');
    expect(proseRequests(2)).toContain("Author's note: more dialogue, slower pace");
    expect(proseRequests(1)).not.toContain("Author's note:");

    const ch3 = await p.say("2");
    expect(ch3).toContain("Chapter 3");
    expect(ch3).toContain("Following the author's note");
    expect(await p.say("/note")).toContain("Author's note: more dialogue, slower pace");

    expect(await p.say("/note clear")).toContain("The author's note is cleared.");
    const ch4 = await p.say("1");
    expect(ch4).toContain("Chapter 4");
    expect(ch4).not.toContain("Following the author's note");
    expect(proseRequests(4)).not.toContain("Author's note:");

    // The note was cleared at chapter 3; chapter 2 still has it.
    expect(await p.say("/undo")).toContain("Went back to chapter 3");
    expect(await p.say("/note")).toContain("No author's note is set");
    expect(await p.say("/undo")).toContain("Went back to chapter 2");
    expect(await p.say("/note")).toContain("Author's note: more dialogue, slower pace");
    // Too long: refused, and nothing changes.
    expect(await p.say(`/note ${"x".repeat(301)}`)).toContain("301");
    expect(await p.say("/note")).toContain("Author's note: more dialogue, slower pace");
    expect(await p.quit()).toBe(0);
  });

  it("/status after two chapters shows relationship bars, milestones and the arc; undo shows chapter 1's", async () => {
    const p = launch();
    await p.ready();
    expect(await p.say("/status")).toMatch(/no story|start/i);
    await p.say("/start a lighthouse keeper finds letters from the future");
    expect(await p.say("1")).toContain("Chapter 2");

    const shown = await p.say("/status");
    expect(shown).toContain("after chapter 2");
    // Elias +30 (15 a chapter), the porter -20, from the model's structured parts.
    expect(shown).toContain("Elias Wren  ░░░░░░░░░░│███░░░░░░░ +30  — after chapter 2, Mara begins to trust him");
    expect(shown).toContain("The Porter  ░░░░░░░░██│░░░░░░░░░░ -20  — he is hiding something");
    expect(shown).toContain("✓ Turning point of chapter 1");
    expect(shown).toContain("✓ Turning point of chapter 2");
    expect(shown).toContain("Arc  ████████░░░░░░░░░░░░ 40%");
    // The terminal shows no chart picture (pictures are files here).
    expect(shown).not.toContain("saved to");
    // The state reached the next chapter's parts request (the prompt carries it).
    const parts = server.requests.filter((r) => r.body?.tool_choice?.function?.name === TOOL_NAMES.submitChapter);
    expect(JSON.stringify(parts.at(-1)?.body?.messages ?? [])).toContain("Elias Wren: +15");

    await p.say("/undo");
    const before = await p.say("/status");
    expect(before).toContain("after chapter 1");
    expect(before).toContain("+15");
    expect(before).not.toContain("The Porter");
    expect(await p.quit()).toBe(0);
  });
});
