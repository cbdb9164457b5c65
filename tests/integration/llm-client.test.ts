import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OpenAiModelClient, type OpenAiModelClientOptions } from "../../src/llm/openai-client.ts";
import {
  type ChatRequest,
  type ChatResult,
  type ChatStreamEvent,
  ModelError,
  TASKS,
  type Task,
  type ToolSpec,
} from "../../src/llm/types.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";

let server: FakeOpenAiServer;

beforeEach(async () => {
  server = await FakeOpenAiServer.start();
});

afterEach(async () => {
  await server.close();
});

function clientFor(baseUrl: string, options: Partial<OpenAiModelClientOptions> = {}): OpenAiModelClient {
  const routes = Object.fromEntries(
    TASKS.map((t) => [t, { model: `model-${t}`, baseUrl, fineTuned: false }]),
  ) as Record<Task, { model: string; baseUrl: string; fineTuned: boolean }>;
  return new OpenAiModelClient({
    routes,
    apiKey: "sk-test",
    timeoutMs: 2_000,
    maxRetries: 2,
    prices: { inputPerMTok: 1, outputPerMTok: 2 },
    retryBaseMs: 1,
    ...options,
  });
}

const ask = (overrides: Partial<ChatRequest> = {}): ChatRequest => ({
  task: "continue",
  messages: [
    { role: "system", content: "You write stories." },
    { role: "user", content: "Continue the chapter." },
  ],
  ...overrides,
});

async function collect(events: AsyncIterable<ChatStreamEvent>): Promise<{ deltas: string[]; done: ChatResult }> {
  const deltas: string[] = [];
  for await (const event of events) {
    if (event.type === "text") deltas.push(event.delta);
    else return { deltas, done: event };
  }
  throw new Error("stream ended without a done event");
}

async function modelError(promise: Promise<unknown>): Promise<ModelError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  return err as ModelError;
}

const rejectionOf = (events: AsyncIterable<ChatStreamEvent>) => modelError(collect(events));

const tool: ToolSpec = {
  type: "function",
  function: {
    name: "add_character",
    description: "Add a character to the story bible",
    parameters: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
  },
};

describe("OpenAiModelClient against the fake OpenAI server", () => {
  it("streams text in several deltas, in order, and ends with the whole message", async () => {
    const text = "The lantern guttered as Mira stepped into the flooded archive.";
    server.setResponder(() => ({ kind: "text", text, chunkSize: 10 }));
    const { deltas, done } = await collect(clientFor(server.baseUrl).stream(ask()));

    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.join("")).toBe(text);
    expect(done.message).toEqual({ role: "assistant", content: text });
    expect(done.finishReason).toBe("stop");
    const body = server.requests[0]?.body;
    expect(body).toMatchObject({ model: "model-continue", stream: true, stream_options: { include_usage: true } });
  });

  it("assembles streamed tool calls whose arguments arrive split over several chunks", async () => {
    const args = { name: "Captain Iveline Marrowgate", role: "smuggler", age: 41 };
    server.setResponder(() => ({
      kind: "tool_calls",
      content: "I should record her.",
      calls: [
        { name: "add_character", arguments: args },
        { name: "noop", arguments: "{}" },
      ],
    }));
    const { done } = await collect(clientFor(server.baseUrl).stream(ask({ tools: [tool] })));

    expect(done.finishReason).toBe("tool_calls");
    expect(done.message.content).toBe("I should record her.");
    const calls = done.message.tool_calls ?? [];
    expect(calls.map((c) => c.function.name)).toEqual(["add_character", "noop"]);
    expect(JSON.parse(calls[0]?.function.arguments ?? "")).toEqual(args);
    expect(calls[0]?.id).toMatch(/^call_/);
    expect(server.requests[0]?.body).toMatchObject({ tools: [tool], tool_choice: "auto" });
  });

  it("returns tool calls from a non-streaming completion and forces a named tool", async () => {
    server.setResponder(() => ({ kind: "tool_calls", calls: [{ name: "add_character", arguments: { name: "Ode" } }] }));
    const result = await clientFor(server.baseUrl).complete(
      ask({ tools: [tool], toolChoice: { name: "add_character" } }),
    );

    expect(result.finishReason).toBe("tool_calls");
    expect(result.message.content).toBeNull();
    expect(result.message.tool_calls?.[0]?.function).toEqual({ name: "add_character", arguments: '{"name":"Ode"}' });
    expect(server.requests[0]?.body.tool_choice).toEqual({ type: "function", function: { name: "add_character" } });
  });

  it("sends a strict json_schema response format and max_tokens, and the JSON content parses", async () => {
    const schema = { type: "object", properties: { choices: { type: "array", items: { type: "string" } } } };
    const value = { choices: ["Open the door", "Run"] };
    server.setResponder(() => ({ kind: "json", value }));
    const result = await clientFor(server.baseUrl).complete(
      ask({ task: "choices", responseFormat: { name: "choices", schema }, maxTokens: 200, temperature: 0.2 }),
    );

    // Sent in OpenAI's strict form: every object closed, every property required (optional ones nullable).
    const strict = {
      type: "object",
      properties: { choices: { type: ["array", "null"], items: { type: "string" } } },
      required: ["choices"],
      additionalProperties: false,
    };
    expect(server.requests[0]?.body).toMatchObject({
      model: "model-choices",
      response_format: { type: "json_schema", json_schema: { name: "choices", schema: strict, strict: true } },
      max_tokens: 200,
      temperature: 0.2,
    });
    expect(server.requests[0]?.body.stream).toBeFalsy();
    expect(JSON.parse(result.message.content ?? "")).toEqual(value);
  });

  it("reports the server's usage and prices it per million tokens", async () => {
    server.setResponder(() => ({ kind: "text", text: "x".repeat(400), chunkDelayMs: 5, chunkSize: 100 }));
    const req = ask({ messages: [{ role: "user", content: "y".repeat(800) }] });
    const { done } = await collect(clientFor(server.baseUrl).stream(req));

    expect(done.usage).toMatchObject({ model: "model-continue", promptTokens: 200, completionTokens: 100 });
    expect(done.usage.costUsd).toBeCloseTo((200 * 1) / 1e6 + (100 * 2) / 1e6, 12);
    expect(done.usage.firstTokenMs).toBeGreaterThanOrEqual(0);
    expect(done.usage.latencyMs).toBeGreaterThanOrEqual(done.usage.firstTokenMs ?? 0);
    expect(done.usage.latencyMs).toBeGreaterThanOrEqual(15);
  });

  it("estimates usage at four characters a token when the server sends none", async () => {
    const noUsage: typeof fetch = async (input, init) => {
      // Strip include_usage so the fake, like many local servers, omits the usage chunk.
      const body = JSON.parse(String(init?.body));
      delete body.stream_options;
      return fetch(input, { ...init, body: JSON.stringify(body) });
    };
    server.setResponder(() => ({ kind: "text", text: "z".repeat(41) }));
    const req = ask({ messages: [{ role: "user", content: "q".repeat(99) }] });
    const { done } = await collect(clientFor(server.baseUrl, { fetch: noUsage }).stream(req));

    expect(done.usage.promptTokens).toBe(25);
    expect(done.usage.completionTokens).toBe(11);
  });

  it("retries a 429 once and waits as long as retry-after-ms asks, telling the caller of the wait", async () => {
    server.enqueue({ kind: "error", status: 429, headers: { "retry-after-ms": "200" } });
    const started = performance.now();
    const waits: [number, string][] = [];
    const { done } = await collect(
      clientFor(server.baseUrl).stream(ask({ onRetry: (ms, error) => waits.push([ms, error.kind]) })),
    );

    expect(done.message.content).toBe("OK");
    expect(server.requests).toHaveLength(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(waits).toEqual([[200, "rate_limited"]]);
  });

  it("retries two 500s and then succeeds", async () => {
    server.enqueue({ kind: "error", status: 500 }, { kind: "error", status: 503 });
    const result = await clientFor(server.baseUrl).complete(ask());

    expect(result.message.content).toBe("OK");
    expect(server.requests).toHaveLength(3);
  });

  it("gives up as server after retries run out on 5xx", async () => {
    server.setResponder(() => ({ kind: "error", status: 502 }));
    const err = await modelError(clientFor(server.baseUrl, { maxRetries: 1 }).complete(ask()));

    expect(err.kind).toBe("server");
    expect(err.status).toBe(502);
    expect(server.requests).toHaveLength(2);
  });

  it("maps 429 after all retries to rate_limited", async () => {
    server.setResponder(() => ({ kind: "error", status: 429, headers: { "retry-after": "0" } }));
    const err = await rejectionOf(clientFor(server.baseUrl, { maxRetries: 2 }).stream(ask()));

    expect(err.kind).toBe("rate_limited");
    expect(server.requests).toHaveLength(3);
  });

  it("does not retry a 401 and maps it to auth", async () => {
    server.setResponder(() => ({ kind: "error", status: 401, message: "Incorrect API key provided" }));
    const err = await rejectionOf(clientFor(server.baseUrl).stream(ask()));

    expect(err.kind).toBe("auth");
    expect(err.status).toBe(401);
    expect(err.transient).toBe(false);
    expect(server.requests).toHaveLength(1);
    expect(err.message).not.toContain("sk-test");
  });

  it("does not retry a 404 for an unknown model and maps it to bad_request", async () => {
    server.setResponder(() => ({ kind: "error", status: 404, message: "The model does not exist" }));
    const err = await modelError(clientFor(server.baseUrl).complete(ask()));

    expect(err.kind).toBe("bad_request");
    expect(server.requests).toHaveLength(1);
  });

  it("reports unreachable after retries when nothing listens at the endpoint", async () => {
    const gone = await FakeOpenAiServer.start();
    await gone.close();
    const err = await rejectionOf(clientFor(gone.baseUrl, { maxRetries: 2 }).stream(ask()));

    expect(err.kind).toBe("unreachable");
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("times out a response slower than timeoutMs", async () => {
    server.setResponder(() => ({ kind: "hang" }));
    const started = performance.now();
    const err = await modelError(clientFor(server.baseUrl, { timeoutMs: 300, maxRetries: 1 }).complete(ask()));

    expect(err.kind).toBe("timeout");
    expect(server.requests).toHaveLength(2);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("times out a stream whose first byte comes later than timeoutMs, retrying once", async () => {
    server.setResponder(() => ({ kind: "text", text: "late", delayMs: 1_000 }));
    const err = await rejectionOf(clientFor(server.baseUrl, { timeoutMs: 300, maxRetries: 1 }).stream(ask()));

    expect(err.kind).toBe("timeout");
    expect(server.requests).toHaveLength(2);
  });

  it("throws cut without retrying when a stream stalls longer than timeoutMs after text was yielded", async () => {
    server.setResponder(() => ({ kind: "text", text: "0123456789", chunkSize: 5, chunkDelayMs: 1_000 }));
    const deltas: string[] = [];
    const started = performance.now();
    const err = await modelError(
      (async () => {
        for await (const e of clientFor(server.baseUrl, { timeoutMs: 300 }).stream(ask())) {
          if (e.type === "text") deltas.push(e.delta);
        }
      })(),
    );

    expect(err.kind).toBe("cut");
    expect(deltas).toEqual(["01234"]);
    expect(server.requests).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(900);
  });

  it("throws cut without retrying when the connection drops after some text", async () => {
    server.setResponder(() => ({ kind: "cut", text: "She opened the door and", chunkSize: 6 }));
    const deltas: string[] = [];
    const err = await modelError(
      (async () => {
        for await (const e of clientFor(server.baseUrl).stream(ask())) {
          if (e.type === "text") deltas.push(e.delta);
        }
      })(),
    );

    expect(err.kind).toBe("cut");
    expect(deltas.join("")).toBe("She opened the door and");
    expect(server.requests).toHaveLength(1);
  });

  it("retries a connection dropped before any text, then succeeds", async () => {
    server.enqueue({ kind: "cut", text: "" });
    const { done } = await collect(clientFor(server.baseUrl).stream(ask()));

    expect(done.message.content).toBe("OK");
    expect(server.requests).toHaveLength(2);
  });

  it("retries a non-streaming reply whose connection drops mid-body, then succeeds", async () => {
    server.enqueue({ kind: "cut", text: "half an answer" });
    const result = await clientFor(server.baseUrl).complete(ask());

    expect(result.message.content).toBe("OK");
    expect(server.requests).toHaveLength(2);
  });

  it("reports cut for a non-streaming reply that keeps dropping mid-body", async () => {
    server.setResponder(() => ({ kind: "cut", text: "half an answer" }));
    const err = await modelError(clientFor(server.baseUrl, { maxRetries: 1 }).complete(ask()));

    expect(err.kind).toBe("cut");
    expect(server.requests).toHaveLength(2);
  });

  it("stops a stream with the caller's abort reason and does not retry", async () => {
    server.setResponder(() => ({ kind: "text", text: "a".repeat(100), chunkSize: 5, chunkDelayMs: 50 }));
    const controller = new AbortController();
    const deltas: string[] = [];
    const err = await (async () => {
      for await (const e of clientFor(server.baseUrl).stream(ask({ signal: controller.signal }))) {
        if (e.type === "text") deltas.push(e.delta);
        if (deltas.length === 2) controller.abort();
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe("AbortError");
    expect(deltas).toHaveLength(2);
    expect(server.requests).toHaveLength(1);
  });

  it("aborts a hanging non-streaming call when the caller's signal fires", async () => {
    server.setResponder(() => ({ kind: "hang" }));
    const reason = new Error("reader left");
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 50);
    const err = await clientFor(server.baseUrl, { timeoutMs: 5_000 })
      .complete(ask({ signal: controller.signal }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    expect(err).toBe(reason);
    expect(server.requests).toHaveLength(1);
  });

  it("routes each task to its configured model", async () => {
    const client = clientFor(server.baseUrl);
    expect(client.route("summarize")).toEqual({ model: "model-summarize", baseUrl: server.baseUrl, fineTuned: false });
    await client.complete(ask({ task: "summarize" }));
    expect(server.requests[0]?.body.model).toBe("model-summarize");
  });
});

describe("FakeOpenAiServer", () => {
  it("lists one model and answers unknown routes with a 404 error body", async () => {
    const models = (await (await fetch(`${server.baseUrl}/models`)).json()) as { data: unknown[] };
    expect(models.data).toHaveLength(1);
    const missing = await fetch(`${server.baseUrl}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: unknown }).error).toMatchObject({ type: "invalid_request_error" });
    expect(server.requests.map((r) => r.path)).toEqual(["/models", "/nothing-here"]);
  });

  it("adds up the latency it injected and forgets it on resetStats", async () => {
    server.setResponder(() => ({ kind: "text", text: "abcdef", chunkSize: 2, chunkDelayMs: 10, delayMs: 20 }));
    await collect(clientFor(server.baseUrl).stream(ask()));
    expect(server.injectedLatencyMs).toBe(20 + 2 * 10);
    server.resetStats();
    expect(server.injectedLatencyMs).toBe(0);
    expect(server.requests).toHaveLength(0);
  });
});
