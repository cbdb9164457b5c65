/**
 * The fake OpenAI-compatible server's endpoint profiles (openai, ollama, vllm), its
 * `structured` replies, its seeded fault injection and OpenAI's strict-schema rules,
 * all driven through the real `openai` SDK over HTTP and SSE.
 */
import OpenAI from "openai";
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionTool } from "openai/resources/chat/completions";
import { afterEach, describe, expect, it } from "vitest";
import { continueMessage, JSON_TEXT_MARKER, jsonTextRequest } from "../../src/agent/prompts.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeFaults, FakeProfile, Responder } from "../fakes/fake-openai-types.ts";
import { assertStrictSchema, strictSchemaErrors } from "../fakes/openai-strict-schema.ts";
import { storyResponder } from "../fakes/story-responder.ts";

const servers: FakeOpenAiServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  options: Parameters<typeof FakeOpenAiServer.start>[0] = {},
): Promise<{ server: FakeOpenAiServer; client: OpenAI }> {
  const server = await FakeOpenAiServer.start(options);
  servers.push(server);
  return { server, client: new OpenAI({ baseURL: server.baseUrl, apiKey: "x", maxRetries: 0 }) };
}

async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof OpenAI.APIError)) throw new Error(`expected an APIError, got ${String(err)}`);
  return err;
}

/** What zod's toJSONSchema gives for an object with an optional field: not strict-mode valid. */
const LOOSE_SCHEMA = {
  type: "object",
  properties: {
    summary: { type: "string", minLength: 1 },
    arc: { type: "object", properties: { beats: { type: "array", items: { type: "string" } } } },
  },
  required: ["summary"],
};

/** The same shape in strict form: closed objects, every key required, optional ones nullable. */
const STRICT_SCHEMA = {
  type: "object",
  properties: {
    summary: { type: "string" },
    arc: {
      anyOf: [
        {
          type: "object",
          properties: { beats: { type: "array", items: { type: "string" } } },
          required: ["beats"],
          additionalProperties: false,
        },
        { type: "null" },
      ],
    },
  },
  required: ["summary", "arc"],
  additionalProperties: false,
};

function tool(name: string, parameters: Record<string, unknown>, strict?: boolean): ChatCompletionTool {
  return { type: "function", function: { name, parameters, ...(strict !== undefined && { strict }) } };
}

/** The first function tool call of a completion. */
function firstCall(res: OpenAI.Chat.ChatCompletion): { name: string; arguments: string } | undefined {
  const call = res.choices[0]?.message.tool_calls?.[0];
  return call?.type === "function" ? call.function : undefined;
}

const forceTool = (name: string) => ({ type: "function" as const, function: { name } });

const USER = [{ role: "user" as const, content: "Go on." }];
const VALUE = { summary: "The ferry vanished.", arc: null };

describe("strictSchemaErrors", () => {
  it("accepts a strict schema with nullable unions, arrays, enums and $defs", () => {
    const schema = {
      type: "object",
      properties: {
        title: { type: ["string", "null"], description: "a title" },
        mood: { type: "string", enum: ["calm", "tense"] },
        count: { type: "integer", minimum: 0, maximum: 9 },
        tags: { type: "array", items: { type: "string", pattern: "^[a-z]+$" }, minItems: 1, maxItems: 4 },
        who: { $ref: "#/$defs/person" },
      },
      required: ["title", "mood", "count", "tags", "who"],
      additionalProperties: false,
      $defs: {
        person: {
          type: "object",
          properties: { name: { type: "string" } },
          required: ["name"],
          additionalProperties: false,
        },
      },
    };
    expect(strictSchemaErrors(schema)).toEqual([]);
    expect(strictSchemaErrors(STRICT_SCHEMA)).toEqual([]);
    expect(() => assertStrictSchema(schema)).not.toThrow();
  });

  it("a zod-style schema gets every violation in OpenAI's wording, root first", () => {
    expect(strictSchemaErrors(LOOSE_SCHEMA)).toEqual([
      "In context=(), 'additionalProperties' is required to be supplied and to be false.",
      "In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'arc'.",
      "In context=('properties', 'summary'), 'minLength' is not permitted.",
      "In context=('properties', 'arc'), 'additionalProperties' is required to be supplied and to be false.",
      "In context=('properties', 'arc'), 'required' is required to be supplied and to be an array including every key in properties. Missing 'beats'.",
    ]);
  });

  it("a nested object without additionalProperties is named by its path", () => {
    const schema = {
      type: "object",
      properties: { summary: { type: "object", properties: {}, required: [] } },
      required: ["summary"],
      additionalProperties: false,
    };
    expect(strictSchemaErrors(schema)).toEqual([
      "In context=('properties', 'summary'), 'additionalProperties' is required to be supplied and to be false.",
    ]);
  });

  it("objects inside items, anyOf branches and $defs are checked too", () => {
    const open = { type: "object", properties: { a: { type: "string" } }, required: ["a"] };
    const schema = {
      type: "object",
      properties: {
        list: { type: "array", items: open },
        either: { anyOf: [{ type: "null" }, open] },
      },
      required: ["list", "either"],
      additionalProperties: false,
      $defs: { thing: open },
    };
    expect(strictSchemaErrors(schema)).toEqual([
      "In context=('properties', 'list', 'items'), 'additionalProperties' is required to be supplied and to be false.",
      "In context=('properties', 'either', 'anyOf', 1), 'additionalProperties' is required to be supplied and to be false.",
      "In context=('$defs', 'thing'), 'additionalProperties' is required to be supplied and to be false.",
    ]);
  });

  it("unsupported keywords are not permitted wherever they appear", () => {
    const schema = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        title: { type: "string", minLength: 1, maxLength: 80, default: "x" },
        tags: { type: "array", items: { type: "string" }, uniqueItems: true },
        any: { oneOf: [{ type: "string" }], not: { type: "null" }, allOf: [] },
      },
      required: ["title", "tags", "any"],
      additionalProperties: false,
    };
    expect(strictSchemaErrors(schema)).toEqual([
      "In context=(), '$schema' is not permitted.",
      "In context=('properties', 'title'), 'minLength' is not permitted.",
      "In context=('properties', 'title'), 'maxLength' is not permitted.",
      "In context=('properties', 'title'), 'default' is not permitted.",
      "In context=('properties', 'tags'), 'uniqueItems' is not permitted.",
      "In context=('properties', 'any'), 'oneOf' is not permitted.",
      "In context=('properties', 'any'), 'not' is not permitted.",
      "In context=('properties', 'any'), 'allOf' is not permitted.",
    ]);
  });

  it("a root that is not type object (an anyOf) is rejected as a whole", () => {
    expect(strictSchemaErrors({ anyOf: [STRICT_SCHEMA, { type: "null" }] })).toEqual([
      `schema must be a JSON Schema of 'type: "object"', got 'type: "None"'.`,
    ]);
    expect(strictSchemaErrors({ type: "array", items: { type: "string" } })).toEqual([
      `schema must be a JSON Schema of 'type: "object"', got 'type: "array"'.`,
    ]);
  });

  it("assertStrictSchema throws with every message", () => {
    expect(() => assertStrictSchema(LOOSE_SCHEMA)).toThrow(/Missing 'arc'\.\n.*'minLength' is not permitted/);
  });
});

describe("openai profile", () => {
  it("a strict tool whose schema breaks strict mode gets OpenAI's exact 400", async () => {
    const { client } = await start({ profile: "openai" });
    const err = await apiError(
      client.chat.completions.create({
        model: "m",
        messages: USER,
        tools: [tool("recall", STRICT_SCHEMA, true), tool("submit_chapter", LOOSE_SCHEMA, true)],
        tool_choice: forceTool("submit_chapter"),
      }),
    );
    expect(err.status).toBe(400);
    expect(err.error).toEqual({
      message:
        "Invalid schema for function 'submit_chapter': In context=(), 'additionalProperties' is required to be supplied and to be false.",
      type: "invalid_request_error",
      param: "tools[1].function.parameters",
      code: "invalid_function_parameters",
    });
  });

  it("a strict json_schema response format that breaks strict mode gets a 400 with a null code", async () => {
    const { client } = await start({ profile: "openai" });
    const err = await apiError(
      client.chat.completions.create({
        model: "m",
        messages: USER,
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "continuity_report",
            strict: true,
            schema: { ...STRICT_SCHEMA, required: ["summary"] },
          },
        },
      }),
    );
    expect(err.status).toBe(400);
    expect(err.error).toEqual({
      message:
        "Invalid schema for response_format 'continuity_report': In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'arc'.",
      type: "invalid_request_error",
      param: "response_format",
      code: null,
    });
  });

  it("accepts strict schemas that follow the rules, and does not check schemas that are not strict", async () => {
    const { client, server } = await start({ profile: "openai" });
    server.enqueue(
      { kind: "structured", name: "submit_chapter", value: VALUE },
      { kind: "structured", name: "submit_chapter", value: VALUE },
    );
    const strict = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("submit_chapter", STRICT_SCHEMA, true)],
      tool_choice: forceTool("submit_chapter"),
    });
    expect(JSON.parse(firstCall(strict)?.arguments ?? "")).toEqual(VALUE);
    const loose = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("submit_chapter", LOOSE_SCHEMA)],
      tool_choice: forceTool("submit_chapter"),
    });
    expect(loose.choices[0]?.message.tool_calls).toHaveLength(1);
  });

  it("rejects a tool_choice naming a function that is not in tools, and a tool_choice without tools", async () => {
    const { client, server } = await start({ profile: "openai" });
    const missing = await apiError(
      client.chat.completions.create({
        model: "m",
        messages: USER,
        tools: [tool("recall", STRICT_SCHEMA, true)],
        tool_choice: forceTool("plan_story"),
      }),
    );
    expect(missing.status).toBe(400);
    expect(missing.param).toBe("tool_choice");
    expect(missing.message).toContain("'plan_story'");
    const without = await apiError(
      client.chat.completions.create({ model: "m", messages: USER, tool_choice: "required" }),
    );
    expect(without.status).toBe(400);
    expect(without.error).toMatchObject({
      message: "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
      param: "tool_choice",
    });
    // Rejected before any model runs: the responder was never asked.
    expect(server.chatRequests()).toHaveLength(2);
  });

  it("the default profile is openai's: the same broken schema is rejected unless the ideal profile is asked for", async () => {
    const strict = await start();
    expect(strict.server.profile).toBe("openai");
    await expect(
      strict.client.chat.completions.create({
        model: "m",
        messages: USER,
        tools: [tool("submit_chapter", LOOSE_SCHEMA, true)],
        tool_choice: forceTool("submit_chapter"),
      }),
    ).rejects.toMatchObject({ status: 400 });
    const { client, server } = await start({ profile: "ideal" });
    expect(server.profile).toBe("ideal");
    server.enqueue({ kind: "structured", name: "submit_chapter", value: VALUE });
    const res = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("submit_chapter", LOOSE_SCHEMA, true)],
      tool_choice: forceTool("submit_chapter"),
    });
    expect(firstCall(res)?.name).toBe("submit_chapter");
  });
});

describe("ollama profile", () => {
  it("a forced tool_choice is dropped: plain text that is not JSON, no tool calls, counted", async () => {
    const { client, server } = await start({ profile: "ollama" });
    server.setResponder(() => ({ kind: "tool_calls", calls: [{ name: "plan_story", arguments: { title: "T" } }] }));
    const params: ChatCompletionCreateParamsNonStreaming = {
      model: "m",
      messages: USER,
      tools: [tool("plan_story", STRICT_SCHEMA)],
      tool_choice: forceTool("plan_story"),
    };
    const forced = await client.chat.completions.create(params);
    const required = await client.chat.completions.create({ ...params, tool_choice: "required" });
    for (const res of [forced, required]) {
      const message = res.choices[0]?.message;
      expect(message?.tool_calls).toBeUndefined();
      expect(res.choices[0]?.finish_reason).toBe("stop");
      expect(message?.content).toMatch(/^Sure! Here is what happens next: /);
      expect(() => JSON.parse(message?.content ?? "")).toThrow();
    }
    expect(server.droppedForcedCalls).toBe(2);
  });

  it("with dropForcedToolRate 0 the forced call goes through", async () => {
    const { client, server } = await start({ profile: "ollama", dropForcedToolRate: 0 });
    server.enqueue({ kind: "structured", name: "plan_story", value: VALUE });
    const res = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("plan_story", STRICT_SCHEMA)],
      tool_choice: forceTool("plan_story"),
    });
    expect(JSON.parse(firstCall(res)?.arguments ?? "")).toEqual(VALUE);
    expect(server.droppedForcedCalls).toBe(0);
  });

  it("a fractional dropForcedToolRate drops some forced calls, the same ones for the same seed", async () => {
    const pattern = async (seed: number) => {
      const { client, server } = await start({ profile: "ollama", dropForcedToolRate: 0.5, seed });
      server.setResponder(() => ({ kind: "structured", name: "plan_story", value: VALUE }));
      const dropped: boolean[] = [];
      for (let i = 0; i < 12; i++) {
        const res = await client.chat.completions.create({
          model: "m",
          messages: USER,
          tools: [tool("plan_story", STRICT_SCHEMA)],
          tool_choice: forceTool("plan_story"),
        });
        dropped.push(res.choices[0]?.message.tool_calls === undefined);
      }
      expect(server.droppedForcedCalls).toBe(dropped.filter(Boolean).length);
      return dropped;
    };
    const first = await pattern(3);
    expect(await pattern(3)).toEqual(first);
    expect(first).toContain(true);
    expect(first).toContain(false);
  });

  it("honours a json_schema response format, with no strict validation", async () => {
    const { client, server } = await start({ profile: "ollama" });
    server.enqueue({ kind: "structured", name: "continuity_report", value: VALUE });
    const res = await client.chat.completions.create({
      model: "m",
      messages: USER,
      response_format: {
        type: "json_schema",
        json_schema: { name: "continuity_report", strict: true, schema: LOOSE_SCHEMA },
      },
    });
    expect(JSON.parse(res.choices[0]?.message.content ?? "")).toEqual(VALUE);
  });

  it("tool_choice none does not stop tool calls: the responder sees auto", async () => {
    const answer: Responder = (req) =>
      req.body.tool_choice === "none"
        ? { kind: "text", text: "No tools, then." }
        : { kind: "tool_calls", calls: [{ name: "recall", arguments: { query: "rain" } }] };
    const params: ChatCompletionCreateParamsNonStreaming = {
      model: "m",
      messages: USER,
      tools: [tool("recall", STRICT_SCHEMA)],
      tool_choice: "none",
    };
    const ollama = await start({ profile: "ollama", responder: answer });
    const res = await ollama.client.chat.completions.create(params);
    expect(firstCall(res)?.name).toBe("recall");
    // The request is recorded as sent.
    expect(ollama.server.chatRequests()[0]?.body.tool_choice).toBe("none");
    const ideal = await start({ responder: answer });
    expect((await ideal.client.chat.completions.create(params)).choices[0]?.message.content).toBe("No tools, then.");
  });
});

describe("vllm profile", () => {
  const twoCalls = {
    kind: "tool_calls" as const,
    content: "Looking around first.",
    calls: [
      { name: "recall", arguments: { query: "rain" } },
      { name: "lookup", arguments: { name: "Mara" } },
    ],
  };

  it("sends only the first of two tool calls, streamed or not", async () => {
    const { client, server } = await start({ profile: "vllm" });
    server.enqueue(twoCalls, twoCalls);
    const params: ChatCompletionCreateParamsNonStreaming = {
      model: "m",
      messages: USER,
      tools: [tool("recall", STRICT_SCHEMA), tool("lookup", STRICT_SCHEMA)],
    };
    const res = await client.chat.completions.create(params);
    expect(res.choices[0]?.message.tool_calls?.map((c) => c.type === "function" && c.function.name)).toEqual([
      "recall",
    ]);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const indexes = new Set<number>();
    for await (const chunk of stream)
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) indexes.add(call.index);
    expect([...indexes]).toEqual([0]);
  });

  it("honours a named tool_choice (structured reply as a tool call) and keeps both calls on ideal", async () => {
    const vllm = await start({ profile: "vllm" });
    vllm.server.enqueue({ kind: "structured", name: "plan_story", value: VALUE });
    const res = await vllm.client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("plan_story", LOOSE_SCHEMA, true)],
      tool_choice: forceTool("plan_story"),
    });
    expect(firstCall(res)?.name).toBe("plan_story");
    const ideal = await start();
    ideal.server.enqueue(twoCalls);
    const both = await ideal.client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("recall", STRICT_SCHEMA), tool("lookup", STRICT_SCHEMA)],
    });
    expect(both.choices[0]?.message.tool_calls).toHaveLength(2);
  });
});

describe("structured replies", () => {
  const reply = { kind: "structured" as const, name: "submit_chapter", value: VALUE };

  it("render as a tool call when the request forces that tool, by name or with required", async () => {
    const { client, server } = await start();
    server.enqueue(reply, reply);
    const tools = [tool("recall", STRICT_SCHEMA), tool("submit_chapter", STRICT_SCHEMA, true)];
    for (const choice of [forceTool("submit_chapter"), "required" as const]) {
      const res = await client.chat.completions.create({ model: "m", messages: USER, tools, tool_choice: choice });
      const call = firstCall(res);
      expect(call?.name).toBe("submit_chapter");
      expect(JSON.parse(call?.arguments ?? "")).toEqual(VALUE);
      expect(res.choices[0]?.finish_reason).toBe("tool_calls");
    }
  });

  it("render as JSON content when the request sets a json_schema response format", async () => {
    const { client, server } = await start();
    server.enqueue(reply);
    const res = await client.chat.completions.create({
      model: "m",
      messages: USER,
      response_format: { type: "json_schema", json_schema: { name: "submit_chapter", schema: STRICT_SCHEMA } },
    });
    expect(res.choices[0]?.message.tool_calls).toBeUndefined();
    expect(JSON.parse(res.choices[0]?.message.content ?? "")).toEqual(VALUE);
  });

  it("render as bare JSON text for the json_text strategy, fenced after a sentence on ollama", async () => {
    const messages = [{ role: "user" as const, content: jsonTextRequest("submit_chapter", STRICT_SCHEMA) }];
    const texts: Partial<Record<FakeProfile, string>> = {};
    for (const profile of ["ideal", "openai", "vllm", "ollama"] as const) {
      const { client, server } = await start({ profile });
      server.enqueue(reply);
      texts[profile] =
        (await client.chat.completions.create({ model: "m", messages })).choices[0]?.message.content ?? "";
    }
    expect(JSON.parse(texts.ideal ?? "")).toEqual(VALUE);
    expect(texts.openai).toBe(texts.ideal);
    expect(texts.vllm).toBe(texts.ideal);
    const fenced = /^[^\n`{]+\.\n\n```json\n([\s\S]+)\n```$/.exec(texts.ollama ?? "");
    expect(JSON.parse(fenced?.[1] ?? "")).toEqual(VALUE);
  });

  it("render the same way in SSE: tool-call argument deltas, or content deltas", async () => {
    const { client, server } = await start();
    server.enqueue(reply, reply);
    const toolStream = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("submit_chapter", STRICT_SCHEMA, true)],
      tool_choice: forceTool("submit_chapter"),
      stream: true,
    });
    let args = "";
    for await (const chunk of toolStream) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) args += call.function?.arguments ?? "";
    }
    expect(JSON.parse(args)).toEqual(VALUE);
    const textStream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: jsonTextRequest("submit_chapter", STRICT_SCHEMA) }],
      stream: true,
    });
    let content = "";
    for await (const chunk of textStream) content += chunk.choices[0]?.delta.content ?? "";
    expect(JSON.parse(content)).toEqual(VALUE);
  });

  it("a dropped forced call on ollama applies to structured replies too", async () => {
    const { client, server } = await start({ profile: "ollama" });
    server.enqueue(reply);
    const res = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("submit_chapter", STRICT_SCHEMA, true)],
      tool_choice: forceTool("submit_chapter"),
    });
    expect(res.choices[0]?.message.tool_calls).toBeUndefined();
    expect(() => JSON.parse(res.choices[0]?.message.content ?? "")).toThrow();
    expect(server.droppedForcedCalls).toBe(1);
  });
});

describe("fault injection", () => {
  const FULL = "The fog rolled in over the harbour and the ferry's lamps went out one by one.";
  const FAULTS: FakeFaults = { rateLimit: 0.2, serverError: 0.2, cut: 0.3 };

  /** What each of `count` streamed requests got: "429", "500", "cut:<received text>" or "ok". */
  async function outcomes(seed: number, count: number): Promise<{ seen: string[]; server: FakeOpenAiServer }> {
    const { client, server } = await start({ faults: FAULTS, seed, responder: () => ({ kind: "text", text: FULL }) });
    const seen: string[] = [];
    for (let i = 0; i < count; i++) {
      let received = "";
      try {
        const stream = await client.chat.completions.create({ model: "m", messages: USER, stream: true });
        for await (const chunk of stream) received += chunk.choices[0]?.delta.content ?? "";
        seen.push(received === FULL ? "ok" : `short:${received}`);
      } catch (e) {
        seen.push(e instanceof OpenAI.APIError ? String(e.status) : `cut:${received}`);
      }
    }
    return { seen, server };
  }

  it("a fixed seed replays the same faults, and the counts match what the client saw", async () => {
    const a = await outcomes(7, 24);
    const b = await outcomes(7, 24);
    expect(b.seen).toEqual(a.seen);
    expect(b.server.faultCounts).toEqual(a.server.faultCounts);
    expect(a.seen.filter((s) => s === "429")).toHaveLength(a.server.faultCounts.rateLimit);
    expect(a.seen.filter((s) => s === "500")).toHaveLength(a.server.faultCounts.serverError);
    const cuts = a.seen.filter((s) => s.startsWith("cut:")).map((s) => s.slice("cut:".length));
    expect(cuts).toHaveLength(a.server.faultCounts.cut);
    for (const text of cuts) expect(text.length > 0 && text.length < FULL.length && FULL.startsWith(text)).toBe(true);
    expect(a.seen.filter((s) => s === "ok")).toHaveLength(
      24 - cuts.length - a.server.faultCounts.rateLimit - a.server.faultCounts.serverError,
    );
    expect(a.server.faultCounts.rateLimit).toBeGreaterThan(0);
    expect(a.server.faultCounts.serverError).toBeGreaterThan(0);
    expect(a.server.faultCounts.cut).toBeGreaterThan(0);
    expect(a.server.chatRequests()).toHaveLength(24);
    const other = await outcomes(8, 24);
    expect(other.seen).not.toEqual(a.seen);
  });

  it("a cut stream breaks the SDK's stream after a strict, non-empty prefix of the text", async () => {
    const { client, server } = await start({ faults: { cut: 1 }, responder: () => ({ kind: "text", text: FULL }) });
    for (let i = 0; i < 5; i++) {
      let received = "";
      const stream = await client.chat.completions.create({ model: "m", messages: USER, stream: true });
      const failure = await (async () => {
        for await (const chunk of stream) received += chunk.choices[0]?.delta.content ?? "";
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(Error);
      expect(received.length).toBeGreaterThan(0);
      expect(received.length).toBeLessThan(FULL.length);
      expect(FULL.startsWith(received)).toBe(true);
    }
    expect(server.faultCounts).toEqual({ cut: 5, rateLimit: 0, serverError: 0 });
  });

  it("cuts only streamed text: non-streaming requests and tool calls come through whole", async () => {
    const { client, server } = await start({ faults: { cut: 1 } });
    server.enqueue(
      { kind: "text", text: FULL },
      { kind: "tool_calls", calls: [{ name: "recall", arguments: { query: "fog" } }] },
    );
    const whole = await client.chat.completions.create({ model: "m", messages: USER });
    expect(whole.choices[0]?.message.content).toBe(FULL);
    const stream = await client.chat.completions.create({
      model: "m",
      messages: USER,
      tools: [tool("recall", STRICT_SCHEMA)],
      stream: true,
    });
    let args = "";
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) args += call.function?.arguments ?? "";
    }
    expect(JSON.parse(args)).toEqual({ query: "fog" });
    expect(server.faultCounts.cut).toBe(0);
  });

  it("a rate-limited request gets OpenAI's 429 with retry-after-ms and keeps the queued reply for the retry", async () => {
    const { client, server } = await start({ faults: { rateLimit: 1 } });
    server.enqueue({ kind: "text", text: "After the wait." });
    const err = await apiError(client.chat.completions.create({ model: "m", messages: USER }));
    expect(err.status).toBe(429);
    expect(err.headers?.get("retry-after-ms")).toBe("50");
    expect(err.error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
    server.setFaults({ serverError: 1 });
    const down = await apiError(client.chat.completions.create({ model: "m", messages: USER }));
    expect(down.status).toBe(500);
    expect(server.faultCounts).toEqual({ cut: 0, rateLimit: 1, serverError: 1 });
    server.setFaults({});
    const res = await client.chat.completions.create({ model: "m", messages: USER });
    expect(res.choices[0]?.message.content).toBe("After the wait.");
  });

  it("the SDK's own retries ride through a rate limit", async () => {
    const { server } = await start({ faults: { rateLimit: 0.5 }, seed: 11 });
    const client = new OpenAI({ baseURL: server.baseUrl, apiKey: "x", maxRetries: 8 });
    for (let i = 0; i < 4; i++) {
      const res = await client.chat.completions.create({ model: "m", messages: USER });
      expect(res.choices[0]?.message.content).toBe("OK");
    }
    expect(server.chatRequests().length).toBe(4 + server.faultCounts.rateLimit);
  });
});

describe("storyResponder through the profiles", () => {
  const chapterUser = "Step: write\nChapter number: 2\nReader's action: Open the sealed letter\nWrite chapter 2.";

  it("recognises the structure by json_text marker, response_format name or forced tool, with arc null when strict", async () => {
    const { client } = await start({ responder: storyResponder() });
    const strictChapter = { ...STRICT_SCHEMA, properties: { arc: {} }, required: ["arc"] };
    const viaText = await client.chat.completions.create({
      model: "m",
      messages: [
        { role: "user", content: chapterUser },
        { role: "assistant", content: "The letter was warm." },
        { role: "user", content: jsonTextRequest("submit_chapter", strictChapter) },
      ],
    });
    const chapter = JSON.parse(viaText.choices[0]?.message.content ?? "");
    expect(chapter.choices).toHaveLength(3);
    expect(chapter.arc).toBeNull();
    expect(chapter.summary).toContain("Open the sealed letter");

    const viaTool = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: chapterUser }],
      tools: [tool("submit_chapter", { type: "object", properties: { arc: {} }, required: [] })],
      tool_choice: forceTool("submit_chapter"),
    });
    const loose = JSON.parse(firstCall(viaTool)?.arguments ?? "");
    expect("arc" in loose).toBe(false);

    const offer = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: chapterUser }],
      response_format: { type: "json_schema", json_schema: { name: "offer_choices", schema: STRICT_SCHEMA } },
    });
    expect(JSON.parse(offer.choices[0]?.message.content ?? "")).toEqual({ choices: chapter.choices });
  });

  it("a json_text request superseded by a later step is not answered again: the new step gets prose", async () => {
    const { client } = await start({ responder: storyResponder() });
    const res = await client.chat.completions.create({
      model: "m",
      messages: [
        { role: "user", content: `Step: open\nScenario: a ferry lost in fog\n${JSON_TEXT_MARKER}plan_story` },
        { role: "assistant", content: "{}" },
        { role: "user", content: chapterUser },
      ],
    });
    expect(res.choices[0]?.message.content).toMatch(/^Chapter 2\. Because the reader chose "Open the sealed letter"/);
  });

  it("resumes cut prose with exactly the rest of the chapter, or a closing paragraph", async () => {
    const { client } = await start({ responder: storyResponder() });
    const full =
      (await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: chapterUser }] }))
        .choices[0]?.message.content ?? "";
    const partial = full.slice(0, 70);
    const resume = async (assistant: string) => {
      const stream = await client.chat.completions.create({
        model: "m",
        messages: [
          { role: "user", content: chapterUser },
          { role: "assistant", content: assistant },
          { role: "user", content: continueMessage(2) },
        ],
        stream: true,
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return text;
    };
    expect(partial + (await resume(partial))).toBe(full);
    const closing = await resume("Something else entirely was written here");
    expect(closing.trim().length).toBeGreaterThan(0);
    expect(full).not.toContain(closing.trim());
  });

  it("plans and writes under the openai profile with the agent's strict schemas, and drops plans on ollama", async () => {
    const planTool = tool("plan_story", STRICT_SCHEMA, true);
    const openai = await start({ profile: "openai", responder: storyResponder() });
    const planned = await openai.client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "Step: open\nScenario: a ferry lost in fog" }],
      tools: [planTool],
      tool_choice: forceTool("plan_story"),
    });
    expect(JSON.parse(firstCall(planned)?.arguments ?? "").title).toBe("A Ferry Lost In Fog");
    const ollama = await start({ profile: "ollama", responder: storyResponder() });
    const dropped = await ollama.client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "Step: open\nScenario: a ferry lost in fog" }],
      tools: [planTool],
      tool_choice: forceTool("plan_story"),
    });
    expect(dropped.choices[0]?.message.tool_calls).toBeUndefined();
    expect(ollama.server.droppedForcedCalls).toBe(1);
  });
});
