import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/db.ts";
import { parseCard } from "../../src/story/character-card.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { cardPng, plainPng, v2Card, v3Card } from "../helpers/cards.ts";
import { TestDatabases } from "../helpers/database.ts";
import { ConsoleProcess, consoleEnv } from "./console-process.ts";

let server: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const running: ConsoleProcess[] = [];

beforeAll(async () => {
  server = await FakeOpenAiServer.start({ responder: storyResponder() });
});
afterAll(async () => {
  await server.close();
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-cards-"));
  dbUrl = await databases.url(dir, "inkloom");
  server.setResponder(storyResponder());
  server.requests.length = 0;
});
afterEach(async () => {
  for (const p of running.splice(0)) p.kill();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function launch(): ConsoleProcess {
  const p = new ConsoleProcess(consoleEnv(server.baseUrl, dir, dbUrl));
  running.push(p);
  return p;
}

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function rows() {
  const db = await openDatabase(dbUrl);
  try {
    const characters = await db.character.findMany({ orderBy: { createdAt: "asc" } });
    // The cards' entries (the story's bible adds its own, source "bible").
    const lore = await db.loreEntry.findMany({ where: { source: "card" }, orderBy: { order: "asc" } });
    const stories = await db.story.findMany();
    return { characters, lore, stories };
  } finally {
    await db.$disconnect();
  }
}

/** Every prompt text the model was sent. */
function prompts(): string {
  return server.requests.map((r) => JSON.stringify(r.body?.messages ?? "")).join("\n");
}

/** Generous waits: the machine running the suite may be busy (the PostgreSQL pass starts BullMQ too). */
const SLOW = 60_000;

describe("/card in the terminal, end to end", { timeout: 180_000 }, () => {
  it("a V2 PNG card starts a story, a V3 JSON card joins it, and /card export writes a V3 card back", async () => {
    const p = launch();
    await p.ready(SLOW);
    const started = await p.say(`/card import ${file("mara.png", cardPng(v2Card()))}`, SLOW);
    expect(started).toContain("Starting a story from Mara Vell's card, with 2 lore entries");
    // The disabled entry of the book is reported as left out.
    expect(started).toContain("1 lore entries of the card were left out");
    expect(started).toContain("Chapter 1");
    // The opening was written from the card: scenario with the macros spelled out, and the first message.
    expect(prompts()).toContain("Mara Vell keeps the lighthouse on Gull Rock; you washes ashore");
    expect(prompts()).toContain("The story opens like this: Mara Vell hauls you out of the surf");

    let { characters, lore, stories } = await rows();
    expect(stories).toHaveLength(1);
    const mara = characters.find((c) => c.name === "Mara Vell");
    expect(mara).toMatchObject({
      appearance: "Short black hair, a grey coat, a silver ring on her left hand.",
      notes: "Dry humour, fiercely loyal, afraid of deep water.",
    });
    expect((mara?.card as { data?: { extensions: unknown } } | undefined)?.data?.extensions).toEqual(
      v2Card().data.extensions,
    );
    expect(lore.map((l) => [l.keys, l.constant, l.order, l.source])).toEqual([
      ["lighthouse, lamp", false, 5, "card"],
      ["Gull Rock", true, 20, "card"],
    ]);

    // A V3 JSON card joins the running story; its description is too long and is cut, and the reader told.
    const long = `${"A very long description. ".repeat(30)}`;
    const joined = await p.say(`/card import ${file("orrin.json", JSON.stringify(v3Card({ description: long })))}`);
    expect(joined).toContain("Orrin Hale joined the story from their card, with 1 lore entries.");
    expect(joined).toMatch(/Cut to fit this story: description \(\d+ → 400 characters\)/);
    ({ characters, lore, stories } = await rows());
    expect(stories).toHaveLength(1);
    const orrin = characters.find((c) => c.name === "Orrin Hale")?.appearance ?? "";
    expect(orrin.length).toBeLessThanOrEqual(400);
    expect(long.startsWith(orrin)).toBe(true);
    expect(lore.find((l) => l.content.includes("spyglass"))?.keys).toBe("/spy\\s?glass/");

    // Export back: V3, the unknown extensions kept, the lore as character_book, the full description.
    const exported = await p.say("/card export orrin");
    expect(exported).toContain("Orrin Hale's card (V3 JSON, with 1 lore entries): orrin-hale.card.json");
    const json = readFileSync(join(dir, "exports", "orrin-hale.card.json"), "utf8");
    const raw = JSON.parse(json) as { spec: string; spec_version: string; data: Record<string, unknown> };
    expect(raw.spec).toBe("chara_card_v3");
    expect(raw.spec_version).toBe("3.0");
    expect(raw.data.extensions).toEqual({ "x-inkloom-test": { keep: [1, 2, 3] } });
    expect(raw.data.nickname).toBe("the Watcher");
    expect(raw.data.description).toBe(long);
    const book = raw.data.character_book as { entries: Record<string, unknown>[] };
    expect(book.entries).toHaveLength(1);
    expect(book.entries[0]).toMatchObject({
      keys: ["spy\\s?glass"],
      use_regex: true,
      insertion_order: 3,
      extensions: { scan: "deep" },
    });
    // What we wrote reads back as a card.
    expect(parseCard(json).name).toBe("Orrin Hale");

    const maraCard = await p.say("/card export Mara Vell");
    // Her card's two entries, and the story's own entry keyed by her name (its bible's).
    expect(maraCard).toContain("with 3 lore entries");
    const maraJson = JSON.parse(readFileSync(join(dir, "exports", "mara-vell.card.json"), "utf8")) as {
      data: { extensions: unknown; character_book: { name: string; extensions: unknown; entries: unknown[] } };
    };
    expect(maraJson.data.extensions).toEqual(v2Card().data.extensions);
    expect(maraJson.data.character_book.name).toBe("Gull Rock");
    expect(maraJson.data.character_book.extensions).toEqual({ book_flag: true });
    expect(maraJson.data.character_book.entries[0]).toMatchObject({ comment: "the lamp", extensions: { weight: 7 } });
    await p.quit();
  });

  it("refuses a PNG with no card, invalid JSON, an unknown spec, a missing file and an oversized one, changing nothing", async () => {
    const p = launch();
    await p.ready(SLOW);
    expect(await p.say(`/card import ${file("plain.png", plainPng())}`)).toContain(
      "That PNG carries no character card",
    );
    expect(await p.say(`/card import ${file("bad.json", "{ nope")}`)).toContain("it is not valid JSON");
    expect(
      await p.say(`/card import ${file("v9.json", JSON.stringify({ spec: "chara_card_v9", data: { name: "X" } }))}`),
    ).toContain("That card's spec is “chara_card_v9”");
    expect(await p.say(`/card import ${join(dir, "missing.png")}`)).toContain("ENOENT");
    expect(await p.say(`/card import ${file("huge.json", Buffer.alloc(5 * 1024 * 1024 + 10, 32))}`)).toContain(
      "a character card may be at most 5 MB",
    );
    expect(await p.say("/card import")).toContain("Give the card's file path");
    const { characters, lore, stories } = await rows();
    expect([characters.length, lore.length, stories.length]).toEqual([0, 0, 0]);
    await p.quit();
  });
});
