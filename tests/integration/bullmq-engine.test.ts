/**
 * The engine with REDIS_URL set: real wiring (createEngine) on BullMQ and a real Redis
 * (a fresh REDIS_PREFIX per test), the real openai SDK against the fake model server,
 * a FakeSurface as a voting conversation. Chapters run in the chapters lane, the
 * ballot closes through a delayed job in the timers lane.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { closedOfferText } from "../../src/render/offer-layout.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { useTestRedis } from "../helpers/redis.ts";

const starter = { platform: "telegram", id: "100", name: "Ann" };
const bea = { platform: "telegram", id: "101", name: "Bea" };
const conversation = { platform: "telegram", workspaceId: "-7", id: "-7" };

const redis = useTestRedis();
let dir: string;
let model: FakeOpenAiServer;
let engine: Engine | undefined;
let surface: FakeSurface;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-engine-redis-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
});

afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

const until = async (check: () => Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe("the engine on BullMQ (REDIS_URL)", () => {
  it("writes chapters in the chapters lane and closes a ballot through a delayed job in the timers lane", async () => {
    const config = loadConfig({
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_MODEL: "fake",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: `file:${join(dir, "engine.db")}`,
      PREPLAN: "off",
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      WORKER_CONCURRENCY: "2",
    });
    engine = await createEngine(config, () => {});
    engine.audiences.set("telegram:-7", { surface, locale: "en", voting: { windowSeconds: 1 } });

    const ticket = await engine.stories.start({
      actor: starter,
      conversation,
      premise: "A night train",
      genre: "none",
    });
    await expect(ticket.job.finished).resolves.toEqual({ ok: true });
    const lanes = await engine.queue.metrics();
    expect(lanes.map((l) => l.queue).sort()).toEqual(["chapters", "jobs", "pictures", "timers"]);
    expect(lanes.find((l) => l.queue === "timers")?.delayed).toBe(1);

    const { revision } = await engine.queries.state(ticket.storyId);
    await engine.ballots.vote(ticket.storyId, revision, 2, bea);
    const queries = engine.queries;
    await until(async () => (await queries.state(ticket.storyId)).head?.number === 2);
    await until(async () => (await queries.state(ticket.storyId)).head?.status === "done");
    // The result is announced in the ballot's closing edit.
    const closed = surface.callsOf("closeChoices").at(-1);
    expect(closed?.kind === "closeChoices" && closedOfferText(closed.offer, closed.result, "en")).toMatch(
      /^The readers chose: /,
    );
  });
});
