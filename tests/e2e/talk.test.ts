/**
 * /talk in the terminal, end to end: `npm start` as a spawned process against the fake
 * story model. A character answers in character; the story stays where it was; the
 * reader's next action carries the exchange into its prompt; refusals are clear.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TALK_MARKER } from "../../src/agent/prompts.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
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
  dir = mkdtempSync(join(tmpdir(), "inkloom-talk-e2e-"));
  dbUrl = await databases.url(dir, "inkloom");
});
afterEach(async () => {
  for (const p of running.splice(0)) p.kill();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function launch(extra: Record<string, string> = {}): ConsoleProcess {
  const p = new ConsoleProcess(consoleEnv(server.baseUrl, dir, dbUrl, { PREPLAN: "off", ...extra }));
  running.push(p);
  return p;
}

describe("/talk in the terminal", () => {
  it("a character answers in character, outside the story; the next action may cite it", async () => {
    const p = launch({ TALK_COOLDOWN_SECONDS: "0" });
    await p.ready();
    const ch1 = await p.say("/start a lighthouse keeper hears a bell under the sea");
    expect(ch1).toContain("Chapter 1");

    const reply = await p.say("/talk Elias: who rings the bell at night?");
    expect(reply).toContain("Elias Wren: *Elias Wren considers you for a moment.*");
    expect(reply).toContain('You ask "who rings the bell at night?"');
    expect(reply).not.toContain("Chapter 2");

    // The story did not move: the choices of chapter 1 still stand.
    const recap = await p.say("/recap");
    expect(recap).not.toContain("Chapter 2");

    const unknown = await p.say("/talk Tomas: hello?");
    expect(unknown).toContain("There is no character “Tomas” in this story. You can talk to:");
    expect(unknown).toContain("Mara Quill");

    const ch2 = await p.say("I climb the tower, as Elias hinted");
    expect(ch2).toContain("Chapter 2");
    const writing = server
      .chatRequests()
      .map((r) => JSON.stringify(r.body))
      .filter((b) => b.includes("I climb the tower, as Elias hinted"));
    // The chapter's writing conversation carries the exchange, marked as not canon.
    const cited = writing.filter((b) => b.includes(`${TALK_MARKER} (not canon)`));
    expect(cited.length).toBeGreaterThan(0);
    expect(cited.every((b) => b.includes("Reader to Elias Wren: who rings the bell at night?"))).toBe(true);
    expect(await p.quit()).toBe(0);
  });

  it("makes a reader wait out the cooldown, and refuses a message over the limit", async () => {
    const p = launch({ TALK_COOLDOWN_SECONDS: "600" });
    await p.ready();
    await p.say("/start a lighthouse keeper hears a bell under the sea");
    expect(await p.say(`/talk Mara: ${"x".repeat(501)}`)).toContain("the limit is 500");
    expect(await p.say("/talk Mara: are you cold?")).toContain("Mara Quill: ");
    expect(await p.say("/talk Mara: and now?")).toMatch(/Please wait \d+ s before talking to a character again\./);
    expect(await p.quit()).toBe(0);
  });
});
