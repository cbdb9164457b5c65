/** Model routes and held-out states: the store, the engine using them, and their command-line tools. */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PROMPT_VERSION } from "../../src/agent/prompts.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { openDatabase } from "../../src/store/db.ts";
import { freezeHeldout, heldoutStoryIds, loadHeldout } from "../../src/training/heldout.ts";
import { formatRoute, parseRouteSpec, RouteStore } from "../../src/training/routes.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { runTrainingCli } from "../helpers/run-cli.ts";
import { queueEnv } from "../helpers/topology.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const conversation = { platform: "console", workspaceId: "local", id: "c1" };

let dir: string;
const databases = new TestDatabases();
let dbUrl: string;
let model: FakeOpenAiServer;
let engine: Engine | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-routes-"));
  dbUrl = await databases.url(dir, "r");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
});

afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function config(extra: Record<string, string> = {}) {
  return loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "big",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: dbUrl,
    ...extra,
  });
}

async function play(e: Engine, premise: string, choices: number): Promise<string> {
  const t = await e.stories.start({ actor, conversation, premise, genre: "none" });
  await t.job.finished;
  for (let i = 0; i < choices; i++) {
    const { revision } = await e.queries.state(t.storyId);
    await (await e.stories.choose(t.storyId, revision, 1, actor)).job.finished;
  }
  return t.storyId;
}

const cli = runTrainingCli;

describe("model routes", { timeout: 60_000 }, () => {
  it("parses route specs: model, model@url, #ft", () => {
    expect(parseRouteSpec("gpt-4.1", "http://d/v1")).toEqual({
      model: "gpt-4.1",
      baseUrl: "http://d/v1",
      fineTuned: false,
    });
    expect(parseRouteSpec("ft:gpt-4.1-mini:acme::x1@https://api.openai.com/v1/#ft", "http://d")).toEqual({
      model: "ft:gpt-4.1-mini:acme::x1",
      baseUrl: "https://api.openai.com/v1",
      fineTuned: true,
    });
    expect(parseRouteSpec("team@lora@http://h:8000/v1", "x").model).toBe("team@lora");
    expect(() => parseRouteSpec("#ft", "x")).toThrow(/names no model/);
    expect(formatRoute({ model: "m", baseUrl: "http://h/v1", fineTuned: true })).toBe("m@http://h/v1#ft");
  });

  it("routes a task by configuration: MODEL_<TASK>_BASE_URL and MODEL_<TASK>_FINE_TUNED", () => {
    const c = config({
      MODEL_CONTINUE: "small",
      MODEL_CONTINUE_BASE_URL: "http://lora:8000/v1",
      MODEL_CONTINUE_FINE_TUNED: "true",
    });
    expect(c.models.continue).toEqual({ model: "small", baseUrl: "http://lora:8000/v1", fineTuned: true });
    expect(c.models.open).toEqual({ model: "big", baseUrl: model.baseUrl, fineTuned: false });
    expect(() => config({ MODEL_CHECK_BASE_URL: "lora", MODEL_CHECK_FINE_TUNED: "yes" })).toThrow(
      /MODEL_CHECK_BASE_URL must be an http\(s\) URL[\s\S]*MODEL_CHECK_FINE_TUNED must be true or false/,
    );
  });

  it("a stored route wins over the configuration; every run records the route it used", async () => {
    const db = await openDatabase(dbUrl);
    await new RouteStore(db).set("continue", { model: "ft:small", baseUrl: model.baseUrl, fineTuned: true }, "cli");
    await db.$disconnect();
    engine = await createEngine(config({ MODEL_CONTINUE: "configured" }), () => {});
    expect(engine.model.route("continue")).toEqual({ model: "ft:small", baseUrl: model.baseUrl, fineTuned: true });
    const storyId = await play(engine, "A quiet mystery", 1);
    const runs = await engine.db.agentRun.findMany({ where: { storyId }, orderBy: { createdAt: "asc" } });
    const cont = runs.find((r) => r.task === "continue");
    expect(cont).toMatchObject({
      model: "ft:small",
      fineTuned: true,
      promptVersion: `continue.react.ft@${PROMPT_VERSION}`,
    });
    expect(runs.find((r) => r.task === "open")).toMatchObject({ model: "big", fineTuned: false });
    // The fine-tuned route was sent the zero-shot prompt: no exemplars.
    const sent = model.requests.filter((r) => r.body?.model === "ft:small");
    expect(sent.length).toBeGreaterThan(0);
    for (const r of sent) expect(String(r.body.messages[0].content)).not.toContain("Example");
  });

  it("npm run train:route lists, sets and clears routes", async () => {
    const env = { OPENAI_BASE_URL: model.baseUrl, OPENAI_MODEL: "big", DATABASE_URL: dbUrl };
    const set = await cli("route.ts", ["continue", "inkloom-lora@http://localhost:8000/v1#ft"], env);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("continue -> inkloom-lora@http://localhost:8000/v1#ft (fine-tuned");
    const list = await cli("route.ts", [], env);
    expect(list.stdout).toMatch(/continue\s+inkloom-lora@http:\/\/localhost:8000\/v1#ft\s+\[set by cli\]/);
    expect(list.stdout).toMatch(/open\s+big@\S+\s+\[configuration\]/);
    expect(list.stdout).toMatch(/illustrate\s+big@/);
    const bad = await cli("route.ts", ["novel", "x"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown task "novel"');
    expect((await cli("route.ts", ["continue", "--clear"], env)).stdout).toContain("back to the configuration");
    const db = await openDatabase(dbUrl);
    expect(await new RouteStore(db).all()).toEqual([]);
    await db.$disconnect();
  });
});

describe("held-out states", { timeout: 60_000 }, () => {
  it("freezes one real state per story, never twice, the same for the same seed", async () => {
    engine = await createEngine(config(), () => {});
    const stories = [await play(engine, "One", 2), await play(engine, "Two", 1), await play(engine, "Three", 0)];
    const first = await freezeHeldout(engine.db, { count: 2, seed: 3 });
    expect(first).toEqual({ added: 2, total: 2 });
    const cases = await loadHeldout(engine.db);
    expect(new Set(cases.map((c) => c.storyId)).size).toBe(2);
    for (const c of cases) {
      const chapter = await engine.db.chapter.findUniqueOrThrow({ where: { id: c.chapterId } });
      expect(c.input.task).toBe(chapter.task);
      expect(c.input.chapterNumber).toBe(chapter.number);
      // The state it was written from: its branch up to the chapter before it.
      expect(c.input.story.chapters.map((ch) => ch.number)).toEqual(
        Array.from({ length: chapter.number - 1 }, (_, i) => i + 1),
      );
      if (chapter.action !== "") expect(c.input.action).toBe(chapter.action);
    }
    expect(await freezeHeldout(engine.db, { count: 5, seed: 3 })).toEqual({ added: 1, total: 3 });
    expect(await heldoutStoryIds(engine.db)).toEqual(new Set(stories));
    expect(await freezeHeldout(engine.db, { count: 5, seed: 3 })).toEqual({ added: 0, total: 3 });
  });

  it("npm run train:heldout freezes and lists", async () => {
    engine = await createEngine(config(), () => {});
    await play(engine, "One", 1);
    await engine.close();
    engine = undefined;
    const frozen = await cli("heldout.ts", ["--count", "3", "--database", dbUrl]);
    expect(frozen.code).toBe(0);
    expect(frozen.stdout).toContain("held out 1 more story state(s); 1 in all");
    const listed = await cli("heldout.ts", ["--list", "--database", dbUrl]);
    expect(listed.stdout).toMatch(/(open|continue) chapter \d of story \S+/);
    expect((await cli("heldout.ts", ["--count", "x"])).code).toBe(2);
    const empty = await cli("heldout.ts", ["--database", await databases.url(dir, "empty")]);
    expect(empty.stdout).toContain("No story has a finished chapter yet: play some stories first.");
  });
});
