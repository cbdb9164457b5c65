/**
 * The terminal story end to end against endpoints that behave like the real ones
 * (tests/fakes/fake-openai-server.ts profiles): OpenAI's strict schema validation,
 * Ollama dropping forced tool calls, vLLM's one tool call per turn.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JSON_TEXT_MARKER } from "../../src/agent/prompts.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeProfile, FakeRequest } from "../fakes/fake-openai-types.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ConsoleProcess, consoleEnv } from "./console-process.ts";

let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const running: ConsoleProcess[] = [];
const servers: FakeOpenAiServer[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-profiles-"));
  dbUrl = await databases.url(dir, "inkloom");
});
afterEach(async () => {
  for (const p of running.splice(0)) p.kill();
  for (const s of servers.splice(0)) await s.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

async function serve(profile: FakeProfile, responder = storyResponder()): Promise<FakeOpenAiServer> {
  const server = await FakeOpenAiServer.start({ responder, profile });
  servers.push(server);
  return server;
}

function launch(server: FakeOpenAiServer, extra: Record<string, string> = {}): ConsoleProcess {
  const p = new ConsoleProcess(consoleEnv(server.baseUrl, dir, dbUrl, extra));
  running.push(p);
  return p;
}

const forcedTool = (r: FakeRequest) => typeof r.body?.tool_choice === "object" || r.body?.tool_choice === "required";
const wants = (r: FakeRequest, name: string) =>
  r.body?.tool_choice?.function?.name === name ||
  r.body?.response_format?.json_schema?.name === name ||
  JSON.stringify(r.body?.messages ?? []).includes(`${JSON_TEXT_MARKER}${name}`);

describe.each(["openai", "ollama", "vllm"] as const)(
  "terminal story against the %s profile",
  { timeout: 90_000 },
  (profile) => {
    it("start, choice, typed action, undo, rewrite and export all work; no chapter is lost", async () => {
      const server = await serve(profile);
      const p = launch(server);
      await p.ready();
      const ch1 = await p.say("/start a lighthouse keeper finds a letter from the future");
      expect(ch1).toContain("Chapter 1");
      expect(ch1).toContain("Pick 1-");
      const ch2 = await p.say("2");
      expect(ch2).toContain("Chapter 2");
      expect(ch2).toContain("Pick 1-");
      const ch3 = await p.say("I read the letter aloud");
      expect(ch3).toContain("Chapter 3");
      expect(ch3).toContain("I read the letter aloud");
      expect(await p.say("/undo")).toContain("Went back to chapter 2");
      const rewritten = await p.say("/rewrite make the ending happier");
      expect(rewritten).toContain("make the ending happier");
      expect(rewritten).toContain("Pick 1-");
      const exported = await p.say("/export");
      const path = /Exported the current branch to (.+\.md)/.exec(exported)?.[1];
      expect(readFileSync(path ?? "", "utf8")).toContain("make the ending happier");
      expect(await p.quit()).toBe(0);

      // Nothing failed, nothing was kept without its parts, nothing was rejected.
      expect(p.stdout).not.toContain("could not be finished");
      expect(p.stderr).not.toMatch(/failed: |bad_request|Invalid schema/);
      const chats = server.chatRequests();
      // Every structured answer the story needed got through.
      expect(chats.some((r) => wants(r, "plan_story"))).toBe(true);
      expect(chats.some((r) => wants(r, "submit_chapter"))).toBe(true);
      if (profile === "ollama") {
        // Forced calls came back as text at first; the route learned json_schema and kept it.
        expect(server.droppedForcedCalls).toBeGreaterThan(0);
        expect(p.stderr).toContain("json_schema from now on");
        expect(chats.filter(forcedTool).length).toBeLessThanOrEqual(server.droppedForcedCalls);
        // A restart does not learn it again: no forced call is sent at all.
        server.resetStats();
        const again = launch(server);
        await again.ready();
        await again.say("/stories 1");
        expect(await again.say("1")).toContain("Pick 1-");
        expect(server.chatRequests().filter(forcedTool)).toEqual([]);
        expect(server.droppedForcedCalls).toBe(0);
      } else {
        expect(server.droppedForcedCalls).toBe(0);
        expect(p.stderr).not.toContain("from now on");
      }
    });
  },
);

describe("a failed structured step after the prose", () => {
  it("keeps the chapter: its prose is saved and the reader can go on", async () => {
    const story = storyResponder();
    // The chapter's parts never come back in format, whatever strategy asks for them.
    const server = await serve("openai", (req) =>
      wants(req, "submit_chapter") || wants(req, "offer_choices")
        ? { kind: "text", text: "I would rather not say." }
        : story(req),
    );
    const p = launch(server, { PREPLAN: "off" });
    await p.ready();
    const ch1 = await p.say("/start a lighthouse keeper finds a letter from the future");
    expect(ch1).toContain("The rain began before anyone noticed");
    expect(ch1).not.toContain("could not be finished");
    // Only "Continue", and the reader's own action.
    expect(ch1).toMatch(/1\. Continue\n/);
    expect(ch1).toContain("Pick 1-1");
    server.setResponder(storyResponder());
    const ch2 = await p.say("1");
    expect(ch2).toContain("Chapter 2");
    const recap = await p.say("/recap");
    expect(recap).toContain("Chapter 2");
    expect(await p.quit()).toBe(0);
  });
});
