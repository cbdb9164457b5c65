import { describe, expect, it } from "vitest";
import { parseLoreRequest } from "../../commands/lore.ts";
import {
  characterLore,
  entryMatches,
  keyMatcher,
  type LoreEntry,
  regexProblem,
  searchLore,
  selectLore,
  splitKeys,
} from "../../src/agent/lore.ts";
import { buildMemory } from "../../src/agent/memory.ts";
import { JSON_TEXT_MARKER } from "../../src/agent/prompts.ts";
import { createStoryAgent } from "../../src/agent/story-agent.ts";
import { lookup } from "../../src/agent/tools.ts";
import type { ChapterResult, StoryEvent, StorySnapshot } from "../../src/agent/types.ts";
import type { ChatRequest } from "../../src/llm/types.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { LORE_LIMITS, validateLore } from "../../src/story/lore-service.ts";
import { FakeModelClient, type FakeResult } from "../fakes/fake-model-client.ts";

const entry = (keys: string[], content: string, extra: Partial<LoreEntry> = {}): LoreEntry => ({
  keys,
  content,
  ...extra,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof UserFacingError) return error.id;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("lore keys", () => {
  it("splits comma-separated keys, keeping commas inside a /regex/ key", () => {
    expect(splitKeys("Red Lantern, lanterns ,  ")).toEqual(["Red Lantern", "lanterns"]);
    expect(splitKeys("/bells?{1,2}/, tower")).toEqual(["/bells?{1,2}/", "tower"]);
  });

  it("matches keywords case-insensitively as whole words, CJK keys as substrings, /regex/ keys as patterns", () => {
    expect(keyMatcher("Lantern")?.("The LANTERN swung.")).toBe(true);
    expect(keyMatcher("cat")?.("a catalogue of ghosts")).toBe(false);
    expect(keyMatcher("红灯会")?.("她加入了红灯会的那天")).toBe(true);
    expect(keyMatcher("/bell(s|e)? tower/")?.("the Belle Tower rang")).toBe(true);
    expect(keyMatcher("/bell(s|e)? tower/")?.("the clock tower")).toBe(false);
  });

  it("refuses regex keys that are too long, invalid, or shaped to backtrack catastrophically", () => {
    expect(regexProblem("a".repeat(61))).toBe("tooLong");
    expect(regexProblem("(unclosed")).toBe("invalid");
    for (const bad of ["(a+)+$", "(a|aa)*b", "(\\w+\\s?)*x", "((ab)+)+", "(a)\\1", "(?=a)b"]) {
      expect([bad, regexProblem(bad)]).toEqual([bad, "unsafe"]);
    }
    for (const ok of ["bells?", "(?:dragon|wyrm)s?", "mei\\s+lin", "(ab)+c", "colou?r"]) {
      expect([ok, regexProblem(ok)]).toEqual([ok, undefined]);
    }
    // A refused key never matches, whatever the text.
    expect(keyMatcher("/(a+)+$/")).toBeUndefined();
  });

  it("time-boxes a slow pattern the shape check lets through: no match, and the process goes on", () => {
    const slow = entry(["/\\w*\\w*\\w*\\w*\\w*\\w*!/"], "never");
    const started = Date.now();
    expect(entryMatches(slow, "a".repeat(3000))).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("many slow regex keys share one time budget per selection, so they cannot add up", () => {
    const slow = Array.from({ length: 40 }, (_, i) => entry([`/\\w*\\w*\\w*\\w*\\w*\\w*${i}!/`], "never"));
    const started = Date.now();
    const picked = selectLore([...slow, entry(["lantern"], "Found.")], [`${"a".repeat(3000)} lantern`], {
      budgetTokens: 1000,
    });
    expect(picked.included).toEqual([40]);
    // 40 keys x 25 ms x 2 tries would be 2 s; the selection's budget is 250 ms.
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe("lore selection", () => {
  const entries: LoreEntry[] = [
    entry(["lantern"], "The Red Lantern Society trades in ghosts; its seal is a moth."),
    entry(["moth"], "A moth seal marks a debt to the Society."),
    entry(["debt"], "Debts to ghosts are paid in years."),
    entry([], "Magic always costs a memory.", { constant: true }),
    entry(["harbour"], "The harbour freezes every winter.", { order: 5 }),
  ];

  it("takes constant entries and those whose keys come up, recursing through added entries' text up to the depth", () => {
    const picked = selectLore(entries, ["She lit a lantern."], { budgetTokens: 1000, maxDepth: 1 });
    // Round 0: the constant one, then the lantern; round 1: the moth (from the lantern's text). Not the debt (depth 2).
    expect(picked.included).toEqual([3, 0, 1]);
    expect(picked.leftOut).toEqual([]);
    const deeper = selectLore(entries, ["She lit a lantern."], { budgetTokens: 1000, maxDepth: 2 });
    expect(deeper.included).toEqual([3, 0, 1, 2]);
  });

  it("fills the budget constant first, then by order, and records what it left out", () => {
    const texts = ["A lantern in the harbour."];
    const all = selectLore(entries, texts, { budgetTokens: 1000, maxDepth: 0 });
    expect(all.included).toEqual([3, 4, 0]);
    // Room for two entries: the lantern (order 100) is left out, and triggers nothing.
    const tight = selectLore(entries, texts, { budgetTokens: all.tokens - 5, maxDepth: 2 });
    expect(tight.included).toEqual([3, 4]);
    expect(tight.leftOut).toEqual([0]);
  });

  it("puts the matching entries in the memory's Lore section and leaves others out", () => {
    const story: StorySnapshot = {
      premise: "ghosts",
      genre: "none",
      language: "en",
      title: "T",
      bible: { characters: [], places: [], facts: [] },
      arc: { beats: [], openThreads: [] },
      summary: "",
      summaryUpTo: 0,
      chapters: [{ number: 1, title: "One", text: "Rain on the harbour.", summary: "", action: "" }],
      lore: entries,
    };
    const memory = buildMemory(story, { recentChapters: 3, query: "Ask about the lantern" });
    expect(memory.sections.lore).toContain("Red Lantern Society");
    expect(memory.sections.lore).toContain("harbour freezes");
    expect(memory.sections.lore).toContain("Magic always costs a memory");
    // Two rounds of recursion by default: lantern -> moth -> debt.
    expect(memory.sections.lore).toContain("Debts to ghosts");
    expect(memory.lore.included).toContain("lantern");
    const shallow = buildMemory(story, { recentChapters: 3, query: "Ask about the lantern", loreDepth: 1 });
    expect(shallow.sections.lore).not.toContain("Debts to ghosts");
    const none = buildMemory({ ...story, chapters: [] }, { recentChapters: 3, query: "Walk on" });
    expect(none.sections.lore).not.toContain("Red Lantern");
    const small = buildMemory(story, { recentChapters: 3, query: "the lantern", loreBudgetTokens: 20 });
    expect(small.lore.leftOut.length).toBeGreaterThan(0);
  });

  it("a bible entry nobody edited is not said twice; an edited one goes in", () => {
    const mara = { name: "Mara Vell", role: "the medium", appearance: "silver ring, grey coat" };
    const story: StorySnapshot = {
      premise: "ghosts",
      genre: "none",
      language: "en",
      title: "T",
      bible: { characters: [mara], places: [], facts: [] },
      arc: { beats: [], openThreads: [] },
      summary: "",
      summaryUpTo: 0,
      chapters: [],
      lore: [characterLore(mara)],
    };
    const plain = buildMemory(story, { recentChapters: 3, query: "Ask Mara" });
    expect(plain.sections.bible).toContain("Mara Vell");
    expect(plain.sections.lore).toBe("");
    const edited = { ...characterLore(mara), content: "The medium; she is secretly the ghost's sister." };
    const memory = buildMemory({ ...story, lore: [edited] }, { recentChapters: 3, query: "Ask Mara" });
    expect(memory.sections.lore).toContain("secretly the ghost's sister");
  });

  it("lookup searches lore by key, by /regex/ key and by the words of its text", () => {
    const story = {
      bible: { characters: [], places: [], facts: [] },
      chapters: [],
      lore: [...entries, entry(["/bell(e|s)? tower/"], "The drowned bell rings at the tide.")],
    } as unknown as StorySnapshot;
    expect(lookup(story, "Lantern")).toContain("Red Lantern Society");
    expect(lookup(story, "belle tower")).toContain("drowned bell");
    expect(searchLore(story.lore, "ghosts").map((e) => e.keys[0])).toContain("lantern");
    expect(lookup(story, "zeppelin")).toBe("Nothing known about zeppelin.");
  });
});

describe("/lore requests and entries", () => {
  it("reads list, show, add, edit and remove; refuses anything else with the usage", () => {
    expect(parseLoreRequest("")).toEqual({ kind: "list" });
    expect(parseLoreRequest("3")).toEqual({ kind: "show", n: 3 });
    expect(parseLoreRequest("add Red Lantern, moth: A society.")).toEqual({
      kind: "add",
      keys: "Red Lantern, moth",
      text: " A society.",
    });
    expect(parseLoreRequest("add /a:b/, x: text")).toMatchObject({ keys: "/a:b/, x", text: " text" });
    expect(parseLoreRequest("add 红灯会：秘密结社")).toMatchObject({ keys: "红灯会", text: "秘密结社" });
    expect(parseLoreRequest("edit 2 moth: A seal.")).toMatchObject({ kind: "edit", n: 2, keys: "moth" });
    expect(parseLoreRequest("remove 4")).toEqual({ kind: "remove", n: 4 });
    expect(refusal(() => parseLoreRequest("frobnicate 2"))).toBe("error.loreUsage");
    expect(refusal(() => parseLoreRequest("add no colon here"))).toBe("error.loreNoText");
  });

  it("validates keys, flags and limits: * constant, #n order, key count, key and text length, regex safety", () => {
    expect(validateLore("*, moth, #5", "A seal.")).toEqual({
      keys: ["moth"],
      content: "A seal.",
      constant: true,
      order: 5,
    });
    expect(validateLore("*", "Always.")).toMatchObject({ keys: [], constant: true });
    expect(refusal(() => validateLore("", "text"))).toBe("error.loreNoKeys");
    expect(refusal(() => validateLore("moth", "  "))).toBe("error.loreNoText");
    expect(refusal(() => validateLore("moth", "x".repeat(LORE_LIMITS.content + 1)))).toBe("error.loreTextTooLong");
    const many = Array.from({ length: LORE_LIMITS.keys + 1 }, (_, i) => `key${i}`).join(", ");
    expect(refusal(() => validateLore(many, "text"))).toBe("error.loreTooManyKeys");
    expect(refusal(() => validateLore("k".repeat(LORE_LIMITS.keyLength + 1), "text"))).toBe("error.loreKeyTooLong");
    expect(refusal(() => validateLore("/(a+)+$/", "text"))).toBe("error.loreRegex.unsafe");
    expect(refusal(() => validateLore("#abc, moth", "text"))).toBe("error.loreBadOrder");
  });
});

const CHAPTER = {
  chapter_title: "Bells",
  summary: "Ada climbs the tower.",
  choices: [
    { label: "Ring the bell", direction: "wake the drowned" },
    { label: "Wait", direction: "listen" },
  ],
  new_characters: [],
  new_facts: [],
};

function wanted(req: ChatRequest): string | undefined {
  if (typeof req.toolChoice === "object") return req.toolChoice.name;
  if (req.responseFormat) return req.responseFormat.name;
  const marked = [...req.messages].reverse().find((m) => m.role === "user" && m.content.includes(JSON_TEXT_MARKER));
  return (marked?.content ?? "").split(JSON_TEXT_MARKER)[1]?.split("\n")[0];
}

/** A model whose plan mentions the bell tower (CoT's thought, or ReAct's begin_writing). */
function planningModel(): FakeModelClient {
  return new FakeModelClient((req): FakeResult => {
    const name = wanted(req);
    if (name === "continuity_report") return { json: { ok: true, issues: [] } };
    if (name !== undefined)
      return typeof req.toolChoice === "object" ? { toolCalls: [{ name, arguments: CHAPTER }] } : { json: CHAPTER };
    if (req.tools && req.tools.length > 0)
      return { toolCalls: [{ name: "begin_writing", arguments: { plan: "Ada climbs the bell tower." } }] };
    const last = req.messages.filter((m) => m.role === "user").at(-1)?.content ?? "";
    if (last.startsWith("Step: thought")) return { text: "Plan: Ada climbs the bell tower at dusk." };
    return { text: "Ada climbed. The bell was cold." };
  });
}

async function result(events: AsyncIterable<StoryEvent>): Promise<ChapterResult> {
  let last: StoryEvent | undefined;
  for await (const e of events) last = e;
  if (last?.type !== "done") throw new Error(`expected done, got ${JSON.stringify(last)}`);
  return last.result;
}

describe("lore in the agent's runs", () => {
  const story: StorySnapshot = {
    premise: "A keeper and a drowned bell.",
    genre: "none",
    language: "en",
    title: "Bells",
    bible: { characters: [], places: [], facts: [] },
    arc: { beats: [], openThreads: [] },
    summary: "",
    summaryUpTo: 0,
    chapters: [{ number: 1, title: "Tide", text: "The tide came in.", summary: "", action: "" }],
    lore: [
      entry(["bell tower"], "The bell tower leans toward the sea; its bell was cast from a drowned ship's anchor."),
      entry(["anchor"], "X".repeat(400)),
      entry(["zeppelin"], "Airships never come here."),
    ],
  };

  it.each(["cot", "react"] as const)(
    "%s: lore the plan brings up goes into the writing step, and the run records what the budget left out",
    async (method) => {
      const model = planningModel();
      const agent = createStoryAgent(model, { loreBudgetTokens: 60 });
      const done = await result(agent.write({ task: "continue", method, story, chapterNumber: 2, action: "Go up" }));
      const prose = model.calls.find((c) => c.kind === "stream")?.request;
      const write = prose?.messages.filter((m) => m.role === "user").at(-1)?.content ?? "";
      expect(write).toContain("Lore your plan brings up:");
      expect(write).toContain("drowned ship's anchor");
      expect(write).not.toContain("Airships");
      // The anchor entry came up (recursion) but is too big for what the budget has left.
      expect(done.runs[0]?.checks.lore).toEqual({ included: ["bell tower"], leftOut: ["anchor"] });
    },
  );

  it("without a key coming up, no lore is given and none recorded", async () => {
    const model = planningModel();
    const agent = createStoryAgent(model);
    const quiet = { ...story, lore: [entry(["zeppelin"], "Airships never come here.")] };
    const done = await result(agent.write({ task: "continue", method: "cot", story: quiet, chapterNumber: 2 }));
    const all = model.calls.flatMap((c) => c.request.messages.map((m) => m.content ?? "")).join("\n");
    expect(all).not.toContain("Airships");
    expect(done.runs[0]?.checks.lore).toBeUndefined();
  });
});
