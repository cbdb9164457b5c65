import { describe, expect, it } from "vitest";
import { createToolbox, lookup, NO_RECALL, recall } from "../../src/agent/tools.ts";
import type { StorySnapshot } from "../../src/agent/types.ts";
import type { ToolCall } from "../../src/llm/types.ts";

const story: StorySnapshot = {
  premise: "A ghost detective in 1920s Shanghai.",
  genre: "none",
  language: "en",
  title: "Ghost Detective",
  bible: {
    characters: [
      { name: "Lin Yue", role: "ghost detective", appearance: "pale, grey qipao" },
      { name: "Mr. Hale", role: "medium", appearance: "round spectacles", notes: "owes money" },
    ],
    places: [{ name: "Bund Hotel", description: "marble lobby, a broken clock" }],
    facts: [],
  },
  arc: { beats: [], openThreads: [] },
  summary: "",
  summaryUpTo: 0,
  chapters: [
    { number: 1, title: "A", text: "Hale hid the jade seal in the broken clock.", summary: "", action: "" },
    { number: 2, title: "B", text: "Rain over the river.", summary: "", action: "" },
    { number: 3, title: "C", text: "The jade seal again, in the window.", summary: "", action: "" },
  ],
  lore: [{ keys: ["Red Lantern Society"], content: "A secret society that trades in ghosts." }],
};

let id = 0;
function call(name: string, args: unknown): ToolCall {
  return {
    id: `c${++id}`,
    type: "function",
    function: { name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
  };
}

const okCheck = async () => ({ ok: true, issues: [] });

describe("recall", () => {
  it("finds an earlier passage outside the verbatim window, with its chapter number", () => {
    expect(recall(story, "where is the jade seal", 1)).toBe("(Chapter 1) Hale hid the jade seal in the broken clock.");
  });

  it("does not search chapters inside the verbatim window", () => {
    expect(recall(story, "window", 1)).toBe(NO_RECALL);
  });

  it("says so when nothing matches", () => {
    expect(recall(story, "dragon", 0)).toBe("No earlier passage matches.");
  });
});

describe("lookup", () => {
  it("finds characters, places and lore entries by name, case-insensitively and by part", () => {
    expect(lookup(story, "lin yue")).toBe("Character Lin Yue: ghost detective. Appearance: pale, grey qipao.");
    expect(lookup(story, "Hale")).toContain("Notes: owes money");
    expect(lookup(story, "bund hotel")).toBe("Place Bund Hotel: marble lobby, a broken clock");
    expect(lookup(story, "Red Lantern")).toContain("trades in ghosts");
  });

  it("says nothing is known about an unknown name", () => {
    expect(lookup(story, "Zhou")).toBe("Nothing known about Zhou.");
  });
});

describe("toolbox", () => {
  const toolbox = createToolbox({ story, recentChapters: 1, checkContinuity: okCheck });

  it("runs recall and lookup from JSON arguments", async () => {
    const outcome = await toolbox.run(call("lookup", { name: "Lin Yue" }));
    expect(outcome).toMatchObject({ name: "lookup", ok: true, args: { name: "Lin Yue" } });
    expect((await toolbox.run(call("recall", { query: "jade" }))).observation).toContain("(Chapter 1)");
  });

  it("turns malformed JSON and schema errors into the observation", async () => {
    const malformed = await toolbox.run(call("recall", "{query:"));
    expect(malformed.ok).toBe(false);
    expect(malformed.observation).toMatch(/^Error: invalid arguments for recall: arguments are not valid JSON/);
    const wrong = await toolbox.run(call("lookup", { who: "Hale" }));
    expect(wrong.ok).toBe(false);
    expect(wrong.observation).toMatch(/^Error: invalid arguments for lookup/);
    expect(wrong.args).toEqual({ who: "Hale" });
  });

  it("turns an unknown tool into the observation listing the tools", async () => {
    const outcome = await toolbox.run(call("search", { q: "x" }));
    expect(outcome.observation).toBe(
      "Error: unknown tool search. Available tools: recall, lookup, check_continuity, illustrate, begin_writing.",
    );
  });

  it("reports the continuity check, and a failing check as an observation", async () => {
    const issues = createToolbox({
      story,
      recentChapters: 1,
      checkContinuity: async () => ({ ok: false, issues: ["Hale wears no spectacles here."] }),
    });
    expect((await issues.run(call("check_continuity", { draft: "Hale squinted." }))).observation).toBe(
      "Continuity issues:\n- Hale wears no spectacles here.",
    );
    const broken = createToolbox({
      story,
      recentChapters: 1,
      checkContinuity: async () => {
        throw new Error("server down");
      },
    });
    const outcome = await broken.run(call("check_continuity", { draft: "x" }));
    expect(outcome).toMatchObject({ ok: false, observation: "Error: the continuity check failed (server down)." });
  });

  it("ends the loop with begin_writing's plan", async () => {
    const outcome = await toolbox.run(call("begin_writing", { plan: "Open the clock." }));
    expect(outcome.plan).toBe("Open the clock.");
  });
});
