/**
 * PostgreSQL drops the bot's connections in the middle of its work (a restart, a
 * failover, an administrator): `pg_terminate_backend` while a transaction is stalled
 * by a trigger. A reader's command fails with a message they can act on and leaves
 * nothing half-written; trying again works. A chapter being saved is saved again on
 * a new connection. Runs in the PostgreSQL pass (`npm run test:postgres`) only:
 * vitest.config.ts leaves `*.postgres.test.ts` out of the SQLite one.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatch } from "../../commands/dispatch.ts";
import { choose } from "../../commands/play.ts";
import type { Command, CommandContext, CommandSpec } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const conversation = { platform: "console", workspaceId: "local", id: "c1" };

let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
let surface: FakeSurface;
/** A connection of the test's own, to stall and cut the bot's. */
let admin: pg.Client;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-drop-"));
  dbUrl = await databases.url(dir, "drop");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  engine = await createEngine(
    loadConfig({
      ...queueEnv(),
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_MODEL: "fake",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: dbUrl,
    }),
    (m) => logs.push(m),
  );
  surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  engine.audiences.set("console:c1", { surface, locale: "en" });
  admin = new pg.Client({ connectionString: dbUrl });
  await admin.connect();
  logs.length = 0;
});

afterEach(async () => {
  await admin.end();
  await engine.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Every insert into `table` waits `seconds` inside its transaction. */
async function stallInserts(table: string, seconds: number): Promise<void> {
  await admin.query(`CREATE OR REPLACE FUNCTION inkloom_stall() RETURNS trigger AS $$
    BEGIN PERFORM pg_sleep(${seconds}); RETURN NEW; END $$ LANGUAGE plpgsql`);
  await admin.query(
    `CREATE TRIGGER inkloom_stall BEFORE INSERT ON "${table}" FOR EACH ROW EXECUTE FUNCTION inkloom_stall()`,
  );
}

async function unstall(table: string): Promise<void> {
  await admin.query(`DROP TRIGGER inkloom_stall ON "${table}"`);
}

/** Once an insert into `table` is under way, terminate every connection but the test's own. */
async function cutWhileInserting(table: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await admin.query(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
         AND state = 'active' AND query LIKE $1`,
      [`INSERT INTO "public"."${table}"%`],
    );
    if (rows.length > 0) break;
    if (Date.now() > deadline) throw new Error(`no insert into ${table} came`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const { rows: cut } = await admin.query(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
  );
  const pids = cut.map((r: { pid: number }) => r.pid);
  await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
  // pg_terminate_backend only signals: wait until every one of them has exited, so that
  // the pool has seen its idle connections close before the test's own reads (a
  // connection cut idle fails the next query sent on it, which is not what is tested).
  while (Date.now() < deadline + 10_000) {
    const { rows: left } = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])",
      [pids],
    );
    if (left[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 50));
}

async function startStory(): Promise<{ storyId: string; revision: number }> {
  const ticket = await engine.stories.start({ actor, conversation, premise: "A harbour mystery", genre: "none" });
  await ticket.job.finished;
  await engine.queue.onIdle();
  return { storyId: ticket.storyId, revision: (await engine.queries.state(ticket.storyId)).revision };
}

function context(storyId: string): CommandContext {
  return {
    actor,
    moderator: true,
    conversation,
    locale: "en",
    surface,
    session: { storyId },
    ...commandServices(engine),
    ageRestricted: false,
  };
}

const pickFirst = (storyId: string, revision: number) =>
  dispatch(choose as unknown as Command<CommandSpec>, { position: 1, revision }, context(storyId), (m) => logs.push(m));

async function snapshot(storyId: string) {
  return {
    revision: (await engine.db.story.findUniqueOrThrow({ where: { id: storyId } })).revision,
    chapters: await engine.db.chapter.count({ where: { storyId } }),
    reactions: await engine.db.reaction.count(),
  };
}

describe("a dropped PostgreSQL connection", { timeout: 60_000 }, () => {
  it("in a reader's command: they are told to try again, nothing is half-written, and trying again works", async () => {
    const { storyId, revision } = await startStory();
    const before = await snapshot(storyId);
    // The choice's transaction creates chapter 2 and records the reaction: it is cut in between.
    await stallInserts("Reaction", 2);
    const outcome = pickFirst(storyId, revision);
    await cutWhileInserting("Reaction");
    expect((await outcome).kind).toBe("failed");
    expect(surface.notices.at(-1)).toBe("The story database did not answer just now. Please try again in a moment.");
    await unstall("Reaction");
    expect(await snapshot(storyId)).toEqual(before);

    const again = await pickFirst(storyId, revision);
    expect(again.kind).toBe("writing");
    if (again.kind === "writing") await again.ticket.job.finished;
    await engine.queue.onIdle();
    const state = await engine.queries.state(storyId);
    expect(state.head).toMatchObject({ number: 2, status: "done" });
    expect(await snapshot(storyId)).toEqual({ revision: revision + 1, chapters: 2, reactions: 1 });
  });

  it("while a chapter is saved: the save is tried again on a new connection and the chapter is kept", async () => {
    // The chapter's save stores its agent runs: the first try is cut there.
    await stallInserts("AgentRun", 1);
    const ticket = await engine.stories.start({ actor, conversation, premise: "A lighthouse", genre: "none" });
    await cutWhileInserting("AgentRun");
    await ticket.job.finished;
    await engine.queue.onIdle();
    await unstall("AgentRun");
    const chapter = await engine.db.chapter.findFirstOrThrow({ where: { storyId: ticket.storyId } });
    expect(chapter.status).toBe("done");
    expect(chapter.text.length).toBeGreaterThan(100);
    expect(await engine.db.agentRun.count({ where: { chapterId: chapter.id } })).toBeGreaterThan(0);
    expect(logs.some((l) => l.includes("saving failed once, trying again"))).toBe(true);
  });
});
