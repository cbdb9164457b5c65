/**
 * LoRA adapter routes (`local:<adapter.gguf>`, src/llm/local-adapters.ts) without the
 * runtime: the GGUF header check, MODEL_<TASK>=local:... in the configuration, route specs
 * on the command line, the client that sends each task to the endpoint or to the embedded
 * model, and the engine's choice of clients for the routes it resolved. Loading an adapter
 * in the real runtime is tests/local-model/lora.local.test.ts (opt-in).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/app/config.ts";
import { createModelClient } from "../../src/app/wiring.ts";
import { GgufFormatError, readGgufMetadata } from "../../src/llm/gguf-metadata.ts";
import { adapterPathOf, adapterRoute, isLocalRoute, loraAdapterProblem } from "../../src/llm/local-adapters.ts";
import { LocalModelClient } from "../../src/llm/local-client.ts";
import { OpenAiModelClient } from "../../src/llm/openai-client.ts";
import { RoutedModelClient } from "../../src/llm/routed-client.ts";
import { type ChatRequest, type ModelRoute, TASKS, type Task } from "../../src/llm/types.ts";
import { formatRoute, parseRouteSpec } from "../../src/training/routes.ts";
import { FakeModelClient } from "../fakes/fake-model-client.ts";
import { encodeGguf, tinyLora, writeTinyLlamaGguf, writeTinyLoraGguf } from "../helpers/gguf-writer.ts";

let dir: string;
let model: string;
let adapter: string;
let runtime: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-lora-routes-"));
  model = join(dir, "tiny.gguf");
  adapter = join(dir, "continue-lora.gguf");
  writeTinyLlamaGguf(model);
  writeTinyLoraGguf(adapter);
  // A stand-in for the on-demand runtime's prefix: the configuration only looks for its entry.
  runtime = join(dir, "runtime");
  mkdirSync(join(runtime, "node_modules", "node-llama-cpp", "dist"), { recursive: true });
  writeFileSync(join(runtime, "node_modules", "node-llama-cpp", "dist", "index.js"), "");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

/** A file of the given metadata (string values) and no tensors. */
function ggufWith(name: string, metadata: Record<string, string>): string {
  const path = join(dir, name);
  const kv = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { type: "string" as const, value: v }]));
  writeFileSync(path, encodeGguf(kv, []));
  return path;
}

describe("reading a GGUF header without the runtime", () => {
  it("keeps scalars and strings, and skips arrays, even arrays larger than its read buffer", () => {
    const tokens = Array.from({ length: 20_000 }, (_, i) => `token-${i}`);
    const path = join(dir, "big-vocab.gguf");
    writeFileSync(
      path,
      encodeGguf(
        {
          "general.architecture": { type: "string", value: "llama" },
          "tokenizer.ggml.tokens": { type: "string[]", value: tokens },
          "tokenizer.ggml.scores": { type: "f32[]", value: tokens.map(() => 0) },
          "tokenizer.ggml.eos_token_id": { type: "u32", value: 7 },
          "general.type": { type: "string", value: "model" },
        },
        [],
      ),
    );
    const { version, metadata } = readGgufMetadata(path);
    expect(version).toBe(3);
    expect(metadata.get("general.architecture")).toBe("llama");
    expect(metadata.has("tokenizer.ggml.tokens")).toBe(true);
    expect(metadata.get("tokenizer.ggml.tokens")).toBeUndefined();
    // Read correctly only if both arrays before it were skipped to the byte.
    expect(metadata.get("tokenizer.ggml.eos_token_id")).toBe(7);
    expect(metadata.get("general.type")).toBe("model");
  });

  it("reads an adapter's header: its type and LoRA alpha", () => {
    const { metadata } = readGgufMetadata(adapter);
    expect(metadata.get("general.type")).toBe("adapter");
    expect(metadata.get("adapter.type")).toBe("lora");
    expect(metadata.get("adapter.lora.alpha")).toBe(4);
  });

  it("refuses what is not a GGUF header: another file, an empty one, a truncated one, absurd counts", () => {
    const text = join(dir, "notes.gguf");
    writeFileSync(text, "these are not the weights you are looking for");
    expect(() => readGgufMetadata(text)).toThrow(/no GGUF magic/);
    const empty = join(dir, "empty.gguf");
    writeFileSync(empty, "");
    expect(() => readGgufMetadata(empty)).toThrow(GgufFormatError);
    const whole = encodeGguf(tinyLora().metadata, []);
    const truncated = join(dir, "truncated.gguf");
    writeFileSync(truncated, whole.subarray(0, 60));
    expect(() => readGgufMetadata(truncated)).toThrow(/ends inside its header/);
    const absurd = Buffer.from(whole);
    absurd.writeBigUInt64LE(10n ** 12n, 16); // the number of metadata keys
    const damaged = join(dir, "damaged.gguf");
    writeFileSync(damaged, absurd);
    expect(() => readGgufMetadata(damaged)).toThrow(/damaged header/);
  });
});

describe("checking a LoRA adapter", () => {
  it("accepts a LoRA adapter GGUF for the base model's architecture", () => {
    expect(loraAdapterProblem(adapter, model)).toBeUndefined();
    expect(loraAdapterProblem(adapter)).toBeUndefined();
  });

  it("names what is wrong: no file, not GGUF, a whole model, another adapter type, another architecture", () => {
    expect(loraAdapterProblem(join(dir, "absent.gguf"))).toMatch(/absent\.gguf is not a file/);
    expect(loraAdapterProblem(dir)).toMatch(/is not a file/);
    const text = join(dir, "readme.gguf");
    writeFileSync(text, "hello");
    expect(loraAdapterProblem(text)).toMatch(/readme\.gguf is not a LoRA adapter: not a GGUF file/);
    expect(loraAdapterProblem(model)).toMatch(/tiny\.gguf is not a LoRA adapter: its general\.type is "model"/);
    const vector = ggufWith("vector.gguf", {
      "general.type": "adapter",
      "general.architecture": "llama",
      "adapter.type": "control_vector",
    });
    expect(loraAdapterProblem(vector)).toMatch(/of type "control_vector": only "lora" adapters/);
    const qwen = ggufWith("qwen-lora.gguf", {
      "general.type": "adapter",
      "general.architecture": "qwen2",
      "adapter.type": "lora",
    });
    expect(loraAdapterProblem(qwen, model)).toMatch(
      /a LoRA adapter for qwen2 models, but LOCAL_MODEL .* is a llama model/,
    );
    // A base model whose header cannot be read yet (not downloaded, say) is not held against the adapter.
    expect(loraAdapterProblem(qwen, join(dir, "not-yet.gguf"))).toBeUndefined();
  });
});

describe("MODEL_<TASK>=local:<adapter.gguf>", () => {
  const local = () => ({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime });

  it("routes the task to the adapter on the embedded model, fine-tuned, the path resolved against the working directory", () => {
    const config = loadConfig({ ...local(), MODEL_CONTINUE: `local:${relative(process.cwd(), adapter)}` });
    expect(config.models.continue).toEqual({ model: `local:${adapter}`, baseUrl: "local://embedded", fineTuned: true });
    expect(config.models.open).toEqual({ model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false });
    expect(loadConfig({ ...local(), MODERATION_MODEL: `local:${adapter}` }).models.moderate.model).toBe(
      `local:${adapter}`,
    );
  });

  it("may be told the adapter was not trained on the zero-shot prompt (MODEL_<TASK>_FINE_TUNED=false)", () => {
    const config = loadConfig({ ...local(), MODEL_CONTINUE: `local:${adapter}`, MODEL_CONTINUE_FINE_TUNED: "false" });
    expect(config.models.continue.fineTuned).toBe(false);
  });

  it("runs beside an endpoint: the endpoint serves the other tasks, LOCAL_MODEL is the adapter's base", () => {
    const config = loadConfig({ ...local(), OPENAI_API_KEY: "sk-test", MODEL_CONTINUE: `local:${adapter}` });
    expect(config.local?.modelPath).toBe(model);
    expect(config.models.continue).toEqual({ model: `local:${adapter}`, baseUrl: "local://embedded", fineTuned: true });
    expect(config.models.open).toEqual({
      model: "gpt-4.1-mini",
      baseUrl: "https://api.openai.com/v1",
      fineTuned: false,
    });
  });

  it("needs LOCAL_MODEL, the adapter's base model", () => {
    const [problem] = problems({ OPENAI_API_KEY: "sk-test", MODEL_CONTINUE: `local:${adapter}` });
    expect(problem).toContain(`MODEL_CONTINUE=local:${adapter} runs a LoRA adapter on the embedded model`);
    expect(problem).toContain("set LOCAL_MODEL");
  });

  it("refuses a file that is not a LoRA adapter, naming the variable", () => {
    expect(problems({ ...local(), MODEL_CONTINUE: "local:./nowhere/lora.gguf" })).toEqual([
      `MODEL_CONTINUE=local:./nowhere/lora.gguf: ${resolve("nowhere/lora.gguf")} is not a file`,
    ]);
    expect(problems({ ...local(), MODEL_CHECK: `local:${model}` })[0]).toMatch(
      /^MODEL_CHECK=local:.*tiny\.gguf: .* is not a LoRA adapter: its general\.type is "model"/,
    );
  });

  it("refuses an empty adapter path and a base URL beside it", () => {
    expect(problems({ ...local(), MODEL_CONTINUE: "local:" })[0]).toContain("names no adapter");
    expect(
      problems({ ...local(), MODEL_CONTINUE: `local:${adapter}`, MODEL_CONTINUE_BASE_URL: "http://h:8000/v1" })[0],
    ).toContain("MODEL_CONTINUE_BASE_URL cannot go with MODEL_CONTINUE=local:");
  });
});

describe("route specs on the command line", () => {
  it("reads local:<path> as an adapter route, fine-tuned, resolved against the working directory", () => {
    const expected = { model: `local:${resolve("adapters/c.gguf")}`, baseUrl: "local://embedded", fineTuned: true };
    expect(parseRouteSpec("local:adapters/c.gguf", "http://d/v1")).toEqual(expected);
    expect(parseRouteSpec("local:./adapters/c.gguf#ft", "http://d/v1")).toEqual(expected);
    expect(() => parseRouteSpec("local:", "http://d/v1")).toThrow(/names no adapter/);
    expect(() => parseRouteSpec("local:c.gguf@http://h:8000/v1", "http://d/v1")).toThrow(/takes no base URL/);
  });

  it("writes an adapter route back as it is written, and it reads back the same", () => {
    const route = adapterRoute(adapter);
    expect(formatRoute(route)).toBe(`local:${adapter}`);
    expect(parseRouteSpec(formatRoute(route), "http://d/v1")).toEqual(route);
    expect(formatRoute({ ...route, fineTuned: false })).toBe(`local:${adapter} (prompted)`);
    // The base model's own route is no adapter.
    const baseRoute = { model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false };
    expect(adapterPathOf(baseRoute)).toBeUndefined();
    expect(isLocalRoute(baseRoute)).toBe(true);
    expect(formatRoute(baseRoute)).toBe("local:tiny.gguf@local://embedded");
  });
});

describe("RoutedModelClient", () => {
  const remoteRoute: ModelRoute = { model: "big", baseUrl: "http://endpoint/v1", fineTuned: false };
  const routes = () =>
    Object.fromEntries(TASKS.map((t) => [t, t === "continue" ? adapterRoute(adapter) : remoteRoute])) as Record<
      Task,
      ModelRoute
    >;
  const ask = (task: Task): ChatRequest => ({ task, messages: [{ role: "user", content: "Go on." }] });

  it("sends the tasks on local://embedded to the embedded client and the others to the endpoint's", async () => {
    const local = new FakeModelClient({
      script: () => ({ text: "from the adapter" }),
      routes: { continue: adapterRoute(adapter) },
    });
    const remote = new FakeModelClient({
      script: () => ({ text: "from the endpoint" }),
      routes: { open: remoteRoute },
    });
    const client = new RoutedModelClient(routes(), { local, remote });

    expect((await client.complete(ask("continue"))).message.content).toBe("from the adapter");
    expect((await client.complete(ask("open"))).message.content).toBe("from the endpoint");
    let streamed = "";
    for await (const event of client.stream(ask("continue"))) if (event.type === "text") streamed += event.delta;
    expect(streamed).toBe("from the adapter");
    expect(local.calls.map((c) => [c.kind, c.request.task])).toEqual([
      ["complete", "continue"],
      ["stream", "continue"],
    ]);
    expect(remote.calls.map((c) => [c.kind, c.request.task])).toEqual([["complete", "open"]]);
  });

  it("reports each task's route as the client serving it does", () => {
    const local = new FakeModelClient({ script: [], routes: { continue: adapterRoute(adapter) } });
    const remote = new FakeModelClient({ script: [], routes: { open: remoteRoute } });
    const client = new RoutedModelClient(routes(), { local, remote });
    expect(client.route("continue")).toEqual(adapterRoute(adapter));
    expect(client.route("open")).toEqual(remoteRoute);
  });

  it("closes the clients it routes to that hold something, with the engine", async () => {
    const closed: string[] = [];
    const local = Object.assign(new FakeModelClient({ script: [] }), {
      close: async () => {
        closed.push("local");
      },
    });
    const remote = new FakeModelClient({ script: [] });
    await new RoutedModelClient(routes(), { local, remote }).close();
    expect(closed).toEqual(["local"]);
  });
});

describe("the engine's model client for its routes", () => {
  const configOf = (env: Record<string, string>) => loadConfig({ LOCAL_RUNTIME_DIR: runtime, ...env });

  it("with no endpoint: the embedded model serves every task, a stored adapter route included", async () => {
    const config = configOf({ LOCAL_MODEL: model });
    const client = await createModelClient(config, { ...config.models, continue: adapterRoute(adapter) });
    expect(client).toBeInstanceOf(LocalModelClient);
    expect(client.route("continue")).toEqual(adapterRoute(adapter));
    expect(client.route("open")).toEqual({ model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false });
  });

  it("with an endpoint and an adapter route: both, each task to its own", async () => {
    const config = configOf({ LOCAL_MODEL: model, OPENAI_API_KEY: "sk-test", MODEL_CONTINUE: `local:${adapter}` });
    const client = await createModelClient(config, config.models);
    expect(client).toBeInstanceOf(RoutedModelClient);
    expect(client.route("continue")).toEqual(adapterRoute(adapter));
    expect(client.route("open").baseUrl).toBe("https://api.openai.com/v1");
  });

  it("with an endpoint and no local route: the endpoint alone (LOCAL_MODEL is not loaded)", async () => {
    const config = configOf({ LOCAL_MODEL: model, OPENAI_API_KEY: "sk-test" });
    expect(await createModelClient(config, config.models)).toBeInstanceOf(OpenAiModelClient);
  });

  it("refuses a stored adapter route with no LOCAL_MODEL, or whose file is gone, saying how to drop it", async () => {
    const endpointOnly = configOf({ OPENAI_API_KEY: "sk-test" });
    const noBase = createModelClient(endpointOnly, { ...endpointOnly.models, continue: adapterRoute(adapter) });
    await expect(noBase).rejects.toBeInstanceOf(ConfigError);
    await expect(noBase).rejects.toThrow(/the route of continue .* runs on the embedded model: set LOCAL_MODEL/);
    const config = configOf({ LOCAL_MODEL: model });
    const gone = createModelClient(config, { ...config.models, continue: adapterRoute(join(dir, "deleted.gguf")) });
    await expect(gone).rejects.toThrow(/npm run train:route -- continue --clear.*deleted\.gguf is not a file/);
  });
});
