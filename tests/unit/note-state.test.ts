import { crc32, inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { progressBar, relationshipBar, statusText } from "../../commands/status.ts";
import { buildMemory } from "../../src/agent/memory.ts";
import { AUTHOR_NOTE_LABEL } from "../../src/agent/prompts.ts";
import { parseJsonWith, stateUpdateSchema, submitChapterSchema, submitChapterTool } from "../../src/agent/schemas.ts";
import { createStoryAgent } from "../../src/agent/story-agent.ts";
import { EMPTY_STATE, mergeState, parseState, STATE_LIMITS, stateLines } from "../../src/agent/story-state.ts";
import type {
  AgentInput,
  ChapterResult,
  Method,
  StoryEvent,
  StorySnapshot,
  StoryState,
} from "../../src/agent/types.ts";
import type { ChatRequest } from "../../src/llm/types.ts";
import { encodePng } from "../../src/render/png.ts";
import { stateChartPng } from "../../src/render/state-chart.ts";
import { FakeModelClient, type FakeResult } from "../fakes/fake-model-client.ts";
import { strictSchemaErrors } from "../fakes/openai-strict-schema.ts";

const STATE: StoryState = {
  relationships: [
    { name: "Tomas", value: 40, standing: "wary allies" },
    { name: "Wren", value: -30, standing: "she lied about the letters" },
  ],
  milestones: ["Found the first letter"],
  arcProgress: 25,
};

const story: StorySnapshot = {
  premise: "A lighthouse keeper finds letters from the future.",
  genre: "adventure",
  language: "en",
  title: "The Harbour Letters",
  bible: { characters: [{ name: "Ada", role: "keeper", appearance: "grey eyes" }], places: [], facts: [] },
  arc: { beats: ["a", "b", "c"], openThreads: [] },
  summary: "",
  summaryUpTo: 0,
  chapters: [{ number: 1, title: "One", text: "Ada found a letter.", summary: "A letter.", action: "" }],
  lore: [],
  state: STATE,
};

describe("story state: merging a chapter's update", () => {
  it("replaces a relationship of the same name (any case), adds new ones, adds milestones once, takes the new progress", () => {
    const next = mergeState(STATE, {
      relationships: [
        { name: "tomas", value: 65, standing: "he saved her from the fire" },
        { name: "Ilse", value: 10, standing: "a new friend" },
      ],
      milestones: ["found the first letter", "The mill burned"],
      arcProgress: 40,
    });
    expect(next.relationships).toEqual([
      { name: "Wren", value: -30, standing: "she lied about the letters" },
      { name: "tomas", value: 65, standing: "he saved her from the fire" },
      { name: "Ilse", value: 10, standing: "a new friend" },
    ]);
    expect(next.milestones).toEqual(["Found the first letter", "The mill burned"]);
    expect(next.arcProgress).toBe(40);
    // The previous state is not changed (it belongs to the earlier chapter).
    expect(STATE.relationships[0]?.value).toBe(40);
  });

  it("starts from nothing, clamps values to -100..100 and 0..100, and keeps the bounds", () => {
    const next = mergeState(undefined, {
      relationships: Array.from({ length: 12 }, (_, i) => ({
        name: `C${i}`,
        value: i % 2 === 0 ? 500 : -500,
        standing: "x",
      })),
      milestones: Array.from({ length: 20 }, (_, i) => `m${i}`),
      arcProgress: 140,
    });
    expect(next.relationships).toHaveLength(STATE_LIMITS.relationships);
    expect(next.relationships.map((r) => r.value)).toContain(100);
    expect(next.relationships.map((r) => r.value)).toContain(-100);
    expect(next.milestones).toHaveLength(STATE_LIMITS.milestones);
    expect(next.milestones.at(-1)).toBe("m19");
    expect(next.arcProgress).toBe(100);
  });

  it("reads a stored state back, and nothing from something that is not one", () => {
    expect(parseState(JSON.parse(JSON.stringify(STATE)))).toEqual(STATE);
    expect(parseState(null)).toBeUndefined();
    expect(parseState("state")).toBeUndefined();
    expect(
      parseState({
        relationships: [
          { name: "", value: 3 },
          { name: "A", value: "high" },
        ],
      }),
    ).toEqual(EMPTY_STATE);
  });

  it("carries the state into the prompt's memory, and nothing when there is none", () => {
    const memory = buildMemory(story, { recentChapters: 1 });
    expect(memory.sections.state).toBe(stateLines(STATE));
    expect(memory.text).toContain("## Story state");
    expect(memory.text).toContain("- Tomas: +40 (wary allies)");
    expect(memory.text).toContain("- Wren: -30 (she lied about the letters)");
    expect(memory.text).toContain("Arc progress: 25%");
    const { state: _, ...stateless } = story;
    expect(buildMemory(stateless, { recentChapters: 1 }).text).not.toContain("Story state");
  });
});

describe("submit_chapter's state: strict schema", () => {
  it("is strict-compatible (OpenAI's rules), nullable, and validated", () => {
    expect(strictSchemaErrors(submitChapterTool.function.parameters)).toEqual([]);
    const parts = {
      chapter_title: "T",
      summary: "S",
      choices: [
        { label: "a", direction: "x" },
        { label: "b", direction: "y" },
      ],
      new_characters: [],
      new_facts: [],
      arc: null,
      illustration: null,
    };
    const withState = (state: unknown) => JSON.stringify({ ...parts, state });
    expect(parseJsonWith(submitChapterSchema, withState(null)).ok).toBe(true);
    const ok = parseJsonWith(
      submitChapterSchema,
      withState({ relationships: [{ name: "A", value: -20, standing: "cold" }], milestones: [], arc_progress: 10 }),
    );
    expect(ok.ok && ok.value.state?.relationships[0]?.value).toBe(-20);
    const tooWarm = withState({
      relationships: [{ name: "A", value: 150, standing: "x" }],
      milestones: [],
      arc_progress: 10,
    });
    // Out of range is brought into range, not refused (the chapter keeps its parts).
    const warm = parseJsonWith(submitChapterSchema, tooWarm);
    expect(warm.ok && warm.value.state?.relationships[0]?.value).toBe(100);
  });
});

const CHAPTER = {
  chapter_title: "Ash",
  summary: "Ada returns to the mill.",
  choices: [
    { label: "Follow the footsteps", direction: "meet the writer" },
    { label: "Hide", direction: "overhear Tomas" },
  ],
  new_characters: [],
  new_facts: [],
  state: {
    relationships: [{ name: "Tomas", value: 55, standing: "trusts her again" }],
    milestones: ["Back at the mill"],
    arc_progress: 35,
  },
};

/** Answers every call of the agent: the parts by a forced tool call, a clean check, the loop's tools, prose. */
function answer(req: ChatRequest): FakeResult {
  if (typeof req.toolChoice === "object" && req.toolChoice.name === "submit_chapter") {
    return { toolCalls: [{ name: "submit_chapter", arguments: CHAPTER }] };
  }
  if (req.responseFormat) return { json: { ok: true, issues: [] } };
  if (req.tools && req.tools.length > 0) {
    return req.messages.at(-1)?.role === "tool"
      ? { toolCalls: [{ name: "begin_writing", arguments: { plan: "Go." } }] }
      : { toolCalls: [{ name: "recall", arguments: { query: "letter" } }] };
  }
  return { text: "Ada climbed to the mill." };
}

async function write(method: Method, extra: Partial<AgentInput>) {
  const model = new FakeModelClient(answer);
  const events: StoryEvent[] = [];
  const input: AgentInput = { task: "continue", method, story, chapterNumber: 2, action: "Go to the mill", ...extra };
  for await (const e of createStoryAgent(model).write(input)) events.push(e);
  const last = events.at(-1);
  if (last?.type !== "done") throw new Error(`expected done, got ${JSON.stringify(last)}`);
  return { model, result: last.result as ChapterResult };
}

const userTexts = (req: ChatRequest) =>
  req.messages.filter((m) => m.role === "user").map((m) => (typeof m.content === "string" ? m.content : ""));

describe("story agent: author's note and state", () => {
  for (const method of ["cot", "react", "reflexion"] as const) {
    it(`${method}: the note is in the first message and in the prose step of the writing run`, async () => {
      const { model } = await write(method, { authorNote: "more dialogue, slower pace" });
      // The writing run's last call: the streamed prose (cot, react) or the draft (reflexion).
      const prose = model.calls.findLast((c) => c.request.task === "continue")?.request as ChatRequest;
      const users = userTexts(prose);
      expect(users[0]).toContain(`${AUTHOR_NOTE_LABEL}more dialogue, slower pace`);
      expect(users.at(-1)).toContain(`${AUTHOR_NOTE_LABEL}more dialogue, slower pace`);
    });
  }

  it("without a note no writing prompt mentions one", async () => {
    const { model } = await write("cot", {});
    for (const call of model.calls) expect(userTexts(call.request).join("\n")).not.toContain(AUTHOR_NOTE_LABEL);
  });

  it("returns the chapter's state update, and the parts request sees the state before the chapter", async () => {
    const { model, result } = await write("cot", {});
    expect(result.state).toEqual({
      relationships: [{ name: "Tomas", value: 55, standing: "trusts her again" }],
      milestones: ["Back at the mill"],
      arcProgress: 35,
    });
    const parts = model.calls.find(
      (c) => typeof c.request.toolChoice === "object" && c.request.toolChoice.name === "submit_chapter",
    );
    expect(userTexts(parts?.request as ChatRequest).join("\n")).toContain("- Tomas: +40 (wary allies)");
  });
});

/** The pixels of a PNG this encoder wrote (RGBA, filter 0), checking its chunks' CRCs. */
function decode(png: Uint8Array): { width: number; height: number; pixel: (x: number, y: number) => number[] } {
  const buf = Buffer.from(png);
  expect([...buf.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let at = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (at < buf.length) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString("latin1", at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + length);
    expect(buf.readUInt32BE(at + 8 + length)).toBe(crc32(buf.subarray(at + 4, at + 8 + length)) >>> 0);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([data[8], data[9]]).toEqual([8, 6]);
    }
    if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((width * 4 + 1) * height);
  return {
    width,
    height,
    pixel: (x, y) => [...raw.subarray(y * (width * 4 + 1) + 1 + x * 4, y * (width * 4 + 1) + 1 + x * 4 + 4)],
  };
}

describe("the /status picture", () => {
  it("encodes a valid PNG of the given pixels", () => {
    const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 1, 2, 3, 4]);
    const image = decode(encodePng(2, 2, rgba));
    expect([image.width, image.height]).toEqual([2, 2]);
    expect(image.pixel(1, 0)).toEqual([0, 255, 0, 255]);
    expect(image.pixel(1, 1)).toEqual([1, 2, 3, 4]);
    expect(() => encodePng(2, 2, new Uint8Array(3))).toThrow(RangeError);
  });

  it("draws a bar per relationship from the centre (warm right, hostile left) and the arc's progress last", () => {
    const image = decode(stateChartPng(STATE));
    expect(image.width).toBe(320);
    const rowY = (i: number) => 10 + i * 22 + 11;
    const green = image.pixel(160 + 40, rowY(0));
    const tomasLeft = image.pixel(160 - 60, rowY(0));
    const red = image.pixel(160 - 40, rowY(1));
    expect(green[1]).toBeGreaterThan(green[0] ?? 0);
    expect(tomasLeft).not.toEqual(green);
    expect(red[0]).toBeGreaterThan(red[1] ?? 0);
    // Arc at 25%: filled at 20% of the width, empty at 50%.
    const arcY = rowY(2);
    expect(image.pixel(10 + 60, arcY)).not.toEqual(image.pixel(10 + 150, arcY));
    // One row more per relationship.
    expect(decode(stateChartPng({ ...STATE, relationships: [] })).height).toBe(image.height - 44);
  });
});

describe("the /status text", () => {
  it("fills relationship bars from the centre line and the arc bar from the left", () => {
    expect(relationshipBar(0)).toBe(`${"░".repeat(10)}│${"░".repeat(10)}`);
    expect(relationshipBar(40)).toBe(`${"░".repeat(10)}│████${"░".repeat(6)}`);
    expect(relationshipBar(-100)).toBe(`${"█".repeat(10)}│${"░".repeat(10)}`);
    expect(progressBar(25)).toBe(`${"█".repeat(5)}${"░".repeat(15)}`);
    const text = statusText("en", "The Harbour Letters", 3, STATE);
    expect(text).toContain("Story state — The Harbour Letters, after chapter 3");
    expect(text).toContain(`Tomas  ${relationshipBar(40)} +40  — wary allies`);
    expect(text).toContain(`Wren  ${relationshipBar(-30)} -30  — she lied about the letters`);
    expect(text).toContain("✓ Found the first letter");
    expect(text).toContain(`${progressBar(25)} 25%`);
  });
});

describe("the story state a chapter submits", () => {
  it("brings an out-of-range relationship or arc progress into range instead of refusing the chapter's parts", () => {
    const parsed = stateUpdateSchema.parse({
      relationships: [
        { name: "Porter", value: -150.4, standing: "an enemy now" },
        { name: "Elias", value: 12.6, standing: "warming" },
      ],
      milestones: [],
      arc_progress: 130,
    });
    expect(parsed.relationships.map((r) => r.value)).toEqual([-100, 13]);
    expect(parsed.arc_progress).toBe(100);
  });
});
