/**
 * /talk end to end in the core: real wiring, real SQLite (or PostgreSQL), the real openai
 * SDK against the fake story model, a FakeSurface per conversation. The reply streams like
 * a chapter, leaves the story where it was, is recorded as a `talk` run with its 👍/👎 as
 * the outcome, may be cited by the reader's next action, and reaches `train:export` under
 * its own task.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ActionResult, handleAction, type ReaderAction } from "../../commands/actions.ts";
import type { CommandContext, Session } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { TALK_MARKER } from "../../src/agent/prompts.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { t } from "../../src/i18n/messages.ts";
import type { OfferAction } from "../../src/render/surface.ts";
import { LIMITS } from "../../src/story/limits.ts";
import { exportTrainingData } from "../../src/training/export.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

let dir: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
const logs: string[] = [];

async function open(env: Record<string, string> = {}, language: "en" | "zh" = "en"): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), "inkloom-talk-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder({ language }) });
  engine = await createEngine(
    loadConfig({
      ...queueEnv(),
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_MODEL: "fake",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: await databases.url(dir, "talk"),
      TALK_COOLDOWN_SECONDS: "0",
      ...env,
    }),
    (m) => logs.push(m),
  );
}

beforeEach(() => {
  logs.length = 0;
});

afterEach(async () => {
  await engine?.close();
  await model?.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** One Telegram-like conversation (buttons answer) with one session. */
class Room {
  readonly surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  readonly session: Session = {};
  readonly conversation = { platform: "telegram", workspaceId: "w1", id: "c1" };

  constructor(id = "c1") {
    this.conversation = { platform: "telegram", workspaceId: "w1", id };
    engine.audiences.set(`telegram:${id}`, { surface: this.surface, locale: "en" });
  }

  context(user: string): CommandContext {
    return {
      actor: { platform: "telegram", id: user, name: user },
      moderator: false,
      conversation: this.conversation,
      locale: "en",
      surface: this.surface,
      session: this.session,
      ...commandServices(engine),
      ageRestricted: false,
    };
  }

  async act(action: ReaderAction, user = "starter"): Promise<ActionResult> {
    const result = await handleAction(action, this.context(user), (m) => logs.push(m));
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    return result;
  }

  talk(text: string, user = "starter"): Promise<ActionResult> {
    return this.act({ kind: "command", name: "talk", text, addressed: true }, user);
  }

  async startStory(scenario = "a lighthouse keeper hears a bell under the sea"): Promise<string> {
    await this.act({ kind: "command", name: "start", text: scenario, addressed: true });
    return this.session.storyId ?? "";
  }

  /** The rating buttons offered under the latest reply. */
  ratingButtons(): OfferAction[] {
    return (this.surface.prompts.at(-1)?.rows.flat() ?? []).map((b) => b.action);
  }
}

const talkRuns = (storyId: string) =>
  engine.db.agentRun.findMany({ where: { storyId, task: "talk" }, orderBy: { createdAt: "asc" } });

describe("/talk", () => {
  it("streams the character's reply, offers 👍/👎, records a talk run and leaves the story where it was", async () => {
    await open();
    const room = new Room();
    const storyId = await room.startStory();
    const before = await engine.db.story.findUniqueOrThrow({ where: { id: storyId } });
    const chapters = await engine.db.chapter.count({ where: { storyId } });
    room.surface.prompts.length = 0;

    const result = await room.talk("Elias: who rings the bell at night?");
    expect(result.outcome.kind).toBe("done");
    const reply = room.surface.texts().find((x) => x.startsWith("Elias Wren: "));
    expect(reply).toContain('You ask "who rings the bell at night?"');
    expect(room.surface.prompts.at(-1)?.text).toBe(t("en", "talk.rate", { name: "Elias Wren" }));
    const runs = await talkRuns(storyId);
    expect(runs).toHaveLength(1);
    const run = runs[0];
    expect(run).toMatchObject({ task: "talk", method: "cot", status: "ok", chapterId: before.headChapterId });
    expect(JSON.stringify(run?.messages)).toContain("Character: Elias Wren");
    expect(room.ratingButtons()).toEqual([
      { kind: "rate-talk", runId: run?.id, value: 1 },
      { kind: "rate-talk", runId: run?.id, value: -1 },
    ]);
    // Not canon: no chapter, the same head and revision, no bible change.
    const after = await engine.db.story.findUniqueOrThrow({ where: { id: storyId } });
    expect(after.headChapterId).toBe(before.headChapterId);
    expect(after.revision).toBe(before.revision);
    expect(await engine.db.chapter.count({ where: { storyId } })).toBe(chapters);
  });

  it("answers an unknown name with the names of the cast, and records nothing", async () => {
    await open();
    const room = new Room();
    const storyId = await room.startStory();
    await room.talk("Tomas: hello?");
    const names = ["Mara Quill, Elias Wren", "Elias Wren, Mara Quill"];
    expect(names.map((n) => t("en", "talk.unknownCharacter", { name: "Tomas", names: n }))).toContain(
      room.surface.notices.at(-1),
    );
    expect(await talkRuns(storyId)).toHaveLength(0);
  });

  it("refuses a message over the limit, a missing message, and talk before any story", async () => {
    await open();
    const room = new Room();
    await room.talk("Mara: hi");
    expect(room.surface.notices.at(-1)).toBe(t("en", "error.noStory"));
    const storyId = await room.startStory();
    await room.talk(`Mara: ${"x".repeat(LIMITS.talk + 1)}`);
    expect(room.surface.notices.at(-1)).toContain(`${LIMITS.talk}`);
    await room.talk("Mara");
    expect(room.surface.notices.at(-1)).toContain("/talk Mara: do you trust the ferryman?");
    expect(await talkRuns(storyId)).toHaveLength(0);
  });

  it("makes a reader wait out the cooldown, while another reader may talk", async () => {
    await open({ TALK_COOLDOWN_SECONDS: "300" });
    const room = new Room();
    const storyId = await room.startStory();
    await room.talk("Mara: are you cold?");
    await room.talk("Mara: and now?");
    expect(room.surface.notices.at(-1)).toMatch(/^Please wait \d+ s before talking to a character again\.$/);
    await room.talk("Mara: may I ask too?", "other");
    expect((await talkRuns(storyId)).map((r) => JSON.stringify(r.messages).includes("may I ask too?"))).toEqual([
      false,
      true,
    ]);
  });

  it("a reply the model fails is reported, kept as a failed run, and costs no cooldown", async () => {
    // No plans ahead: the failure is meant for the talk request.
    await open({ TALK_COOLDOWN_SECONDS: "300", PREPLAN: "off" });
    const room = new Room();
    const storyId = await room.startStory();
    model.enqueue({ kind: "error", status: 400, message: "bad request" });
    await room.talk("Mara: are you there?");
    expect(room.surface.notices.at(-1)).toBe(t("en", "model.bad_request"));
    expect((await talkRuns(storyId)).map((r) => r.status)).toEqual(["failed"]);
    expect(room.surface.prompts.some((p) => p.text.startsWith("How was"))).toBe(false);
    // The cooldown was given back: the reader may ask again at once.
    await room.talk("Mara: are you there now?");
    expect(room.surface.texts().filter((x) => x.startsWith("Mara Quill: "))).toEqual([
      expect.stringContaining('You ask "are you there now?"'),
    ]);
    expect((await talkRuns(storyId)).map((r) => r.status)).toEqual(["failed", "ok"]);
  });

  it("records 👍/👎 on a reply as its own outcome, not the chapter's", async () => {
    await open();
    const room = new Room();
    const storyId = await room.startStory();
    await room.talk("Mara: are you afraid?");
    const [up, down] = room.ratingButtons();
    if (up?.kind !== "rate-talk" || down?.kind !== "rate-talk") throw new Error("no rating buttons");
    const first = await room.act({ kind: "press", action: down });
    expect(first.reply).toBe(t("en", "talk.thanks", { up: 0, down: 1 }));
    const second = await room.act({ kind: "press", action: up });
    expect(second.reply).toBe(t("en", "talk.thanks", { up: 1, down: 0 }));
    const third = await room.act({ kind: "press", action: up }, "other");
    expect(third.reply).toBe(t("en", "talk.thanks", { up: 2, down: 0 }));
    const head = (await engine.db.story.findUniqueOrThrow({ where: { id: storyId } })).headChapterId ?? "";
    expect(await engine.db.reaction.count({ where: { chapterId: head, kind: "rating" } })).toBe(0);
    // A button carried to another conversation is refused.
    const elsewhere = new Room("c2");
    const refused = await elsewhere.act({ kind: "press", action: up });
    expect(refused).toMatchObject({ alert: true, reply: t("en", "error.notYourStory") });
  });

  it("carries the reader's latest exchange into their next action's prompt, marked, and no further", async () => {
    await open();
    const room = new Room();
    const storyId = await room.startStory();
    await room.talk("Elias: where is the bell?");
    await room.talk("Elias: and who rang it?");
    await room.act({ kind: "text", text: "I go where Elias said", addressed: true });
    // The chapter's own writing run (plans made ahead for the offered choices aside).
    const written = async () =>
      (await engine.db.agentRun.findMany({ where: { storyId, task: "continue", status: "ok" } })).map((r) =>
        JSON.stringify(r.messages),
      );
    const prompt = (await written()).find((m) => m.includes("Reader's action: I go where Elias said")) ?? "";
    expect(prompt).toContain(TALK_MARKER);
    expect(prompt).toContain("Reader to Elias Wren: and who rang it?");
    expect(prompt).not.toContain("where is the bell?");
    // The next chapter, with no new exchange, carries none.
    await room.act({ kind: "text", text: "I wait for dawn", addressed: true });
    const later = (await written()).find((m) => m.includes("Reader's action: I wait for dawn"));
    expect(later).toBeDefined();
    expect(later).not.toContain(TALK_MARKER);
  });

  it("does not carry another reader's exchange into an action", async () => {
    await open();
    const room = new Room();
    const storyId = await room.startStory();
    await room.talk("Elias: a secret for me alone?", "other");
    await room.act({ kind: "text", text: "I light the lamp", addressed: true });
    const runs = await engine.db.agentRun.findMany({ where: { storyId, task: "continue", status: "ok" } });
    const prompt = runs.map((r) => JSON.stringify(r.messages)).find((m) => m.includes("I light the lamp"));
    expect(prompt).toBeDefined();
    expect(prompt).not.toContain(TALK_MARKER);
  });

  it("answers in the story's language", async () => {
    await open({}, "zh");
    const room = new Room();
    await room.startStory("一个灵媒在雨夜的旅馆里听见钟声");
    await room.talk("林月：你害怕吗？");
    const reply = room.surface.texts().find((x) => x.startsWith("林月: "));
    expect(reply).toContain("你问“你害怕吗？”");
  });

  it("puts rated replies in train:export under their own task", async () => {
    await open();
    const room = new Room();
    await room.startStory();
    await room.talk("Mara: liked reply");
    const [up] = room.ratingButtons();
    if (up?.kind !== "rate-talk") throw new Error("no rating buttons");
    await room.act({ kind: "press", action: up });
    await room.talk("Elias: unrated reply", "other");
    await room.talk("Elias: disliked reply", "third");
    const [, down] = room.ratingButtons();
    if (down?.kind !== "rate-talk") throw new Error("no rating buttons");
    await room.act({ kind: "press", action: down }, "third");

    const data = await exportTrainingData(engine.db, { validationShare: 0 });
    const talkExamples = data.train.filter(
      (e) => e.messages[0]?.content === "Inkloom: talk\nAnswer the reader in character.",
    );
    expect(talkExamples).toHaveLength(1);
    expect(JSON.stringify(talkExamples[0])).toContain("liked reply");
    expect(data.card.counts).toContainEqual({ split: "train", task: "talk", method: "cot", examples: 1 });
  });
});
