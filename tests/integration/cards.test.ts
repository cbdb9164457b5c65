/**
 * /card through the core (commands/actions.ts) with real wiring and a real database: who may
 * import, what a re-import replaces, what is cut, and that a refused card changes nothing.
 * The adapters' decoding is covered end to end (tests/e2e/cards*.test.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { handleAction, type ReaderAction } from "../../commands/actions.ts";
import type { CommandContext, IncomingFile, Session } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { CARD_LIMITS } from "../../src/story/cards.ts";
import { LORE_LIMITS, validateLore } from "../../src/story/lore-service.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { cardPng, v2Card, v3Card } from "../helpers/cards.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

let dir: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
const logs: string[] = [];
let surface: FakeSurface;
let session: Session;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-cards-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: await databases.url(dir, "cards"),
  });
  engine = await createEngine(config, (m) => logs.push(m));
  surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  engine.audiences.set("telegram:-100", { surface, locale: "en" });
  session = {};
});

afterEach(async () => {
  await engine?.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function attached(content: Buffer | string, name = "card.json"): IncomingFile {
  const bytes = Buffer.from(content);
  return { name, size: bytes.byteLength, read: async (max) => bytes.subarray(0, max + 1) };
}

function context(user: string, moderator = false): CommandContext {
  return {
    actor: { platform: "telegram", id: user, name: user },
    moderator,
    conversation: { platform: "telegram", workspaceId: "-100", id: "-100" },
    locale: "en",
    surface,
    session,
    ...commandServices(engine),
    ageRestricted: false,
  };
}

async function act(action: ReaderAction, user = "starter", moderator = false) {
  const result = await handleAction(action, context(user, moderator), (m) => logs.push(m));
  if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
  await engine.queue.onIdle();
  return result;
}

const cardImport = (file: IncomingFile): ReaderAction => ({
  kind: "command",
  name: "card",
  text: "import",
  addressed: true,
  file,
});

describe("/card import through the core", () => {
  it("in a group, only the starter or a moderator brings a card into the story", async () => {
    await act(cardImport(attached(cardPng(v2Card()), "mara.png")));
    const storyId = session.storyId ?? "";
    expect(storyId).not.toBe("");
    const refused = await act(cardImport(attached(JSON.stringify(v3Card()))), "someone-else");
    expect(refused.outcome.kind).toBe("failed");
    expect(await engine.db.character.count({ where: { storyId, name: "Orrin Hale" } })).toBe(0);
    const byModerator = await act(cardImport(attached(JSON.stringify(v3Card()))), "a-moderator", true);
    expect(byModerator.outcome.kind).toBe("done");
    expect(await engine.db.character.count({ where: { storyId, name: "Orrin Hale" } })).toBe(1);
  });

  it("importing a character again replaces its appearance, notes and the lore its earlier card brought", async () => {
    await act(cardImport(attached(cardPng(v2Card()), "mara.png")));
    const storyId = session.storyId ?? "";
    await engine.db.loreEntry.create({ data: { storyId, keys: "bell", content: "A reader's own entry." } });
    const again = v2Card({
      description: "Now with a scar over one eye.",
      character_book: { entries: [{ keys: ["scar"], content: "The scar came from the lamp.", enabled: true }] },
    });
    await act(cardImport(attached(JSON.stringify(again))));
    expect(surface.notices.join("\n")).toContain("Mara Vell's card replaced their appearance, notes and card lore");
    const cast = await engine.db.character.findMany({ where: { storyId, name: "Mara Vell" } });
    expect(cast).toHaveLength(1);
    expect(cast[0]?.appearance).toBe("Now with a scar over one eye.");
    // The story's own (the reader's and its bible's) stay; the first card's entry is gone.
    const lore = await engine.db.loreEntry.findMany({
      where: { storyId, source: { in: ["reader", "card"] } },
      orderBy: { content: "asc" },
    });
    expect(lore.map((l) => [l.keys, l.source])).toEqual([
      ["bell", "reader"],
      ["scar", "card"],
    ]);
  });

  it("keeps within the story's lore limit, and the entries it adds count toward /lore's", async () => {
    await act(cardImport(attached(cardPng(v2Card()), "mara.png")));
    const storyId = session.storyId ?? "";
    const have = await engine.db.loreEntry.count({ where: { storyId } });
    // The story's lore three short of its limit (through /lore's service, so its counter exists).
    for (let i = have; i < LORE_LIMITS.storyEntries - 3; i++) {
      await engine.lore.add({ storyId }, validateLore(`filler${i}`, `Entry ${i}.`));
    }
    const entries = Array.from({ length: 5 }, (_, i) => ({
      keys: [`orrin${i}`],
      content: `Fact ${i}.`,
      enabled: true,
    }));
    await act(cardImport(attached(JSON.stringify(v3Card({ character_book: { entries } })))));
    expect(surface.notices.join("\n")).toContain("2 lore entries of the card were left out");
    expect(await engine.db.loreEntry.count({ where: { storyId } })).toBe(LORE_LIMITS.storyEntries);
    // The counter saw the card's entries: /lore refuses the next one.
    await expect(engine.lore.add({ storyId }, validateLore("one", "More."))).rejects.toThrow();
    expect(await engine.db.loreEntry.count({ where: { storyId } })).toBe(LORE_LIMITS.storyEntries);
  });

  it("cuts long texts and too many lore entries, and says what it cut", async () => {
    const entries = Array.from({ length: CARD_LIMITS.loreEntries + 3 }, (_, i) => ({
      keys: [`key${i}`, "a,b"],
      content: i === 0 ? "x".repeat(CARD_LIMITS.loreContent + 10) : `entry ${i}`,
      enabled: true,
      insertion_order: i,
    }));
    const card = v3Card({
      name: "N".repeat(CARD_LIMITS.name + 5),
      personality: "p".repeat(CARD_LIMITS.notes + 1),
      // PostgreSQL refuses NUL in text, JSON included: it is dropped.
      extensions: { note: "a\u0000b" },
      character_book: { entries },
    });
    await act(cardImport(attached(JSON.stringify(card))));
    const text = surface.notices.join("\n");
    expect(text).toContain(`name (${CARD_LIMITS.name + 5} → ${CARD_LIMITS.name} characters)`);
    expect(text).toContain(`personality (${CARD_LIMITS.notes + 1} → ${CARD_LIMITS.notes} characters)`);
    expect(text).toContain(`character_book entry 1 (${CARD_LIMITS.loreContent + 10} → ${CARD_LIMITS.loreContent}`);
    expect(text).toContain(`3 lore entries of the card were left out`);
    const storyId = session.storyId ?? "";
    const cast = await engine.db.character.findMany({ where: { storyId } });
    const imported = cast.find((c) => c.name.startsWith("NNN"));
    expect(imported?.name).toHaveLength(CARD_LIMITS.name);
    expect((imported?.card as { data?: { extensions?: unknown } } | null)?.data?.extensions).toEqual({ note: "ab" });
    const lore = await engine.db.loreEntry.findMany({ where: { storyId, source: "card" }, orderBy: { order: "asc" } });
    expect(lore).toHaveLength(CARD_LIMITS.loreEntries);
    // A comma inside a key would split it: it becomes a space.
    expect(lore[0]?.keys).toBe("key0, a b");
    expect(lore[0]?.content).toHaveLength(CARD_LIMITS.loreContent);
  });

  it("refuses a file larger than 5 MB from its size, without reading it, and starts nothing", async () => {
    let read = false;
    const big: IncomingFile = {
      name: "big.png",
      size: 6 * 1024 * 1024,
      read: async () => {
        read = true;
        return new Uint8Array();
      },
    };
    const result = await act(cardImport(big));
    expect(result.outcome.kind).toBe("failed");
    expect(read).toBe(false);
    expect(surface.notices.join("\n")).toContain("That file is 6 MB; a character card may be at most 5 MB");
    expect(await engine.db.story.count()).toBe(0);
  });

  it("asks for an attachment on a chat platform, whatever path is typed", async () => {
    const result = await act({ kind: "command", name: "card", text: "import /etc/passwd", addressed: true });
    expect(result.outcome.kind).toBe("failed");
    expect(surface.notices.join("\n")).toContain("Attach the card");
  });

  it("/card export names the cast when the character is unknown", async () => {
    await act(cardImport(attached(cardPng(v2Card()), "mara.png")));
    await act({ kind: "command", name: "card", text: "export Nobody", addressed: true });
    expect(surface.notices.join("\n")).toContain("There is no character “Nobody” in this story. The cast: ");
  });
});
