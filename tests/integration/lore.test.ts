/**
 * Lore (world info) through the core: /lore typed as a reader would, on real wiring, real
 * SQLite (or PostgreSQL), the real openai SDK against the fake model, a FakeSurface.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { handleAction } from "../../commands/actions.ts";
import type { CommandContext, Session } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { LORE_LIMITS } from "../../src/story/lore-service.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeRequest } from "../fakes/fake-openai-types.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

let dir: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-lore-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: await databases.url(dir, "lore"),
  });
  engine = await createEngine(config, () => {});
});

afterEach(async () => {
  await engine?.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A Telegram group: several readers, one story. */
class Group {
  readonly surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  readonly session: Session = {};
  readonly conversation = { platform: "telegram", workspaceId: "g1", id: "g1" };

  constructor() {
    engine.audiences.set("telegram:g1", { surface: this.surface, locale: "en" });
  }

  context(user: string, moderator = false): CommandContext {
    return {
      actor: { platform: "telegram", id: user, name: user },
      moderator,
      conversation: this.conversation,
      locale: "en",
      surface: this.surface,
      session: this.session,
      ...commandServices(engine),
      ageRestricted: false,
    };
  }

  /** Type a line as `user`; returns the notices it produced. */
  async say(line: string, user = "starter", moderator = false): Promise<string> {
    const from = this.surface.notices.length;
    const command = /^\/(\w+)\s*([\s\S]*)$/.exec(line);
    const action =
      command === null
        ? ({ kind: "text", text: line, addressed: true } as const)
        : ({ kind: "command", name: command[1] ?? "", text: command[2] ?? "", addressed: true } as const);
    const result = await handleAction(action, this.context(user, moderator), () => {});
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    return this.surface.notices.slice(from).join("\n");
  }
}

/** An entry's text long enough that a full list takes more than one message. */
const FILLER = "The tide keeps a ledger of every name spoken on the pier.";

const isProse = (req: FakeRequest) =>
  req.path === "/chat/completions" && req.body?.stream === true && !Array.isArray(req.body?.tools);

/** Everything the last prose request of the writing run told the model. */
function lastProsePrompt(): string {
  const prose = model.requests.filter(isProse).at(-1);
  return JSON.stringify(prose?.body?.messages ?? []);
}

describe("/lore", () => {
  it("adds, lists, shows, edits and removes entries by number; the bible's cast is already there", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    const first = await group.say("/lore");
    // The agent's bible became lore readers can see.
    expect(first).toMatch(/1\. \[.+\] .+\(from the story bible\)/);
    const bible = (await engine.lore.list({ storyId: group.session.storyId ?? "" })).length;
    expect(bible).toBeGreaterThan(0);

    expect(await group.say("/lore add Red Lantern, lanterns, #5: A secret society that trades in ghosts.")).toContain(
      `Lore entry ${bible + 1} added [Red Lantern, lanterns]`,
    );
    expect(await group.say("/lore add *: Magic always costs a memory.")).toContain(`Lore entry ${bible + 2} added [*]`);
    const list = await group.say("/lore");
    expect(list).toContain(`${bible + 1}. [Red Lantern, lanterns] A secret society that trades in ghosts. #5`);
    expect(list).toContain(`${bible + 2}. [*] Magic always costs a memory.`);
    expect(await group.say("/lore add *, moth: A moth seal.")).toContain("added [moth]");
    expect(await group.say("/lore")).toContain(`${bible + 3}. [moth] A moth seal. *`);
    expect(await group.say(`/lore ${bible + 1}`)).toContain("A secret society that trades in ghosts.");

    await group.say(`/lore edit ${bible + 1} Red Lantern: A society of lamplighters.`);
    expect(await group.say(`/lore ${bible + 1}`)).toContain("A society of lamplighters.");
    expect(await group.say(`/lore remove ${bible + 1}`)).toContain(`Lore entry ${bible + 1} removed [Red Lantern]`);
    expect(await group.say("/lore")).toContain(`${bible + 1}. [*] Magic always costs a memory.`);
    expect(await group.say("/lore remove 99")).toContain(
      `There is no lore entry 99. /lore lists them (there are ${bible + 2}).`,
    );
  });

  it("in a group only the starter and moderators change lore; anyone may read it; a refusal changes nothing", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    const storyId = group.session.storyId ?? "";
    const before = await engine.lore.list({ storyId });
    expect(await group.say("/lore add moth: A moth seal.", "guest")).toContain(
      "Only the reader who started this story or a moderator can do that here.",
    );
    expect(await group.say("/lore remove 1", "guest")).toContain("Only the reader who started this story");
    expect(await engine.lore.list({ storyId })).toEqual(before);
    expect(await group.say("/lore", "guest")).toContain("1. [");
    expect(await group.say("/lore add moth: A moth seal.", "admin", true)).toContain("added [moth]");
  });

  it("refuses bad entries with the reason and keeps the list as it was", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    const storyId = group.session.storyId ?? "";
    const before = await engine.lore.list({ storyId });
    expect(await group.say("/lore add /(a+)+$/: slow")).toContain("can take forever to match");
    expect(await group.say(`/lore add moth: ${"x".repeat(LORE_LIMITS.content + 1)}`)).toContain(
      `the limit is ${LORE_LIMITS.content}`,
    );
    expect(await group.say("/lore add : nothing")).toContain("Give at least one key");
    expect(await group.say("/lore frobnicate")).toContain("Use /lore to list the entries");
    expect(await engine.lore.list({ storyId })).toEqual(before);
  });

  it("stops at the story's entry limit, counting every entry, and a removal makes room again", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    const owner = { storyId: group.session.storyId ?? "" };
    const existing = (await engine.lore.list(owner)).length;
    for (let i = existing; i < LORE_LIMITS.storyEntries; i++) {
      await engine.lore.add(owner, { keys: [`k${i}`], content: FILLER, constant: false, order: 100 });
    }
    expect(await group.say("/lore add one more: too many")).toContain(
      `There are already ${LORE_LIMITS.storyEntries} lore entries, the limit.`,
    );
    expect(await engine.lore.list(owner)).toHaveLength(LORE_LIMITS.storyEntries);
    // A long list is sent in parts within the chat's message limit, every entry in one.
    const from = group.surface.notices.length;
    await group.say("/lore");
    const parts = group.surface.notices.slice(from);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.every((p) => p.length <= 4000)).toBe(true);
    expect(parts.join("\n")).toContain(`${LORE_LIMITS.storyEntries}. [k${LORE_LIMITS.storyEntries - 1}] ${FILLER}`);
    await group.say("/lore remove 1");
    expect(await group.say("/lore add one more: fits now")).toContain("added [one more]");
  });

  it("two adds at once for the last place: exactly one is taken", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    const owner = { storyId: group.session.storyId ?? "" };
    const existing = (await engine.lore.list(owner)).length;
    for (let i = existing; i < LORE_LIMITS.storyEntries - 1; i++) {
      await engine.lore.add(owner, { keys: [`k${i}`], content: "x", constant: false, order: 100 });
    }
    const entry = (key: string) => ({ keys: [key], content: "y", constant: false, order: 100 });
    const results = await Promise.allSettled([engine.lore.add(owner, entry("a")), engine.lore.add(owner, entry("b"))]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    expect(await engine.lore.list(owner)).toHaveLength(LORE_LIMITS.storyEntries);
  });

  it("the prompt carries an entry when its key comes up and leaves it out when not; the run records it", async () => {
    const group = new Group();
    await group.say("/start a lighthouse keeper hears a bell under the sea");
    await group.say("/lore add Red Lantern: A secret society that trades in ghosts.");
    await group.say("I walk along the shore");
    expect(lastProsePrompt()).not.toContain("trades in ghosts");
    await group.say("I follow the Red Lantern procession");
    expect(lastProsePrompt()).toContain("A secret society that trades in ghosts.");
    const runs = await engine.db.agentRun.findMany({
      where: { storyId: group.session.storyId ?? "", task: "continue" },
      orderBy: { createdAt: "asc" },
    });
    const lore = runs.map((r) => (r.checks as { lore?: { included: string[] } }).lore?.included ?? []);
    expect(lore.at(-1)).toContain("Red Lantern");
  });
});

describe("theme lore", () => {
  it("moderators give a theme lore; a story started with the theme gets a copy, in its opening's prompt", async () => {
    const group = new Group();
    await engine.themes.add({ platform: "telegram", externalId: "g1" }, { name: "Rain City", rating: "general" });
    expect(await group.say("/lore theme Rain City add rain: It has rained here for forty years.", "guest")).toContain(
      "Only a chat admin can change a theme's lore.",
    );
    expect(
      await group.say("/lore theme Rain City add rain: It has rained here for forty years.", "admin", true),
    ).toContain("Lore entry 1 added [rain]");
    expect(await group.say("/lore theme Rain City", "guest")).toContain(
      "1. [rain] It has rained here for forty years.",
    );
    expect(await group.say("/lore theme Nowhere add x: y", "admin", true)).toContain("There is no theme “Nowhere”");

    const result = await handleAction(
      {
        kind: "command",
        name: "start",
        raw: { theme: "Rain City", scenario: "a detective walks in the rain" },
        addressed: true,
      },
      group.context("starter"),
      () => {},
    );
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    const story = await engine.lore.list({ storyId: group.session.storyId ?? "" });
    expect(story.find((e) => e.source === "theme")).toMatchObject({ keys: ["rain"] });
    expect(JSON.stringify(model.requests.map((r) => r.body?.messages ?? []))).toContain(
      "It has rained here for forty years.",
    );
  });
});
