import { describe, expect, it } from "vitest";
import { CONTINUE_MARKER, JSON_TEXT_MARKER, PROMPT_VERSION } from "../../src/agent/prompts.ts";
import { createStoryAgent, Seam } from "../../src/agent/story-agent.ts";
import type { AgentInput, ChapterResult, StoryEvent, StorySnapshot } from "../../src/agent/types.ts";
import { StrategyMemory } from "../../src/llm/structured-strategy.ts";
import { type ChatMessage, type ChatRequest, ModelError } from "../../src/llm/types.ts";
import { FakeModelClient, type FakeResult } from "../fakes/fake-model-client.ts";

const story: StorySnapshot = {
  premise: "A lighthouse keeper finds letters from the future.",
  genre: "adventure",
  language: "en",
  title: "The Harbour Letters",
  bible: {
    characters: [
      { name: "Ada", role: "lighthouse keeper", appearance: "grey eyes, oilskin coat" },
      { name: "Tomas", role: "ferryman", appearance: "tall, red beard" },
    ],
    places: [{ name: "The Mill", description: "a burned mill by the river" }],
    facts: ["The letters arrive at midnight."],
  },
  arc: { beats: ["The first letter", "The ferryman's secret", "The storm"], openThreads: ["Who writes the letters?"] },
  summary: "",
  summaryUpTo: 0,
  chapters: [1, 2, 3, 4, 5].map((n) => ({
    number: n,
    title: `Chapter ${n}`,
    text:
      n === 1
        ? "The mill burned the night Tomas vanished; only the millstone survived.\n\nAda kept the ash in a jar."
        : `Ada read letter ${n} by lamplight.\n\nThe sea was calm.`,
    summary: `Letter ${n}.`,
    action: n === 1 ? "" : `Read letter ${n}`,
  })),
  lore: [],
};

const PLAN = {
  title: "The Harbour Letters",
  language: "en",
  logline: "Letters from the future.",
  characters: [{ name: "Ada", role: "keeper", appearance: "grey eyes" }],
  places: [{ name: "Lighthouse", description: "white tower" }],
  facts: ["Letters arrive at midnight."],
  arc: { beats: ["a", "b", "c"], open_threads: ["who writes?"] },
};

const CHAPTER = {
  chapter_title: "Ash",
  summary: "Ada returns to the mill.",
  choices: [
    { label: "Follow the footsteps", direction: "meet the letter writer" },
    { label: "Hide in the millstone pit", direction: "overhear Tomas" },
  ],
  new_characters: [{ name: "Wren", role: "stranger", appearance: "hooded" }],
  new_facts: ["Someone visits the mill at night."],
};

const PROSE = "Ada climbed to the mill. Soot still clung to the stone. Footsteps came up the stairs.";

function lastUser(req: ChatRequest): string {
  const users = req.messages.filter((m) => m.role === "user");
  return users[users.length - 1]?.content ?? "";
}

type Kind = "plan" | "choices" | "check" | "react" | "thought" | "draft" | "prose" | "summarize";

/** The structured answer a request asks for, whatever the strategy (forced tool, json_schema, JSON in text). */
function wanted(req: ChatRequest): string | undefined {
  if (typeof req.toolChoice === "object") return req.toolChoice.name;
  if (req.responseFormat) return req.responseFormat.name;
  const marked = [...req.messages].reverse().find((m) => m.role === "user" && m.content.includes(JSON_TEXT_MARKER));
  return (marked?.content ?? "").split(JSON_TEXT_MARKER)[1]?.split("\n")[0];
}

function kindOf(req: ChatRequest): Kind {
  const name = wanted(req);
  if (name === "plan_story") return "plan";
  if (name === "submit_chapter" || name === "offer_choices") return "choices";
  if (name === "continuity_report") return "check";
  if (req.tools && req.tools.length > 0) return "react";
  if (req.task === "summarize") return "summarize";
  const step = lastUser(req).split("\n")[0];
  if (step === "Step: thought") return "thought";
  if (step === "Step: draft") return "draft";
  return "prose";
}

/** A script answering each kind of call; `overrides` replace a kind's answer (a function may vary per call). */
function script(overrides: Partial<Record<Kind, (req: ChatRequest, n: number) => FakeResult>> = {}) {
  const counts: Partial<Record<Kind, number>> = {};
  return (req: ChatRequest): FakeResult => {
    const kind = kindOf(req);
    const n = counts[kind] ?? 0;
    counts[kind] = n + 1;
    const override = overrides[kind];
    if (override) return override(req, n);
    switch (kind) {
      // Answered the way the request asks: a tool call when one is forced, else JSON.
      case "plan":
        return typeof req.toolChoice === "object"
          ? { toolCalls: [{ name: "plan_story", arguments: PLAN }] }
          : { json: PLAN };
      case "choices":
        return typeof req.toolChoice === "object"
          ? { toolCalls: [{ name: "submit_chapter", arguments: CHAPTER }] }
          : { json: CHAPTER };
      case "check":
        return { json: { ok: true, issues: [] } };
      case "react": {
        const last = req.messages[req.messages.length - 1];
        return last?.role === "tool"
          ? { toolCalls: [{ name: "begin_writing", arguments: { plan: "Echo the fire." } }], content: "Enough." }
          : {
              toolCalls: [{ name: "recall", arguments: { query: "mill fire" } }],
              content: "What happened at the mill?",
            };
      }
      case "thought":
        return { text: "Plan: Ada goes to the mill." };
      case "draft":
        return { text: `Draft. ${PROSE}` };
      case "summarize":
        return { text: "Ada found letters." };
      default:
        return { text: PROSE };
    }
  };
}

async function collect(events: AsyncIterable<StoryEvent>): Promise<StoryEvent[]> {
  const out: StoryEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

function done(events: StoryEvent[]): ChapterResult {
  const last = events[events.length - 1];
  if (last?.type !== "done") throw new Error(`expected done, got ${JSON.stringify(last)}`);
  return last.result;
}

function text(events: StoryEvent[]): string {
  return events.map((e) => (e.type === "text" ? e.delta : "")).join("");
}

const continueInput = (method: AgentInput["method"]): AgentInput => ({
  task: "continue",
  method,
  story,
  chapterNumber: 6,
  action: "Go back to the mill",
});

describe("story agent: cot", () => {
  it("thinks in one non-streamed call, streams the prose, then checks and asks for choices", async () => {
    const model = new FakeModelClient(script());
    const events = await collect(createStoryAgent(model).write(continueInput("cot")));

    expect(model.calls.map((c) => [c.kind, kindOf(c.request)])).toEqual([
      ["complete", "thought"],
      ["stream", "prose"],
      ["complete", "check"],
      ["complete", "choices"],
    ]);
    expect(model.calls[1]?.request.tools).toBeUndefined();
    expect(text(events)).toBe(PROSE);
    const types = events.map((e) => e.type);
    expect(types.indexOf("text")).toBeLessThan(types.indexOf("choices"));
    const result = done(events);
    expect(result.text).toBe(PROSE);
    expect(result.chapterTitle).toBe("Ash");
    expect(result.choices).toHaveLength(2);
    expect(result.bibleUpdates.characters[0]?.name).toBe("Wren");
    expect(result.continuity).toEqual({ ok: true, issues: [] });
    // The reader's action is in the prompt; the write step carries it too.
    expect(lastUser(model.calls[1]?.request as ChatRequest)).toContain("Reader's action: Go back to the mill");
  });

  it("records one run per model task with method, model, prompt version, messages and summed usage", async () => {
    const model = new FakeModelClient({ script: script(), routes: { continue: { model: "big-model" } } });
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    const [writing, check, choices] = result.runs;
    expect(result.runs.map((r) => r.task)).toEqual(["continue", "check", "choices"]);
    expect(writing).toMatchObject({
      method: "cot",
      model: "big-model",
      baseUrl: "http://fake",
      promptVersion: `continue.cot@${PROMPT_VERSION}`,
      status: "ok",
      promptTokens: 200,
      completionTokens: 40,
      latencyMs: 10,
      checks: { finishedInFormat: true, continuityOk: true },
    });
    expect(writing?.costUsd).toBeCloseTo(0.002);
    expect(writing?.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
    expect(writing?.messages[4]).toEqual({ role: "assistant", content: PROSE });
    expect(check?.promptVersion).toBe(`check@${PROMPT_VERSION}`);
    expect(check?.checks).toEqual({ finishedInFormat: true, continuityOk: true, issues: [] });
    expect(choices?.promptVersion).toBe(`choices@${PROMPT_VERSION}`);
    expect(choices?.tools[0]?.function.name).toBe("submit_chapter");
    const lastChoiceMessage = choices?.messages[choices.messages.length - 1];
    expect(lastChoiceMessage?.role === "assistant" && lastChoiceMessage.tool_calls?.[0]?.function.name).toBe(
      "submit_chapter",
    );
  });
});

describe("story agent: react", () => {
  it("runs the tool loop with observations in the next request, then streams the prose", async () => {
    const model = new FakeModelClient(script());
    const events = await collect(createStoryAgent(model).write(continueInput("react")));
    expect(model.calls.map((c) => [c.kind, kindOf(c.request)])).toEqual([
      ["complete", "react"],
      ["complete", "react"],
      ["stream", "prose"],
      ["complete", "check"],
      ["complete", "choices"],
    ]);
    const second = model.calls[1]?.request as ChatRequest;
    expect(second.toolChoice).toBe("auto");
    const observation = second.messages[second.messages.length - 1];
    expect(observation?.role).toBe("tool");
    // Chapter 1 is outside the verbatim window of 3; recall finds it.
    expect(observation?.content).toContain("(Chapter 1) The mill burned");
    const toolEvents = events.filter((e) => e.type === "tool");
    expect(toolEvents.map((e) => e.type === "tool" && e.name)).toEqual(["recall", "begin_writing"]);

    const writing = done(events).runs[0];
    expect(writing?.promptVersion).toBe(`continue.react@${PROMPT_VERSION}`);
    expect(writing?.tools.map((t) => t.function.name)).toEqual([
      "recall",
      "lookup",
      "check_continuity",
      "illustrate",
      "begin_writing",
    ]);
    const roles = writing?.messages.map((m) => m.role);
    expect(roles).toEqual(["system", "user", "assistant", "tool", "assistant", "tool", "user", "assistant"]);
    const thought = writing?.messages[2] as Extract<ChatMessage, { role: "assistant" }>;
    expect(thought.content).toBe("What happened at the mill?");
    expect(thought.tool_calls?.[0]?.function).toEqual({ name: "recall", arguments: '{"query":"mill fire"}' });
    const toolResult = writing?.messages[3] as Extract<ChatMessage, { role: "tool" }>;
    expect(toolResult.tool_call_id).toBe(thought.tool_calls?.[0]?.id);
  });

  it("stops gathering at maxSteps and writes anyway", async () => {
    const model = new FakeModelClient(
      script({ react: () => ({ toolCalls: [{ name: "lookup", arguments: { name: "Tomas" } }] }) }),
    );
    const events = await collect(createStoryAgent(model, { maxSteps: 2 }).write(continueInput("react")));
    expect(model.calls.filter((c) => kindOf(c.request) === "react")).toHaveLength(2);
    const prose = model.calls.find((c) => c.kind === "stream")?.request as ChatRequest;
    expect(lastUser(prose)).toContain("Step limit reached");
    expect(events.filter((e) => e.type === "tool")[0]).toMatchObject({ result: expect.stringContaining("red beard") });
    expect(done(events).text).toBe(PROSE);
  });

  it("turns invalid tool arguments into the observation", async () => {
    const model = new FakeModelClient(
      script({
        react: (_req, n) =>
          n === 0
            ? { toolCalls: [{ name: "recall", arguments: "{not json" }] }
            : { toolCalls: [{ name: "begin_writing", arguments: { plan: "go" } }] },
      }),
    );
    const events = await collect(createStoryAgent(model).write(continueInput("react")));
    const second = model.calls[1]?.request as ChatRequest;
    expect(second.messages[second.messages.length - 1]?.content).toMatch(/^Error: invalid arguments for recall/);
    expect(done(events).text).toBe(PROSE);
  });
});

describe("story agent: reflexion", () => {
  it("revises with the critique in context and streams the revision when the check fails", async () => {
    const model = new FakeModelClient(
      script({
        check: (_req, n) =>
          n === 0
            ? { json: { ok: false, issues: ["Tomas has a red beard, not black."] } }
            : { json: { ok: true, issues: [] } },
      }),
    );
    const events = await collect(createStoryAgent(model).write(continueInput("reflexion")));
    expect(model.calls.map((c) => [c.kind, kindOf(c.request)])).toEqual([
      ["complete", "thought"],
      ["complete", "draft"],
      ["complete", "check"],
      ["stream", "prose"],
      ["complete", "check"],
      ["complete", "choices"],
    ]);
    const revision = model.calls[3]?.request as ChatRequest;
    expect(lastUser(revision)).toMatch(/^Step: revise/);
    expect(lastUser(revision)).toContain("Tomas has a red beard, not black.");
    const result = done(events);
    expect(text(events)).toBe(PROSE);
    expect(result.text).toBe(PROSE);
    expect(result.runs.map((r) => r.task)).toEqual(["continue", "check", "check", "choices"]);
    expect(result.runs[1]?.checks.continuityOk).toBe(false);
    expect(events.some((e) => e.type === "status" && e.phase === "revising")).toBe(true);
  });

  it("shows the draft, marked unchecked, when the critique cannot be had on any strategy", async () => {
    const model = new FakeModelClient(script({ check: () => ({ text: "no json here" }) }));
    const events = await collect(createStoryAgent(model).write(continueInput("reflexion")));
    const result = done(events);
    expect(result.text).toBe(`Draft. ${PROSE}`);
    expect(result.continuity).toEqual({ ok: false, issues: ["unchecked: bad_output"] });
    expect(model.calls.some((c) => c.kind === "stream")).toBe(false);
  });

  it("emits the draft as text deltas when the critique passes", async () => {
    const model = new FakeModelClient(script());
    const events = await collect(createStoryAgent(model).write(continueInput("reflexion")));
    expect(model.calls.some((c) => c.kind === "stream")).toBe(false);
    expect(model.calls.filter((c) => kindOf(c.request) === "check")).toHaveLength(1);
    const deltas = events.filter((e) => e.type === "text");
    expect(deltas.length).toBeGreaterThan(1);
    expect(text(events)).toBe(`Draft. ${PROSE}`);
    expect(done(events).text).toBe(`Draft. ${PROSE}`);
  });
});

describe("story agent: open", () => {
  it("plans with a forced plan_story call and yields the story before any text", async () => {
    const model = new FakeModelClient(script());
    const input: AgentInput = {
      task: "open",
      method: "cot",
      story: { ...story, title: "", language: "", chapters: [], bible: { characters: [], places: [], facts: [] } },
      chapterNumber: 1,
    };
    const events = await collect(createStoryAgent(model).write(input));
    const first = model.calls[0]?.request as ChatRequest;
    expect(first.toolChoice).toEqual({ name: "plan_story" });
    expect(lastUser(first)).toContain(`Scenario: ${story.premise}`);
    const types = events.map((e) => e.type);
    expect(types.indexOf("story")).toBeGreaterThanOrEqual(0);
    expect(types.indexOf("story")).toBeLessThan(types.indexOf("text"));
    expect(events.find((e) => e.type === "story")).toMatchObject({ title: PLAN.title, language: "en" });
    const result = done(events);
    expect(result.story?.bible.characters[0]?.name).toBe("Ada");
    expect(result.story?.arc.openThreads).toEqual(["who writes?"]);
    expect(result.runs[0]?.promptVersion).toBe(`open.cot@${PROMPT_VERSION}`);
    expect(result.runs[0]?.messages[3]).toMatchObject({ role: "tool", content: "Plan recorded." });
  });

  it("a forced call answered in text (Ollama) moves the route to json_schema, remembered, and records a tool call", async () => {
    const model = new FakeModelClient(
      script({
        plan: (req) =>
          typeof req.toolChoice === "object"
            ? { text: "Here is my plan..." }
            : { json: { ...PLAN, arc: { ...PLAN.arc } } },
      }),
    );
    const learned: string[] = [];
    const strategies = new StrategyMemory([], {
      persist: async (l) => {
        learned.push(`${l.key}=${l.strategy}`);
      },
    });
    const input: AgentInput = { task: "open", method: "cot", story: { ...story, chapters: [] }, chapterNumber: 1 };
    const agent = createStoryAgent(model, { strategies });
    const result = done(await collect(agent.write(input)));
    expect(model.calls[1]?.request.responseFormat?.name).toBe("plan_story");
    expect(model.calls[1]?.request.tools).toBeUndefined();
    expect(learned).toEqual(["http://fake#fake=json_schema"]);
    // The trajectory has the tool-call shape whatever carried the answer.
    expect(result.runs[0]?.messages[2]).toMatchObject({
      role: "assistant",
      tool_calls: [{ function: { name: "plan_story" } }],
    });
    expect(result.runs[0]?.messages[3]).toMatchObject({ role: "tool", content: "Plan recorded." });
    // Learned once: the next structured call goes straight to json_schema.
    const before = model.calls.length;
    done(await collect(agent.write(input)));
    expect(model.calls[before]?.request.responseFormat?.name).toBe("plan_story");
    expect(learned).toHaveLength(1);
  });
});

describe("story agent: structured output", () => {
  const duplicate = {
    ...CHAPTER,
    choices: [
      { label: "Run", direction: "escape" },
      { label: "run", direction: "escape too" },
    ],
  };

  it("repairs invalid submit_chapter arguments once, then succeeds", async () => {
    const model = new FakeModelClient(
      script({
        choices: (_req, n) =>
          n === 0
            ? { toolCalls: [{ name: "submit_chapter", arguments: duplicate }] }
            : { toolCalls: [{ name: "submit_chapter", arguments: CHAPTER }] },
      }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    const second = model.callsFor("choices")[1]?.request as ChatRequest;
    const repair = second.messages[second.messages.length - 1];
    expect(repair?.role).toBe("tool");
    expect(repair?.content).toContain("choice labels must be distinct");
    expect(result.choices.map((c) => c.label)).toEqual(["Follow the footsteps", "Hide in the millstone pit"]);
  });

  it("keeps the chapter when submit_chapter is invalid twice: prose title, choices from a short call, marked for repair", async () => {
    const model = new FakeModelClient(
      script({
        choices: (req) =>
          wanted(req) === "offer_choices"
            ? { toolCalls: [{ name: "offer_choices", arguments: { choices: CHAPTER.choices } }] }
            : { toolCalls: [{ name: "submit_chapter", arguments: duplicate }] },
      }),
    );
    const events = await collect(createStoryAgent(model).write(continueInput("cot")));
    expect(model.callsFor("choices").map((c) => wanted(c.request))).toEqual([
      "submit_chapter",
      "submit_chapter",
      "offer_choices",
    ]);
    const result = done(events);
    expect(result.needsRepair).toBe(true);
    expect(result.text).toBe(PROSE);
    // The first line is too long for a title: the story's title stands in.
    expect(result.chapterTitle).toBe("The Harbour Letters");
    expect(result.summary).toBe("");
    expect(result.choices.map((c) => c.label)).toEqual(["Follow the footsteps", "Hide in the millstone pit"]);
    expect(result.runs.filter((r) => r.task === "choices").map((r) => r.status)).toEqual(["failed", "ok"]);
  });

  it("keeps the chapter with no choices when even the short call fails; a short first line is its title", async () => {
    const long = "Ash and Embers\n\nAda climbed to the mill.";
    const model = new FakeModelClient(
      script({ prose: () => ({ text: long }), choices: () => ({ error: new ModelError("server", "down") }) }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    expect(result.needsRepair).toBe(true);
    expect(result.chapterTitle).toBe("Ash and Embers");
    expect(result.choices).toEqual([]);
  });

  it("a 400 naming response_format moves the route to JSON in text, whose fenced answer is read", async () => {
    const model = new FakeModelClient(
      script({
        check: (req) =>
          req.responseFormat
            ? { error: new ModelError("bad_request", "response_format json_schema is not supported", 400) }
            : { text: 'Here you go:\n```json\n{"ok": true, "issues": []}\n```' },
      }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    expect(result.continuity).toEqual({ ok: true, issues: [] });
    const last = model.callsFor("check").at(-1)?.request as ChatRequest;
    expect(last.responseFormat).toBeUndefined();
    expect(lastUser(last)).toContain(`${JSON_TEXT_MARKER}continuity_report`);
    expect(result.runs.find((r) => r.task === "check")?.messages.at(-1)).toEqual({
      role: "assistant",
      content: '{"ok": true, "issues": []}',
    });
  });

  it("null for an optional field (strict schemas) is read as absent", async () => {
    const model = new FakeModelClient(
      script({
        choices: () => ({
          toolCalls: [{ name: "submit_chapter", arguments: { ...CHAPTER, arc: null, illustration: null } }],
        }),
      }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    expect(result.needsRepair).toBeUndefined();
    expect(result.arc).toBeUndefined();
  });

  it("repairs an invalid continuity report once", async () => {
    const model = new FakeModelClient(
      script({ check: (_req, n) => (n === 0 ? { json: { ok: "yes" } } : { json: { ok: true, issues: [] } }) }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    expect(model.callsFor("check")).toHaveLength(2);
    expect(lastUser(model.callsFor("check")[1]?.request as ChatRequest)).toMatch(/continuity_report JSON was invalid/);
    // The trajectory keeps the validated report; transport and repair turns are not training data.
    expect(result.runs.find((r) => r.task === "check")?.messages.map((m) => m.role)).toEqual([
      "system",
      "user",
      "assistant",
    ]);
  });
});

describe("story agent: continuity check unavailable", () => {
  it("keeps the chapter, marked unchecked, when the final check is invalid twice", async () => {
    const model = new FakeModelClient(script({ check: () => ({ text: "no json here" }) }));
    const result = done(await collect(createStoryAgent(model).write(continueInput("cot"))));
    expect(result.text).toBe(PROSE);
    expect(result.continuity).toEqual({ ok: false, issues: ["unchecked: bad_output"] });
    expect(result.runs.find((r) => r.task === "check")?.status).toBe("failed");
  });
});

describe("story agent: failures", () => {
  it("asks again, saying so, when the prose comes back empty, and the chapter is written", async () => {
    const model = new FakeModelClient(
      script({ prose: (_req, n) => ({ text: n < 2 ? (n === 0 ? "" : "  \n") : PROSE }) }),
    );
    const events = await collect(createStoryAgent(model).write(continueInput("cot")));
    const result = done(events);
    expect(result.text.trim()).toBe(PROSE);
    const prose = model.calls.filter((c) => c.kind === "stream").map((c) => c.request as ChatRequest);
    expect(prose).toHaveLength(3);
    expect(lastUser(prose[0] as ChatRequest)).not.toContain("Your answer was empty");
    expect(lastUser(prose[1] as ChatRequest)).toContain("Your answer was empty. Write chapter 6 now");
    // The nudge is no part of the trajectory a fine-tune learns from.
    expect(result.runs[0]?.messages.some((m) => (m.content ?? "").includes("Your answer was empty"))).toBe(false);
  });

  it("fails the chapter as bad_output after three empty answers", async () => {
    const model = new FakeModelClient(script({ prose: () => ({ text: "" }) }));
    const events = await collect(createStoryAgent(model).write(continueInput("cot")));
    const last = events[events.length - 1];
    expect(last?.type).toBe("failed");
    if (last?.type !== "failed") return;
    expect(last.error.kind).toBe("bad_output");
    expect(last.error.message).toContain("empty chapter");
    expect(model.calls.filter((c) => c.kind === "stream")).toHaveLength(3);
  });

  it("continues a stream cut mid-way from the text received: one continuous chapter, one prose turn recorded", async () => {
    const model = new FakeModelClient(
      script({
        prose: (_req, n) =>
          n === 0
            ? { error: new ModelError("cut", "socket closed"), afterText: "Ada climbed" }
            : // The model restarts the sentence it was cut in: the repeat is dropped.
              { text: `Ada climbed${PROSE.slice("Ada climbed".length)}` },
      }),
    );
    const waits: number[] = [];
    const events = await collect(
      createStoryAgent(model, { resumeBaseMs: 1 }).write(continueInput("cot"), { onWait: (ms) => waits.push(ms) }),
    );
    const result = done(events);
    expect(text(events)).toBe(PROSE);
    expect(result.text).toBe(PROSE);
    const second = model.calls.filter((c) => c.kind === "stream")[1]?.request as ChatRequest;
    expect(second.messages.at(-2)).toEqual({ role: "assistant", content: "Ada climbed" });
    expect(lastUser(second).split("\n")[0]).toBe(CONTINUE_MARKER);
    expect(waits).toHaveLength(1);
    const writing = result.runs[0];
    expect(writing?.messages.filter((m) => m.role === "assistant").at(-1)).toEqual({
      role: "assistant",
      content: PROSE,
    });
    expect(writing?.messages.some((m) => m.role === "user" && m.content.startsWith(CONTINUE_MARKER))).toBe(false);
  });

  it("ends with failed when continuing fails too, and no done carries the partial text", async () => {
    const model = new FakeModelClient(
      script({
        prose: (_req, n) =>
          n === 0
            ? { error: new ModelError("cut", "socket closed"), afterText: "Ada climbed" }
            : { error: new ModelError("cut", "socket closed") },
      }),
    );
    const events = await collect(
      createStoryAgent(model, { resumeBaseMs: 1, maxResumes: 2 }).write(continueInput("cot")),
    );
    // The first attempt and two continuations, each cut again.
    expect(model.calls.filter((c) => c.kind === "stream")).toHaveLength(3);
    const last = events[events.length - 1];
    expect(last?.type).toBe("failed");
    if (last?.type !== "failed") return;
    expect(last.error.kind).toBe("cut");
    expect(last.runs[0]?.status).toBe("failed");
    expect(last.runs[0]?.error).toContain("socket closed");
    expect(events.filter((e) => e.type === "done")).toHaveLength(0);
    expect(model.calls.some((c) => kindOf(c.request) === "choices")).toBe(false);
  });

  it("wraps unexpected errors as ModelError and never throws", async () => {
    const model = new FakeModelClient(script({ thought: () => ({ error: new TypeError("boom") }) }));
    const events = await collect(createStoryAgent(model).write(continueInput("cot")));
    const last = events[events.length - 1];
    expect(last?.type === "failed" && last.error.kind).toBe("bad_output");
  });

  it("stops when the signal is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const model = new FakeModelClient(script());
    const events = await collect(createStoryAgent(model).write(continueInput("cot"), { signal: controller.signal }));
    expect(events[events.length - 1]?.type).toBe("failed");
  });
});

describe("story agent: routes", () => {
  it("gives a fine-tuned route a short zero-shot system prompt without exemplars", async () => {
    const prompted = new FakeModelClient(script());
    const tuned = new FakeModelClient({ script: script(), routes: { continue: { fineTuned: true, model: "small" } } });
    await collect(createStoryAgent(prompted).write(continueInput("react")));
    const result = done(await collect(createStoryAgent(tuned).write(continueInput("react"))));
    const system = (m: FakeModelClient) => m.calls[0]?.request.messages[0]?.content ?? "";
    expect(system(prompted)).toContain("Example");
    expect(system(tuned)).not.toContain("Example");
    expect(system(tuned)).not.toContain("recall");
    expect(system(tuned).length).toBeLessThan(system(prompted).length / 3);
    expect(result.runs[0]?.promptVersion).toBe(`continue.react.ft@${PROMPT_VERSION}`);
    expect(result.runs[0]?.model).toBe("small");
    // The tools still go as specs.
    expect(tuned.calls[0]?.request.tools?.map((t) => t.function.name)).toContain("recall");
  });
});

describe("story agent: summarize", () => {
  it("folds chapters into a bounded summary and records the run", async () => {
    const model = new FakeModelClient([{ text: "word ".repeat(2000) }]);
    const { summary, run } = await createStoryAgent(model).summarize({ story, fold: story.chapters.slice(0, 2) });
    expect(summary.length).toBeLessThanOrEqual(1800);
    expect(run.task).toBe("summarize");
    expect(run.promptVersion).toBe(`summarize@${PROMPT_VERSION}`);
    const user = model.calls[0]?.request.messages[1]?.content ?? "";
    expect(user).toContain("Chapter 1 (Chapter 1): Letter 1.");
    expect(model.calls[0]?.request.messages[0]?.content).toContain("250 words");
  });

  it("throws ModelError on an empty summary", async () => {
    const model = new FakeModelClient([{ text: "  " }]);
    await expect(createStoryAgent(model).summarize({ story, fold: [] })).rejects.toMatchObject({ kind: "bad_output" });
  });
});

describe("story agent: planning ahead", () => {
  it.each(["cot", "react"] as const)(
    "%s: a plan made ahead leaves only the prose and the parts, and the trajectory is the same as without it",
    async (method) => {
      const plain = new FakeModelClient(script());
      const unplanned = done(await collect(createStoryAgent(plain).write(continueInput(method))));

      const model = new FakeModelClient(script());
      const agent = createStoryAgent(model);
      const outcome = await agent.plan(continueInput(method));
      expect(outcome.ok).toBe(true);
      if (!outcome.ok) return;
      const before = model.calls.length;
      const events = await collect(agent.write(continueInput(method), { plan: outcome.plan }));
      const result = done(events);
      // The first call after the choice is the streamed prose.
      expect(model.calls[before]?.kind).toBe("stream");
      expect(result.runs.map((r) => r.messages)).toEqual(unplanned.runs.map((r) => r.messages));
      expect(result.runs.map((r) => r.task)).toEqual(unplanned.runs.map((r) => r.task));
      // The plan's tool events are shown as they would have been.
      expect(events.filter((e) => e.type === "tool").length).toBe(method === "react" ? 2 : 0);
    },
  );

  it("a plan is used once: a second write with it plans again", async () => {
    const model = new FakeModelClient(script());
    const agent = createStoryAgent(model);
    const outcome = await agent.plan(continueInput("cot"));
    if (!outcome.ok) throw new Error("no plan");
    done(await collect(agent.write(continueInput("cot"), { plan: outcome.plan })));
    const before = model.calls.length;
    done(await collect(agent.write(continueInput("cot"), { plan: outcome.plan })));
    expect(model.calls[before]?.kind).toBe("complete");
  });

  it("a cancelled plan reports what it spent", async () => {
    const controller = new AbortController();
    const model = new FakeModelClient((req, index) => {
      if (index > 0) controller.abort();
      return kindOf(req) === "react"
        ? { toolCalls: [{ name: "recall", arguments: { query: "mill" } }] }
        : { text: "x" };
    });
    const outcome = await createStoryAgent(model).plan(continueInput("react"), controller.signal);
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.runs[0]?.promptTokens).toBe(100);
  });
});

describe("story agent: ReAct in the field", () => {
  it("a plain-text answer instead of a tool call is a direct answer (FireAct), never an error", async () => {
    const model = new FakeModelClient(
      script({ react: () => ({ text: "I remember enough: Ada returns to the mill." }) }),
    );
    const result = done(await collect(createStoryAgent(model).write(continueInput("react"))));
    expect(result.text).toBe(PROSE);
    expect(model.calls.filter((c) => kindOf(c.request) === "react")).toHaveLength(1);
    const write = lastUser(model.calls.find((c) => c.kind === "stream")?.request as ChatRequest);
    expect(write).not.toContain("Step limit reached");
  });
});

describe("joining a continuation to the text it continues", () => {
  const join = (before: string, deltas: string[]) => {
    const seam = new Seam(before);
    return before + deltas.map((d) => seam.push(d)).join("") + seam.flush();
  };

  it("drops the start of a continuation that repeats the sentence it was cut in", () => {
    expect(join("Ada climbed to the mill. Soot still clung to", [" Soot still clung", " to the stone."])).toBe(
      "Ada climbed to the mill. Soot still clung to the stone.",
    );
  });

  it("keeps a continuation that repeats nothing, without doubling the space at the seam", () => {
    expect(join("Ada climbed ", [" to the mill."])).toBe("Ada climbed to the mill.");
    expect(join("Ada climbed", [" to the mill."])).toBe("Ada climbed to the mill.");
    // A short coincidence ("the") is not a repeat.
    expect(join("She saw the", ["the end of it."])).toBe("She saw thethe end of it.");
  });

  it("holds only the start: later text passes straight through", () => {
    const seam = new Seam("Before.");
    expect(seam.push("x".repeat(130))).toBe("x".repeat(130));
    expect(seam.push(" more")).toBe(" more");
  });
});
