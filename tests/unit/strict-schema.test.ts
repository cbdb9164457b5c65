import { describe, expect, it } from "vitest";
import {
  continuityResponseFormat,
  offerChoicesTool,
  parseJsonWith,
  planStoryTool,
  REACT_TOOLS,
  submitChapterSchema,
  submitChapterTool,
} from "../../src/agent/schemas.ts";
import {
  dropNulls,
  extractJson,
  grammarJsonSchema,
  grammarSchemaFor,
  strictJsonSchema,
} from "../../src/llm/strict-schema.ts";
import { defaultStrategy, nextStrategy, routeKey, StrategyMemory } from "../../src/llm/structured-strategy.ts";
import { moderationResponseFormat } from "../../src/story/moderation.ts";
import { pairwiseResponseFormat } from "../../src/training/eval.ts";
import { strictSchemaErrors } from "../fakes/openai-strict-schema.ts";

/** Every schema the engine can send with `strict: true`. */
const SENT: [string, Record<string, unknown>][] = [
  ...[planStoryTool, submitChapterTool, offerChoicesTool, ...REACT_TOOLS].map(
    (t): [string, Record<string, unknown>] => [`tool ${t.function.name}`, t.function.parameters],
  ),
  ["response_format continuity_report", continuityResponseFormat.schema],
  ["response_format moderation_verdict", moderationResponseFormat.schema],
  ["response_format pairwise_verdict", pairwiseResponseFormat.schema],
];

describe("schemas sent with strict: true", () => {
  it.each(SENT)("%s follows OpenAI's strict rules", (_name, schema) => {
    expect(strictSchemaErrors(schema)).toEqual([]);
  });

  it("zod's own output would be rejected: the rules checker is not a rubber stamp", () => {
    const loose = { type: "object", properties: { a: { type: "string", minLength: 1 } } };
    expect(strictSchemaErrors(loose).length).toBeGreaterThan(0);
    expect(strictSchemaErrors(strictJsonSchema(loose))).toEqual([]);
  });
});

describe("strictJsonSchema", () => {
  it("closes every object, requires every property and makes optional ones nullable", () => {
    const schema = strictJsonSchema({
      type: "object",
      properties: {
        name: { type: "string", maxLength: 80 },
        arc: { type: "object", properties: { beats: { type: "array", items: { type: "string" } } } },
        kind: { type: "string", enum: ["a", "b"] },
      },
      required: ["name"],
    });
    expect(schema).toEqual({
      type: "object",
      properties: {
        name: { type: "string" },
        arc: {
          type: ["object", "null"],
          properties: { beats: { type: ["array", "null"], items: { type: "string" } } },
          required: ["beats"],
          additionalProperties: false,
        },
        kind: { type: ["string", "null"], enum: ["a", "b", null] },
      },
      required: ["name", "arc", "kind"],
      additionalProperties: false,
    });
  });

  it("a strict chapter answer with nulls for the optional parts validates as absent", () => {
    const answer = {
      chapter_title: "Ash",
      summary: "Ada returns.",
      choices: [
        { label: "Go", direction: "north" },
        { label: "Stay", direction: "home" },
      ],
      new_characters: [],
      new_facts: [],
      arc: null,
      illustration: null,
    };
    const parsed = parseJsonWith(submitChapterSchema, JSON.stringify(answer));
    expect(parsed.ok && parsed.value.arc).toBeUndefined();
    expect(dropNulls({ a: null, b: [{ c: null, d: 1 }] })).toEqual({ b: [{ d: 1 }] });
  });
});

describe("extractJson", () => {
  it("reads bare JSON, a fenced block, or the object inside a sentence", () => {
    expect(extractJson('{"a":1}')).toBe('{"a":1}');
    expect(extractJson('Sure!\n```json\n{"a":1}\n```')).toBe('{"a":1}');
    expect(extractJson('Here: {"a":{"b":2}} done')).toBe('{"a":{"b":2}}');
    expect(extractJson("no json here")).toBeUndefined();
  });
});

describe("the grammar form, for the embedded model", () => {
  const schema = {
    type: "object",
    properties: {
      title: { type: "string", minLength: 1, maxLength: 120 },
      language: { type: "string", pattern: "^[a-z]{2,3}$", grammarEnum: ["en", "zh"] },
      note: { type: "string", maxLength: 10 },
    },
    required: ["title", "language"],
  };

  it("keeps string lengths and turns a grammarEnum into the enum; the strict form drops both", () => {
    expect(grammarJsonSchema(schema)).toEqual({
      type: "object",
      properties: {
        title: { type: "string", minLength: 1, maxLength: 120 },
        language: { type: "string", enum: ["en", "zh"] },
        note: { type: ["string", "null"], maxLength: 10 },
      },
      required: ["title", "language", "note"],
      additionalProperties: false,
    });
    expect(strictJsonSchema(schema)).toEqual({
      type: "object",
      properties: {
        title: { type: "string" },
        language: { type: "string", pattern: "^[a-z]{2,3}$" },
        note: { type: ["string", "null"] },
      },
      required: ["title", "language", "note"],
      additionalProperties: false,
    });
  });

  it("is found for the strict schema the agent sends; OpenAI still gets the strict one", () => {
    const params = planStoryTool.function.parameters;
    expect(JSON.stringify(params)).not.toMatch(/minLength|maxLength|grammarEnum/);
    expect(strictJsonSchema(params)).toEqual(params);
    const grammar = grammarSchemaFor(params) as { properties: Record<string, Record<string, unknown>> };
    expect(grammar.properties.title).toMatchObject({ type: "string", minLength: 1, maxLength: 120 });
    expect(grammar.properties.language?.enum).toContain("en");
    expect(grammar.properties.language?.pattern).toBeUndefined();
    // A schema nobody registered is its own grammar form.
    const other = { type: "object", properties: {}, required: [], additionalProperties: false };
    expect(grammarSchemaFor(other)).toBe(other);
  });
});

describe("structured-output strategy per route", () => {
  it("Ollama starts with json_schema; OpenAI, vLLM and the rest with a forced tool call", () => {
    expect(defaultStrategy({ baseUrl: "http://localhost:11434/v1" })).toBe("json_schema");
    expect(defaultStrategy({ baseUrl: "http://ollama.internal:8080/v1" })).toBe("json_schema");
    expect(defaultStrategy({ baseUrl: "https://api.openai.com/v1" })).toBe("tool");
    expect(defaultStrategy({ baseUrl: "http://gpu:8000/v1" })).toBe("tool");
    expect(nextStrategy("tool")).toBe("json_schema");
    expect(nextStrategy("json_schema")).toBe("json_text");
    expect(nextStrategy("json_text")).toBeUndefined();
  });

  it("learns downward only, once, and remembers across instances through its store", async () => {
    const saved: string[] = [];
    const route = { model: "m", baseUrl: "http://gpu:8000/v1/", fineTuned: false };
    const book = new StrategyMemory([], { persist: async (l) => void saved.push(`${l.key}=${l.strategy}`) });
    book.learn(route, "json_schema", "dropped");
    book.learn(route, "tool", "never up");
    book.learn(route, "json_schema", "again");
    expect(book.get(route)).toBe("json_schema");
    expect(saved).toEqual(["http://gpu:8000/v1#m=json_schema"]);
    const restarted = new StrategyMemory([{ key: routeKey(route), strategy: "json_schema", reason: "" }]);
    expect(restarted.get(route)).toBe("json_schema");
    expect(new StrategyMemory([], { override: "json_text" }).get(route)).toBe("json_text");
  });
});
