/**
 * `local:` LoRA adapter routes stored in the database (`npm run train:route`): the tool
 * checks and stores them, and the engine serves them on the embedded model, in local mode
 * and beside an endpoint. The runtime is not needed: its prefix is a stand-in and no
 * request reaches the embedded model here (tests/local-model/*.local.test.ts do that).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { adapterRoute } from "../../src/llm/local-adapters.ts";
import { openDatabase } from "../../src/store/db.ts";
import { RouteStore } from "../../src/training/routes.ts";
import { ConsoleProcess, consoleEnv } from "../e2e/console-process.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { writeTinyLlamaGguf, writeTinyLoraGguf } from "../helpers/gguf-writer.ts";
import { runTrainingCli } from "../helpers/run-cli.ts";
import { queueEnv } from "../helpers/topology.ts";

/** Where the training tools run (tests/helpers/run-cli.ts): the repository's root. */
const ROOT = join(import.meta.dirname, "..", "..");

let dir: string;
const databases = new TestDatabases();
let dbUrl: string;
let modelPath: string;
let adapterPath: string;
let runtime: string;
let engine: Engine | undefined;
let endpoint: FakeOpenAiServer | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-local-routes-"));
  dbUrl = await databases.url(dir, "r");
  modelPath = join(dir, "tiny.gguf");
  adapterPath = join(dir, "continue-lora.gguf");
  writeTinyLlamaGguf(modelPath);
  writeTinyLoraGguf(adapterPath);
  runtime = join(dir, "runtime");
  mkdirSync(join(runtime, "node_modules", "node-llama-cpp", "dist"), { recursive: true });
  writeFileSync(join(runtime, "node_modules", "node-llama-cpp", "dist", "index.js"), "");
});

afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await endpoint?.close();
  endpoint = undefined;
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

async function storeRoute(task: "continue" | "open", route = adapterRoute(adapterPath)): Promise<void> {
  const db = await openDatabase(dbUrl);
  await new RouteStore(db).set(task, route, "cli");
  await db.$disconnect();
}

describe("local: adapter routes stored with npm run train:route", { timeout: 60_000 }, () => {
  it("stores a local: route, checked, resolved against the working directory, fine-tuned", async () => {
    const env = { LOCAL_MODEL: modelPath, LOCAL_RUNTIME_DIR: runtime, DATABASE_URL: dbUrl };
    const set = await runTrainingCli("route.ts", ["continue", `local:${relative(ROOT, adapterPath)}`], env);
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    expect(set.stdout).toBe(`continue -> local:${adapterPath} (fine-tuned: zero-shot prompt)\n`);
    const db = await openDatabase(dbUrl);
    expect(await new RouteStore(db).all()).toMatchObject([
      { task: "continue", model: `local:${adapterPath}`, baseUrl: "local://embedded", fineTuned: true, source: "cli" },
    ]);
    await db.$disconnect();
    const list = await runTrainingCli("route.ts", [], env);
    expect(list.stdout).toContain(`continue   local:${adapterPath}  [set by cli]`);
    expect(list.stdout).toMatch(/open\s+local:tiny\.gguf@local:\/\/embedded\s+\[configuration\]/);
  });

  it("refuses a file that is not a LoRA adapter, and a base URL beside one", async () => {
    const env = { LOCAL_MODEL: modelPath, LOCAL_RUNTIME_DIR: runtime, DATABASE_URL: dbUrl };
    const model = await runTrainingCli("route.ts", ["continue", `local:${modelPath}`], env);
    expect(model.code).toBe(2);
    expect(model.stderr).toContain(`${modelPath} is not a LoRA adapter: its general.type is "model"`);
    const missing = await runTrainingCli("route.ts", ["continue", "local:./no/such/lora.gguf"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${join(ROOT, "no/such/lora.gguf")} is not a file`);
    const url = await runTrainingCli(
      "route.ts",
      ["continue", "--model", `local:${adapterPath}`, "--base-url", "http://h:8000/v1"],
      env,
    );
    expect(url.code).toBe(2);
    expect(url.stderr).toContain("it takes no --base-url");
    const db = await openDatabase(dbUrl);
    expect(await new RouteStore(db).all()).toEqual([]);
    await db.$disconnect();
  });

  it("says LOCAL_MODEL is needed when it is not set", async () => {
    const env = { OPENAI_API_KEY: "sk-test", DATABASE_URL: dbUrl };
    const set = await runTrainingCli("route.ts", ["continue", `local:${adapterPath}`], env);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("note: a local: adapter runs on the embedded model: set LOCAL_MODEL");
  });

  it("applies in local mode: the stored adapter serves its task, the base model the others", async () => {
    await storeRoute("continue");
    const config = loadConfig({
      ...queueEnv(),
      LOCAL_MODEL: modelPath,
      LOCAL_RUNTIME_DIR: runtime,
      DATABASE_URL: dbUrl,
    });
    engine = await createEngine(config, () => {});
    expect(engine.model.route("continue")).toEqual(adapterRoute(adapterPath));
    expect(engine.model.route("open")).toEqual({
      model: "local:tiny.gguf",
      baseUrl: "local://embedded",
      fineTuned: false,
    });
  });

  it("runs beside an endpoint: the other tasks' chapters are written by the endpoint", async () => {
    await storeRoute("continue");
    endpoint = await FakeOpenAiServer.start({ responder: storyResponder() });
    const config = loadConfig({
      ...queueEnv(),
      OPENAI_BASE_URL: endpoint.baseUrl,
      OPENAI_MODEL: "big",
      OPENAI_MAX_RETRIES: "0",
      PREPLAN: "off",
      LOCAL_MODEL: modelPath,
      LOCAL_RUNTIME_DIR: runtime,
      DATABASE_URL: dbUrl,
    });
    engine = await createEngine(config, () => {});
    expect(engine.model.route("continue")).toEqual(adapterRoute(adapterPath));
    expect(engine.model.route("open")).toEqual({ model: "big", baseUrl: endpoint.baseUrl, fineTuned: false });
    const actor = { platform: "console", id: "u1", name: "Reader" };
    const conversation = { platform: "console", workspaceId: "local", id: "c1" };
    const started = await engine.stories.start({ actor, conversation, premise: "A quiet mystery", genre: "none" });
    await started.job.finished;
    const runs = await engine.db.agentRun.findMany({ where: { storyId: started.storyId } });
    expect(runs.find((r) => r.task === "open")).toMatchObject({ model: "big", status: "ok" });
    expect(endpoint.requests.length).toBeGreaterThan(0);
    expect(endpoint.requests.every((r) => r.body?.model === "big")).toBe(true);
  });

  it("refuses to start when a stored adapter route cannot be served: a configuration error, exit 2", async () => {
    await storeRoute("continue");
    const config = loadConfig({ ...queueEnv(), OPENAI_API_KEY: "sk-test", DATABASE_URL: dbUrl });
    const failed = createEngine(config, () => {});
    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    await expect(failed).rejects.toThrow(/the route of continue .* set LOCAL_MODEL/);
    // The terminal says so and exits as it does for a bad .env.
    const p = new ConsoleProcess(consoleEnv("http://unused.invalid/v1", dir, dbUrl));
    expect(await p.exited).toBe(2);
    expect(p.stderr).toContain("the route of continue");
    expect(p.stderr).toContain(`npm run train:route -- continue --clear`);
  });
});
