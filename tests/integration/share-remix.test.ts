/**
 * /share and /remix through the core (commands/share.ts, src/story/sharing.ts): real
 * wiring, real SQLite, the fake model, a FakeSurface per conversation.
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
import { bookToMarkdown } from "../../src/story/book.ts";
import { newShareCode, parseShareCode, SHARE_CODE_LENGTH } from "../../src/story/sharing.ts";
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

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-share-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: await databases.url(dir, "share"),
    // No planning ahead: its model calls run after a chapter's job and would be counted
    // against the remix's (on BullMQ they can still be running when a test counts).
    PREPLAN: "off",
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

/** One conversation, as its adapter would describe it to the core. */
class Room {
  readonly surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  readonly session: Session = {};
  readonly conversation: { platform: string; workspaceId: string; id: string };

  constructor(
    readonly platform: "console" | "telegram" | "discord",
    workspace: string,
    id: string,
    readonly extra: Partial<CommandContext> = {},
  ) {
    this.conversation = { platform, workspaceId: workspace, id };
    engine.audiences.set(`${platform}:${id}`, { surface: this.surface, locale: "en" });
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
      ...this.extra,
    };
  }

  async act(action: ReaderAction, user = "starter", moderator = false): Promise<ActionResult> {
    const result = await handleAction(action, this.context(user, moderator), (m) => logs.push(m));
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    return result;
  }

  command(name: string, text = "", user = "starter", moderator = false): Promise<ActionResult> {
    return this.act({ kind: "command", name, text, addressed: true }, user, moderator);
  }

  /** The last notice shown here. */
  get said(): string {
    return this.surface.notices.at(-1) ?? "";
  }
}

/** A story started in `room` by "starter", with `chapters` chapters written, and a lore entry. */
async function storyIn(room: Room, chapters = 1): Promise<string> {
  expect((await room.command("start", "a lighthouse keeper hears a bell under the sea")).outcome.kind).toBe("writing");
  for (let n = 1; n < chapters; n++) {
    const result = await room.act({ kind: "text", text: "1", addressed: true });
    expect(result.outcome.kind).toBe("writing");
  }
  const storyId = room.session.storyId ?? "";
  await engine.db.loreEntry.create({
    data: { storyId, keys: "bell, /tide\\w*/", content: "The bell rings only at low tide.", order: 5 },
  });
  await engine.db.character.updateMany({ where: { storyId }, data: { notes: "keeps a diary" } });
  return storyId;
}

async function shareIn(room: Room): Promise<string> {
  await room.command("share");
  const code = /code: ([a-z0-9]+)/.exec(room.surface.notices.filter((n) => n.includes("code: ")).at(-1) ?? "")?.[1];
  expect(code).toHaveLength(SHARE_CODE_LENGTH);
  return code ?? "";
}

describe("share codes", () => {
  it("are 16 characters of an unambiguous alphabet, drawn at random", () => {
    const codes = new Set(Array.from({ length: 2000 }, () => newShareCode()));
    expect(codes.size).toBe(2000);
    for (const code of codes) expect(code).toMatch(/^[a-km-np-z2-9]{16}$/);
  });

  it("are read from a code, a deep link payload or a pasted link, and nothing else", () => {
    const code = newShareCode();
    expect(parseShareCode(code.toUpperCase())).toBe(code);
    expect(parseShareCode(`remix-${code}`)).toBe(code);
    expect(parseShareCode(`https://t.me/inkbot?start=remix-${code}`)).toBe(code);
    expect(parseShareCode(`${code}x`)).toBeUndefined();
    expect(parseShareCode("' OR 1=1 --")).toBeUndefined();
  });
});

describe("/share", () => {
  it("gives the starter a code, the same one when asked again, and refuses anyone else", async () => {
    const room = new Room("telegram", "g1", "g1");
    const storyId = await storyIn(room);
    const code = await shareIn(room);
    expect((await engine.db.story.findUniqueOrThrow({ where: { id: storyId } })).shareCode).toBe(code);
    await room.command("share");
    expect(room.surface.notices.at(-1)).toContain(code);

    const refused = await room.command("share", "", "someone", true);
    expect(refused.outcome.kind).toBe("failed");
    expect(room.said).toBe(t("en", "share.notStarter"));
    const off = await room.command("share", "off", "someone", true);
    expect(off.outcome.kind).toBe("failed");
    expect((await engine.db.story.findUniqueOrThrow({ where: { id: storyId } })).shareRevokedAt).toBeNull();
  });

  it("is refused where the workspace turned sharing off, and a code from there cannot be remixed", async () => {
    const room = new Room("discord", "guild-a", "thread-a");
    await storyIn(room);
    const code = await shareIn(room);
    await room.command("settings", "sharing off", "mod", true);
    expect((await engine.settings.get("discord", "guild-a")).sharing).toBe(false);
    expect((await room.command("share")).outcome.kind).toBe("failed");
    expect(room.said).toContain("Sharing is turned off here");

    const other = new Room("discord", "guild-b", "thread-b");
    expect((await other.command("remix", code, "reader")).outcome.kind).toBe("failed");
    expect(other.said).toBe(t("en", "share.originOff"));
    expect(await engine.db.story.count({ where: { remixOfId: { not: null } } })).toBe(0);
  });

  it("off revokes the code: a remix by it answers that it was revoked", async () => {
    const room = new Room("console", "local", "local");
    await storyIn(room);
    const code = await shareIn(room);
    await room.command("share", "off");
    expect(room.said).toBe(t("en", "share.revoked"));
    const other = new Room("telegram", "dm-reader", "dm-reader");
    expect((await other.command("remix", code, "reader")).outcome.kind).toBe("failed");
    expect(other.said).toBe(t("en", "share.revokedCode"));
    expect((await other.command("remix", newShareCode(), "reader")).outcome.kind).toBe("failed");
    expect(other.said).toBe(t("en", "share.unknownCode"));
    // Shared again: a new code; the revoked one stays dead (one code per story is kept).
    const again = await shareIn(room);
    expect(again).not.toBe(code);
    expect((await other.command("remix", code, "reader")).outcome.kind).toBe("failed");
    expect(other.said).toBe(t("en", "share.unknownCode"));
    expect((await other.command("remix", again, "reader")).outcome.kind).toBe("writing");
  });

  it("offers a deep link where the platform has one, and a Make my version button where it has buttons", async () => {
    const telegram = new Room("telegram", "t1", "t1", {
      shareOffer: { link: (code) => `https://t.me/inkbot?start=remix-${code}` },
    });
    await storyIn(telegram);
    const code = await shareIn(telegram);
    expect(telegram.said).toContain(`https://t.me/inkbot?start=remix-${code}`);

    const discord = new Room("discord", "g", "th", { shareOffer: { button: true } });
    await storyIn(discord);
    const discordCode = await shareIn(discord);
    const button = discord.surface.prompts.at(-1)?.rows[0]?.[0];
    expect(button?.action).toEqual({ kind: "remix", code: discordCode });
    expect(button?.label).toBe(t("en", "share.button"));
  });
});

describe("/remix", () => {
  it("starts the reader's own story from the setup: scenario, cast with looks, art style, lore, rating, credit", async () => {
    const room = new Room("telegram", "g1", "g1");
    const originalId = await storyIn(room);
    await engine.db.story.update({ where: { id: originalId }, data: { rating: "teen" } });
    const code = await shareIn(room);
    const original = await engine.db.story.findUniqueOrThrow({
      where: { id: originalId },
      include: { characters: true },
    });
    const before = model.chatRequests().length;

    const reader = new Room("telegram", "dm-reader", "dm-reader");
    const result = await reader.command("remix", code, "reader");
    expect(result.outcome.kind).toBe("writing");
    const remixId = reader.session.storyId ?? "";
    const remix = await engine.db.story.findUniqueOrThrow({
      where: { id: remixId },
      include: { characters: true, lore: true, owner: true, chapters: true },
    });
    expect(remix.remixOfId).toBe(originalId);
    expect(remix.remixOfChapter).toBeNull();
    expect(remix.owner.externalId).toBe("reader");
    expect(remix.conversationId).toBe("telegram:dm-reader");
    expect(remix.premise).toBe(original.premise);
    expect(remix.rating).toBe("teen");
    expect(remix.artStyle).toBe(original.artStyle);
    for (const c of original.characters) {
      expect(remix.characters).toContainEqual(
        expect.objectContaining({ name: c.name, appearance: c.appearance, notes: "keeps a diary" }),
      );
    }
    // Every entry comes along: the reader's, and those the agent's bible made (source "bible").
    const entries = (rows: { keys: string; content: string; source: string; order: number }[]) =>
      rows
        .map(({ keys, content, source, order }) => ({ keys, content, source, order }))
        .sort((a, b) => a.keys.localeCompare(b.keys));
    const originalLore = await engine.db.loreEntry.findMany({ where: { storyId: originalId } });
    expect(entries(remix.lore)).toEqual(entries(originalLore));
    expect(remix.lore.filter((l) => l.source === "reader")).toEqual([
      expect.objectContaining({ keys: "bell, /tide\\w*/", content: "The bell rings only at low tide.", order: 5 }),
    ]);
    expect(remix.chapters).toEqual([expect.objectContaining({ number: 1, status: "done", task: "open" })]);
    expect(reader.surface.notices[0]).toBe(t("en", "remix.started", { title: original.title }));
    // The opening plan was told to keep the cast, with their looks.
    const opening =
      model
        .chatRequests()
        .slice(before)
        .map((r) => JSON.stringify(r.body.messages))
        .find((m) => m.includes("Plan the story now")) ?? "";
    const first = original.characters[0];
    expect(opening).toContain("cast and world are already set");
    expect(opening).toContain(`${first?.name}`);
    expect(opening).toContain(`${first?.appearance}`);
    // The original is untouched.
    expect(await engine.db.story.count({ where: { id: originalId, remixOfId: null } })).toBe(1);
  });

  it("with a chapter, copies the branch up to it, with summaries and choices, and continues from there", async () => {
    const room = new Room("console", "local", "local");
    const originalId = await storyIn(room, 3);
    const code = await shareIn(room);
    const before = model.chatRequests().length;
    const reader = new Room("telegram", "dm-r", "dm-r");

    const result = await reader.command("remix", `${code} 2`, "reader");
    expect(result.outcome.kind).toBe("done");
    expect(model.chatRequests().length).toBe(before);
    const remixId = reader.session.storyId ?? "";
    const remix = await engine.db.story.findUniqueOrThrow({
      where: { id: remixId },
      include: { head: { include: { choices: true } }, chapters: { orderBy: { number: "asc" } } },
    });
    const originals = await engine.db.chapter.findMany({
      where: { storyId: originalId, number: { lte: 2 } },
      orderBy: { number: "asc" },
      include: { choices: true },
    });
    expect(remix.remixOfChapter).toBe(2);
    expect(remix.chapters.map((c) => [c.number, c.status, c.text, c.summary])).toEqual(
      originals.map((c) => [c.number, "done", c.text, c.summary]),
    );
    expect(remix.chapters[1]?.parentId).toBe(remix.chapters[0]?.id);
    expect(remix.head?.number).toBe(2);
    expect(remix.head?.choices.map((c) => c.label).sort()).toEqual(originals[1]?.choices.map((c) => c.label).sort());
    expect(reader.surface.notices[0]).toBe(t("en", "remix.startedAt", { title: remix.title, chapter: 2 }));
    const offered = reader.surface.calls.filter((c) => c.kind === "offerChoices");
    expect(offered).toHaveLength(1);

    // It continues from there, as the reader's own story.
    const next = await reader.act({ kind: "text", text: "1", addressed: true }, "reader");
    expect(next.outcome.kind).toBe("writing");
    const continued = await engine.db.story.findUniqueOrThrow({ where: { id: remixId }, include: { head: true } });
    expect(continued.head).toEqual(expect.objectContaining({ number: 3, status: "done" }));
    // The original's branch is still three chapters long.
    expect(await engine.db.chapter.count({ where: { storyId: originalId } })).toBe(3);
  });

  it("refuses a chapter the shared branch does not have, and changes nothing", async () => {
    const room = new Room("console", "local", "local");
    await storyIn(room, 2);
    const code = await shareIn(room);
    const reader = new Room("telegram", "dm-r", "dm-r");
    expect((await reader.command("remix", `${code} 5`, "reader")).outcome.kind).toBe("failed");
    expect(reader.said).toBe(t("en", "share.chapterRange", { input: 5, max: 2 }));
    expect(await engine.db.story.count()).toBe(1);
  });

  it("keeps an adult story out of conversations that are not age-restricted", async () => {
    const room = new Room("discord", "g", "nsfw-thread", { ageRestricted: true });
    const originalId = await storyIn(room);
    await engine.db.story.update({ where: { id: originalId }, data: { rating: "adult" } });
    const code = await shareIn(room);

    const sfw = new Room("discord", "g", "sfw-thread");
    expect((await sfw.command("remix", code, "reader")).outcome.kind).toBe("failed");
    expect(sfw.said).toBe(t("en", "share.adultRemix"));
    expect(await engine.db.story.count()).toBe(1);

    const nsfw = new Room("discord", "g", "nsfw-2", { ageRestricted: true });
    expect((await nsfw.command("remix", code, "reader")).outcome.kind).toBe("writing");
    const remix = await engine.db.story.findUniqueOrThrow({ where: { id: nsfw.session.storyId ?? "" } });
    expect(remix.rating).toBe("adult");
  });

  it("starts from a Telegram deep link's /start payload, and from a Make my version press", async () => {
    const room = new Room("telegram", "g1", "g1");
    const originalId = await storyIn(room);
    const code = await shareIn(room);
    const reader = new Room("telegram", "dm-r", "dm-r");
    const linked = await reader.command("start", `remix-${code}`, "reader");
    expect(linked.outcome.kind).toBe("writing");
    expect((await engine.db.story.findUniqueOrThrow({ where: { id: reader.session.storyId ?? "" } })).remixOfId).toBe(
      originalId,
    );

    const presser = new Room("discord", "g2", "new-thread");
    const pressed = await presser.act({ kind: "press", action: { kind: "remix", code } }, "presser");
    expect(pressed.outcome.kind).toBe("writing");
    const theirs = await engine.db.story.findUniqueOrThrow({
      where: { id: presser.session.storyId ?? "" },
      include: { owner: true },
    });
    expect(theirs.owner.externalId).toBe("presser");
    expect(theirs.conversationId).toBe("discord:new-thread");
  });

  it("credits the original in /stories and in the export", async () => {
    const room = new Room("console", "local", "local");
    await storyIn(room, 2);
    const code = await shareIn(room);
    const title = (await engine.db.story.findFirstOrThrow()).title;
    await room.command("remix", `${code} 1`);
    await room.command("stories");
    expect(room.said).toContain(t("en", "remix.creditAt", { title, chapter: 1 }));
    const book = await engine.books.exportBook(room.session.storyId ?? "", "en");
    expect(bookToMarkdown(book)).toContain(t("en", "remix.creditAt", { title, chapter: 1 }));
    expect(bookToMarkdown(book)).toContain(`/remix ${code}`);
  });
});

describe("/share at once", () => {
  it("twice at the same moment gives one code, answered to both", async () => {
    const room = new Room("console", "local", "local");
    const storyId = await storyIn(room);
    const actor = { platform: "console", id: "starter", name: "starter" };
    const codes = await Promise.all([engine.stories.share(storyId, actor), engine.stories.share(storyId, actor)]);
    expect(codes[0]).toBe(codes[1]);
    expect((await engine.db.story.findUniqueOrThrow({ where: { id: storyId } })).shareCode).toBe(codes[0]);
  });
});
