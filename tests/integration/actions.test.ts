/**
 * Reader actions, handled once in the core (commands/actions.ts): the same action gets the
 * same checks whichever platform it came from (the adapters only decode events into these
 * actions; the end-to-end tests cover the decoding). Real wiring, real SQLite, the real
 * openai SDK against the fake model, a FakeSurface per conversation.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ActionResult, handleAction, type ReaderAction } from "../../commands/actions.ts";
import type { CommandContext, Session } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { t } from "../../src/i18n/messages.ts";
import { LIMITS } from "../../src/story/limits.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

const PLATFORMS = ["console", "telegram", "discord"] as const;
type Platform = (typeof PLATFORMS)[number];

let dir: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-actions-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: await databases.url(dir, "actions"),
  });
  engine = await createEngine(config, (m) => logs.push(m));
  logs.length = 0;
});

afterEach(async () => {
  await engine?.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** One conversation on a platform, as its adapter would describe it to the core. */
class Room {
  readonly surface: FakeSurface;
  readonly sessions = new Map<string, Session>();
  readonly conversation: { platform: Platform; workspaceId: string; id: string };

  constructor(
    readonly platform: Platform,
    id: string,
    options: { voting?: boolean; answers?: { buttons: boolean; replies: boolean } } = {},
  ) {
    this.conversation = { platform, workspaceId: "w1", id };
    this.surface = new FakeSurface({
      limits: { maxMessageLength: 4000, minEditIntervalMs: 0 },
      ...(options.answers === undefined ? {} : { answers: options.answers }),
    });
    engine.audiences.set(`${platform}:${id}`, {
      surface: this.surface,
      locale: "en",
      ...(options.voting === true ? { voting: { windowSeconds: 600 } } : {}),
    });
  }

  /** The conversation's one session (adapters keep one per conversation). */
  get session(): Session {
    let session = this.sessions.get("one");
    if (session === undefined) {
      session = {};
      this.sessions.set("one", session);
    }
    return session;
  }

  context(user: string, moderator = false): CommandContext {
    return {
      actor: { platform: this.platform, id: user, name: user },
      moderator,
      conversation: this.conversation,
      locale: "en",
      surface: this.surface,
      session: this.session,
      ...commandServices(engine),
      ageRestricted: false,
    };
  }

  async act(action: ReaderAction, user = "starter", moderator = false): Promise<ActionResult> {
    const result = await handleAction(action, this.context(user, moderator), (m) => logs.push(m));
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    return result;
  }

  /** A story started here by `starter`, its first chapter written. */
  async startStory(): Promise<{ storyId: string; revision: number }> {
    const result = await this.act({
      kind: "command",
      name: "start",
      text: "a lighthouse keeper hears a bell under the sea",
      addressed: true,
    });
    expect(result.outcome.kind).toBe("writing");
    const storyId = this.session.storyId ?? "";
    const { revision } = await engine.queries.state(storyId);
    return { storyId, revision };
  }
}

const pick = (storyId: string, revision: number, position = 1): ReaderAction => ({
  kind: "press",
  action: { kind: "pick", storyId, revision, position },
});

describe.each(PLATFORMS)("reader actions from %s", (platform) => {
  it("counts a pressed pick toward the member's daily quota, as a typed one", async () => {
    const room = new Room(platform, "q1");
    await engine.settings.set(platform, "w1", { dailyQuota: 2 });
    const { storyId, revision } = await room.startStory();
    const pressed = await room.act(pick(storyId, revision));
    expect(pressed.outcome.kind).toBe("writing");
    const chapters = await engine.db.chapter.findMany({ where: { storyId }, select: { requestedById: true } });
    expect(chapters.filter((c) => c.requestedById !== null)).toHaveLength(2);
    // Two chapters today: a third request is refused, pressed or typed, with the same words.
    const { revision: now } = await engine.queries.state(storyId);
    const again = await room.act(pick(storyId, now));
    expect(again).toMatchObject({
      outcome: { kind: "failed" },
      alert: true,
      reply: t("en", "error.quota", { quota: 2 }),
    });
    await room.act({ kind: "text", text: "1", addressed: true });
    expect(room.surface.notices.at(-1)).toBe(t("en", "error.quota", { quota: 2 }));
    // A moderator has no quota.
    expect((await room.act(pick(storyId, now), "starter", true)).outcome.kind).toBe("writing");
  });

  it("refuses a button of a story shown in another conversation, whatever it does", async () => {
    const home = new Room(platform, "home", { voting: true });
    const away = new Room(platform, "away", { voting: true });
    const { storyId, revision } = await home.startStory();
    const head = (await engine.queries.state(storyId)).head?.id ?? "";
    const presses: ReaderAction[] = [
      pick(storyId, revision),
      { kind: "press", action: { kind: "vote", storyId, revision, position: 1 } },
      { kind: "press", action: { kind: "close", storyId, revision } },
      { kind: "press", action: { kind: "suggestion", storyId, revision }, text: "The bell stops" },
      { kind: "press", action: { kind: "retry", storyId } },
      { kind: "press", action: { kind: "rate", chapterId: head, value: 1 } },
    ];
    for (const press of presses) {
      const result = await away.act(press, "starter", true);
      expect(result, JSON.stringify(press)).toMatchObject({
        outcome: { kind: "failed" },
        alert: true,
        reply: t("en", "error.notYourStory"),
      });
    }
    expect((await engine.queries.state(storyId)).revision).toBe(revision);
  });

  it("lets only the starter pick, and refuses a stale pick", async () => {
    const room = new Room(platform, "own");
    const { storyId, revision } = await room.startStory();
    const other = await room.act(pick(storyId, revision), "someone-else");
    expect(other).toMatchObject({ alert: true, reply: t("en", "error.notYourStory") });
    expect((await room.act(pick(storyId, revision))).outcome.kind).toBe("writing");
    const stale = await room.act(pick(storyId, revision, 2));
    expect(stale).toMatchObject({ outcome: { kind: "failed" }, alert: true });
    expect(stale.reply).not.toBe(t("en", "error.internal"));
  });

  it("applies the suggestion limit to a modal's text and to a reply to the prompt alike", async () => {
    const room = new Room(platform, "vote", { voting: true });
    const { storyId, revision } = await room.startStory();
    const long = "x".repeat(LIMITS.writeIn + 1);
    const refusal = t("en", "error.argumentTooLong", { option: "text", length: long.length, max: LIMITS.writeIn });
    const modal = await room.act(
      { kind: "press", action: { kind: "suggestion", storyId, revision }, text: long },
      "member",
    );
    expect(modal).toMatchObject({ alert: true, reply: refusal });
    // "Suggest your own" asks for a reply; the reply gets the same check.
    await room.act({ kind: "press", action: { kind: "suggest", storyId, revision } }, "member");
    const question = [...room.surface.messages.values()].filter((m) => m.kind === "question").at(-1);
    expect(question?.text).toBe(t("en", "vote.suggestPrompt", { max: LIMITS.writeIn }));
    await room.act({ kind: "text", text: long, replyTo: question?.id ?? "", addressed: false }, "member");
    expect(room.surface.notices.at(-1)).toBe(refusal);
    await room.act({ kind: "text", text: "The bell stops", replyTo: question?.id ?? "", addressed: false }, "member");
    expect(room.surface.notices.at(-1)).toBe(t("en", "vote.added", { label: "The bell stops" }));
  });

  it("lets only the starter or a moderator close a vote", async () => {
    const room = new Room(platform, "close", { voting: true });
    const { storyId, revision } = await room.startStory();
    const vote: ReaderAction = { kind: "press", action: { kind: "vote", storyId, revision, position: 2 } };
    const voted = await room.act(vote, "member");
    const { choices } = await engine.queries.state(storyId);
    expect(voted).toMatchObject({ reply: t("en", "vote.recorded", { label: choices[1] ?? "?" }) });
    const close: ReaderAction = { kind: "press", action: { kind: "close", storyId, revision } };
    expect(await room.act(close, "member")).toMatchObject({ alert: true, reply: t("en", "error.notStarter") });
    const closed = await room.act(close, "member", true);
    expect(closed).toMatchObject({ reply: t("en", "pick.taken", { label: choices[1] ?? "?" }) });
    expect(closed.alert).toBeUndefined();
    expect((await engine.queries.state(storyId)).revision).toBeGreaterThan(revision);
  });
});

describe("the /start conversation, once in the core", () => {
  it("asks for a genre with buttons, then for a scenario as a reply, and starts the story", async () => {
    const room = new Room("telegram", "-5", { answers: { buttons: true, replies: true } });
    await room.act({ kind: "command", name: "start", addressed: true });
    expect(
      room.surface.prompts
        .at(-1)
        ?.rows.flat()
        .map((b) => b.action.kind),
    ).toContain("genre");
    await room.act({ kind: "press", action: { kind: "genre", genre: "horror" } });
    const asked = room.surface.prompts.at(-1);
    expect(asked).toMatchObject({ reply: true, text: t("en", "start.scenarioReply") });
    const question = [...room.surface.messages.values()].filter((m) => m.kind === "question").at(-1);
    // In a group, only a reply (or the one who asked) answers it.
    await room.act({ kind: "text", text: "chatter", addressed: false }, "bystander");
    expect(room.session.storyId).toBeUndefined();
    await room.act({ kind: "text", text: "a drowned village", replyTo: question?.id ?? "", addressed: false }, "x");
    const story = await engine.db.story.findUniqueOrThrow({ where: { id: room.session.storyId ?? "" } });
    expect(story).toMatchObject({ genre: "horror", premise: "a drowned village" });
  });

  it("takes a scenario typed at the genre question as the scenario, with no genre", async () => {
    const room = new Room("console", "c", { answers: { buttons: false, replies: false } });
    await room.act({ kind: "command", name: "start", addressed: true });
    expect(room.surface.prompts.at(-1)?.text).toContain("1) ");
    await room.act({ kind: "text", text: "a ghost detective in 1920s Shanghai", addressed: true });
    const story = await engine.db.story.findUniqueOrThrow({ where: { id: room.session.storyId ?? "" } });
    expect(story).toMatchObject({ genre: "none", premise: "a ghost detective in 1920s Shanghai" });
  });

  it("refuses a genre button nobody asked for, and a number that is no genre", async () => {
    const room = new Room("telegram", "9");
    const stale = await room.act({ kind: "press", action: { kind: "genre", genre: "sweet" } });
    expect(stale).toMatchObject({ alert: true, reply: t("en", "error.stalePick") });
    await room.act({ kind: "command", name: "start", addressed: true });
    await room.act({ kind: "text", text: "99", addressed: true });
    expect(room.surface.notices.at(-1)).toBe(t("en", "start.badGenre", { input: "99", max: 7 }));
    expect(room.session.storyId).toBeUndefined();
  });

  it("reads one word naming a genre after /start as the genre (a deep link)", async () => {
    const room = new Room("telegram", "7");
    await room.act({ kind: "command", name: "start", text: "horror", addressed: true });
    expect(room.surface.prompts.at(-1)?.reply).toBe(true);
    expect(room.session.ask).toMatchObject({ field: "scenario", genre: "horror" });
  });
});
