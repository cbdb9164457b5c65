/**
 * Closing the engine frees the embedded model (its contexts, the model, the runtime's
 * threads): a test run or a program that opens and closes engines does not keep every
 * model it loaded. After the close, a request fails with a ModelError instead of using a
 * freed model. Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine } from "../../src/app/wiring.ts";
import { type ModelClient, ModelError } from "../../src/llm/types.ts";
import { writeTinyLlamaGguf } from "../helpers/gguf-writer.ts";

const RUNTIME_DIR = process.env.LOCAL_RUNTIME_DIR;
let dir: string;

beforeAll(() => {
  if (!RUNTIME_DIR) throw new Error("set LOCAL_RUNTIME_DIR to the npm prefix node-llama-cpp is installed in");
  dir = mkdtempSync(join(tmpdir(), "inkloom-engine-close-"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it("frees the embedded model when the engine closes; a later request fails clearly", async () => {
  const modelPath = join(dir, "tiny.gguf");
  writeTinyLlamaGguf(modelPath);
  let client: ModelClient | undefined;
  const engine = await createEngine(
    loadConfig({
      LOCAL_MODEL: modelPath,
      LOCAL_RUNTIME_DIR: RUNTIME_DIR ?? "",
      LOCAL_MODEL_SEED: "7",
      DATABASE_URL: `file:${join(dir, "inkloom.db")}`,
    }),
    () => {},
    {
      decorateModel: (model) => {
        client = model;
        return model;
      },
    },
  );
  const ask = { task: "continue" as const, messages: [{ role: "user" as const, content: "Go on." }], maxTokens: 4 };
  await client?.complete(ask);
  await engine.close();
  const after = await client?.complete(ask).catch((error: unknown) => error);
  expect(after).toBeInstanceOf(ModelError);
  expect((after as ModelError).message).toContain("closed with the engine");
});
