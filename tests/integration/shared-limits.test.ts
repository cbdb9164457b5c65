/**
 * Limits that must hold across processes, under requests sent at the same moment.
 * On PostgreSQL (TEST_DATABASE=postgres) two engines share the database, as two bot
 * processes would. SQLite serves one process (its driver waits for a lock
 * synchronously, so two clients in one Node process block each other): there the
 * requests interleave within one engine, where a count-then-insert fails just the same.
 * The conditional writes (src/store/counters.ts, the settings' compare-and-set) let
 * exactly the allowed number through.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { ensureCounter, tryTakeCounter } from "../../src/store/counters.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { type Actor, upsertUser } from "../../src/story/identity.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases, testDatabaseKind } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

const owner: Actor = { platform: "discord", id: "1", name: "Owner" };
const member = (i: number): Actor => ({ platform: "discord", id: `m${i}`, name: `Member ${i}` });
const conversation = (i: number) => ({ platform: "discord", workspaceId: "guild", id: `thread${i}` });

let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engines: Engine[] = [];

/** Two engines on the same database (two processes); on SQLite the same one twice. */
async function launch(env: Record<string, string> = {}): Promise<[Engine, Engine]> {
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: dbUrl,
    IMAGE_MODEL: "fake-image",
    IMAGE_DIR: join(dir, "images"),
    ILLUSTRATE_COOLDOWN_SECONDS: "0",
    ...env,
  });
  const first = await createEngine(config, () => {});
  engines = testDatabaseKind() === "sqlite" ? [first] : [first, await createEngine(config, () => {})];
  return [first, engines.at(-1) ?? first];
}

async function startStory(engine: Engine, i: number): Promise<{ storyId: string; revision: number }> {
  const ticket = await engine.stories.start({
    actor: owner,
    conversation: conversation(i),
    premise: `Tale ${i}`,
    genre: "none",
  });
  await ticket.job.finished;
  await engine.queue.onIdle();
  return { storyId: ticket.storyId, revision: (await engine.queries.state(ticket.storyId)).revision };
}

/** Which of the settled requests were refused with `id`; throws on any other failure. */
function outcomes(results: PromiseSettledResult<unknown>[], id: string): { done: number; refused: number } {
  let done = 0;
  let refused = 0;
  for (const r of results) {
    if (r.status === "fulfilled") done++;
    else if (r.reason instanceof UserFacingError && r.reason.id === id) refused++;
    else throw r.reason;
  }
  return { done, refused };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-limits-"));
  dbUrl = await databases.url(dir, "limits");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
});

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

describe(`limits shared by ${testDatabaseKind() === "sqlite" ? "concurrent requests" : "two processes on one database"}`, {
  timeout: 60_000,
}, () => {
  it("a counter taken at once from both lets exactly its limit through", async () => {
    const [a, b] = await launch();
    await ensureCounter(a.db, "test:counter");
    const takes = await Promise.all(
      Array.from({ length: 12 }, (_, i) => tryTakeCounter((i % 2 === 0 ? a : b).db, "test:counter", { limit: 5 })),
    );
    expect(takes.filter(Boolean)).toHaveLength(5);
    expect((await a.db.counter.findUniqueOrThrow({ where: { key: "test:counter" } })).count).toBe(5);
  });

  it("a member's daily chapter quota: of four requests at once, the quota's two are written", async () => {
    const [a, b] = await launch();
    const stories = [];
    for (const i of [1, 2, 3, 4]) stories.push(await startStory(a, i));
    const m = member(1);
    const results = await Promise.allSettled(
      stories.map(({ storyId, revision }, i) =>
        (i % 2 === 0 ? a : b).stories.choose(storyId, revision, 1, m, { limit: 2, conversation: conversation(i + 1) }),
      ),
    );
    expect(outcomes(results, "error.quota")).toEqual({ done: 2, refused: 2 });
    for (const r of results) if (r.status === "fulfilled") await r.value.job.finished;
    const user = await upsertUser(a.db, m);
    expect(await a.db.chapter.count({ where: { requestedById: user.id } })).toBe(2);
    expect(await a.stories.requestsToday(m, conversation(1))).toBe(2);
  });

  it("a workspace's pictures of the day: /illustrate at once from both stops at the budget", async () => {
    const [a, b] = await launch();
    await a.settings.set("discord", "guild", { imagesPerDay: 3 });
    const { storyId } = await startStory(a, 1); // chapter 1's picture: one of the three
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((i) =>
        (i % 2 === 0 ? a : b).illustrations.request({
          storyId,
          actor: member(i),
          what: `scene ${i}`,
          requestKey: `r${i}`,
        }),
      ),
    );
    expect(outcomes(results, "illustrate.dailyLimit")).toEqual({ done: 2, refused: 2 });
    expect(await a.db.illustration.count({ where: { storyId } })).toBe(3);
    await Promise.all([a.queue.onIdle(), b.queue.onIdle()]);
  });

  it("the /illustrate cooldown: one reader's requests at once from both draw one picture", async () => {
    const [a, b] = await launch({ ILLUSTRATE_COOLDOWN_SECONDS: "3600" });
    const { storyId } = await startStory(a, 1);
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((i) =>
        (i % 2 === 0 ? a : b).illustrations.request({
          storyId,
          actor: member(1),
          what: `scene ${i}`,
          requestKey: `r${i}`,
        }),
      ),
    );
    expect(outcomes(results, "illustrate.cooldown")).toEqual({ done: 1, refused: 3 });
    expect(await a.db.illustration.count({ where: { storyId, source: "request" } })).toBe(1);
    await Promise.all([a.queue.onIdle(), b.queue.onIdle()]);
  });

  it("settings changed at once from both keep every change", async () => {
    const [a, b] = await launch();
    await Promise.all([
      a.settings.set("discord", "guild", { imagesPerDay: 7 }),
      b.settings.set("discord", "guild", { dailyQuota: 3 }),
      a.settings.set("discord", "guild", { voteSeconds: 30 }),
      b.settings.set("discord", "guild", { rating: "teen" }),
      a.settings.set("discord", "guild", { chapterLength: "long" }),
    ]);
    expect(await b.settings.get("discord", "guild")).toMatchObject({
      imagesPerDay: 7,
      dailyQuota: 3,
      voteSeconds: 30,
      rating: "teen",
      chapterLength: "long",
    });
  });

  it("a new reader's first requests at once make one user row", async () => {
    const [a, b] = await launch();
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => upsertUser((i % 2 === 0 ? a : b).db, member(9))));
    expect(new Set(ids.map((u) => u.id)).size).toBe(1);
    expect(await a.db.user.count({ where: { externalId: "m9" } })).toBe(1);
  });
});
