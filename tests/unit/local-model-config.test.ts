/**
 * LOCAL_MODEL in the configuration (docs/local-model.md): with no endpoint, a .gguf path,
 * `default` or an `hf:` reference (downloaded at start into LOCAL_MODEL_DIR)
 * and the on-demand runtime's prefix make every task run on the embedded model; what is
 * wrong is named (a missing runtime is installed at start, not refused here). Needs no
 * runtime: a stand-in prefix is made.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/app/config.ts";
import { DEFAULT_LOCAL_MODEL, DEFAULT_LOCAL_MODEL_DIR } from "../../src/llm/local-models.ts";
import { prebuiltPackage, RUNTIME_INSTALL_COMMAND } from "../../src/llm/local-runtime.ts";

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("LOCAL_MODEL", () => {
  let dir: string;
  let model: string;
  let runtime: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "inkloom-local-config-"));
    model = join(dir, "tiny.gguf");
    writeFileSync(model, "GGUF");
    runtime = join(dir, "runtime");
    mkdirSync(join(runtime, "node_modules", "node-llama-cpp", "dist"), { recursive: true });
    writeFileSync(join(runtime, "node_modules", "node-llama-cpp", "dist", "index.js"), "");
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs every task on the embedded model when no endpoint is set", () => {
    const config = loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, LOCAL_MODEL_SEQUENCES: "3" });
    expect(config.local).toEqual({
      spec: { kind: "file", path: model },
      modelPath: model,
      modelDir: DEFAULT_LOCAL_MODEL_DIR,
      hub: { endpoint: "https://huggingface.co" },
      runtimeDir: runtime,
      sequences: 3,
      threads: 1,
      contextSize: 4096,
    });
    expect(config.models.continue).toEqual({ model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false });
  });

  it("draws no pictures unless an images endpoint is set: IMAGE_MODEL alone is refused, with IMAGE_BASE_URL it is used", () => {
    expect(loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime }).images).toBeUndefined();
    expect(problems({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, IMAGE_MODEL: "flux" })[0]).toContain(
      "IMAGE_MODEL with the embedded model (LOCAL_MODEL, no endpoint) needs IMAGE_BASE_URL",
    );
    const config = loadConfig({
      LOCAL_MODEL: model,
      LOCAL_RUNTIME_DIR: runtime,
      IMAGE_MODEL: "flux",
      IMAGE_BASE_URL: "http://127.0.0.1:7860/v1",
    });
    expect(config.images).toMatchObject({ model: "flux", baseUrl: "http://127.0.0.1:7860/v1" });
  });

  it("sends a task with its own endpoint there, but only with the model that endpoint serves named", () => {
    expect(
      problems({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, MODEL_CHECK_BASE_URL: "http://127.0.0.1:8000/v1" })[0],
    ).toContain("MODEL_CHECK_BASE_URL sends check to http://127.0.0.1:8000/v1, which cannot serve the embedded model");
    const config = loadConfig({
      LOCAL_MODEL: model,
      LOCAL_RUNTIME_DIR: runtime,
      MODEL_CHECK: "qwen2.5:7b-instruct",
      MODEL_CHECK_BASE_URL: "http://127.0.0.1:8000/v1",
    });
    expect(config.models.check).toEqual({
      model: "qwen2.5:7b-instruct",
      baseUrl: "http://127.0.0.1:8000/v1",
      fineTuned: false,
    });
    expect(config.models.continue.baseUrl).toBe("local://embedded");
  });

  it("takes the tokens per story from LOCAL_MODEL_CONTEXT, and refuses a tiny one", () => {
    expect(
      loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, LOCAL_MODEL_CONTEXT: "16384" }).local?.contextSize,
    ).toBe(16_384);
    expect(
      problems({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, LOCAL_MODEL_CONTEXT: "100" }).join("\n"),
    ).toContain("LOCAL_MODEL_CONTEXT");
  });

  it("takes a sampling seed from LOCAL_MODEL_SEED, none by default", () => {
    expect(loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, LOCAL_MODEL_SEED: "7" }).local?.seed).toBe(7);
    expect(loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime }).local).not.toHaveProperty("seed");
  });

  it("lets a configured endpoint win: every task goes to it, LOCAL_MODEL waits for a local: adapter route", () => {
    const config = loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, OPENAI_API_KEY: "sk-test" });
    for (const route of Object.values(config.models)) expect(route.baseUrl).toBe("https://api.openai.com/v1");
    // Kept as the base of `local:` adapter routes (tests/unit/lora-routes.test.ts), loaded only for them.
    expect(config.local?.modelPath).toBe(model);
  });

  it("does not refuse a runtime missing from its prefix: the start-up step installs it (src/app/local-setup.ts)", () => {
    const missing = join(dir, "nowhere");
    expect(loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: missing }).local?.runtimeDir).toBe(missing);
  });

  it("prints the lean install command to run by hand, with a folder quoted for the shell", () => {
    expect(RUNTIME_INSTALL_COMMAND("/opt/inkloom runtime")).toBe(
      `npm install --prefix '/opt/inkloom runtime' --omit=optional --no-audit --no-fund node-llama-cpp@3.22.1 ${prebuiltPackage()}@3.22.1`,
    );
  });

  it("wants the path of a .gguf file", () => {
    expect(problems({ LOCAL_MODEL: join(dir, "absent.gguf"), LOCAL_RUNTIME_DIR: runtime })[0]).toContain(
      "LOCAL_MODEL must be the path of a .gguf file",
    );
  });

  it("takes LOCAL_MODEL=default as the catalogue's model, to be downloaded into LOCAL_MODEL_DIR", () => {
    const models = join(dir, "models");
    const local = loadConfig({ LOCAL_MODEL: "default", LOCAL_MODEL_DIR: models, LOCAL_RUNTIME_DIR: runtime }).local;
    expect(local?.spec).toEqual({
      kind: "hub",
      repo: DEFAULT_LOCAL_MODEL.repo,
      file: DEFAULT_LOCAL_MODEL.file,
      isDefault: true,
    });
    // Not there yet: it is downloaded at start, so the file is not required here.
    expect(local?.modelPath).toBe(join(models, "Qwen", "Qwen2.5-1.5B-Instruct-GGUF", DEFAULT_LOCAL_MODEL.file));
    expect(local?.modelDir).toBe(models);
    expect(loadConfig({ LOCAL_MODEL: "default", LOCAL_RUNTIME_DIR: runtime }).models.continue.model).toBe(
      `local:${DEFAULT_LOCAL_MODEL.file}`,
    );
  });

  it("keeps downloads under ~/.cache/inkloom/models when LOCAL_MODEL_DIR is not set, and resolves a relative one", () => {
    expect(loadConfig({ LOCAL_MODEL: "default", LOCAL_RUNTIME_DIR: runtime }).local?.modelDir).toBe(
      DEFAULT_LOCAL_MODEL_DIR,
    );
    expect(DEFAULT_LOCAL_MODEL_DIR).toMatch(/\.cache\/inkloom\/models$/);
    expect(
      loadConfig({ LOCAL_MODEL: "default", LOCAL_MODEL_DIR: "rel/models", LOCAL_RUNTIME_DIR: runtime }).local?.modelDir,
    ).toBe(join(process.cwd(), "rel", "models"));
  });

  it("takes an hf: reference, with HF_ENDPOINT and HF_TOKEN for its download", () => {
    const local = loadConfig({
      LOCAL_MODEL: "hf:someone/Some-Model-GGUF/sub/model-q4_k_m.gguf",
      LOCAL_MODEL_DIR: join(dir, "models"),
      LOCAL_RUNTIME_DIR: runtime,
      HF_ENDPOINT: "http://127.0.0.1:9999",
      HF_TOKEN: "hf_abc",
    }).local;
    expect(local?.spec).toEqual({
      kind: "hub",
      repo: "someone/Some-Model-GGUF",
      file: "sub/model-q4_k_m.gguf",
      isDefault: false,
    });
    expect(local?.modelPath).toBe(join(dir, "models", "someone", "Some-Model-GGUF", "sub", "model-q4_k_m.gguf"));
    expect(local?.hub).toEqual({ endpoint: "http://127.0.0.1:9999", token: "hf_abc" });
    expect(loadConfig({ LOCAL_MODEL: "hf:a/b/c.gguf", LOCAL_RUNTIME_DIR: runtime }).local?.hub).toEqual({
      endpoint: "https://huggingface.co",
    });
  });

  it("refuses an hf: reference that names no .gguf, and a path that escapes its folder", () => {
    expect(problems({ LOCAL_MODEL: "hf:someone/model", LOCAL_RUNTIME_DIR: runtime })[0]).toContain(
      "write hf:<owner>/<repo>/<file>.gguf",
    );
    expect(problems({ LOCAL_MODEL: "hf:someone/model/README.md", LOCAL_RUNTIME_DIR: runtime })[0]).toContain(
      "is not a Hub reference",
    );
    expect(problems({ LOCAL_MODEL: "hf:someone/model/../../x.gguf", LOCAL_RUNTIME_DIR: runtime })[0]).toContain(
      "is not a Hub reference",
    );
  });

  it("refuses a bad HF_ENDPOINT or HF_TOKEN, and a LOCAL_MODEL past its length", () => {
    expect(problems({ LOCAL_MODEL: "default", LOCAL_RUNTIME_DIR: runtime, HF_ENDPOINT: "huggingface.co" })).toEqual([
      expect.stringContaining("HF_ENDPOINT must be an http(s) URL"),
    ]);
    expect(problems({ LOCAL_MODEL: "default", LOCAL_RUNTIME_DIR: runtime, HF_TOKEN: "hf_a b" })).toEqual([
      expect.stringContaining("HF_TOKEN must be a Hugging Face access token"),
    ]);
    expect(problems({ LOCAL_MODEL: `/${"a".repeat(1100)}.gguf`, LOCAL_RUNTIME_DIR: runtime })[0]).toContain(
      "LOCAL_MODEL must be at most 1024 characters",
    );
  });

  it("mentions the embedded model in the help for a newcomer with nothing set, and how to opt in", () => {
    const [help] = problems({});
    expect(help).toContain("LOCAL_MODEL=default npm start");
    expect(help).toContain("downloads Qwen2.5 1.5B Instruct (Q4_K_M), about 1.1 GB");
    expect(help).toContain("LOCAL_MODEL=/path/to/model.gguf npm start");
  });

  it("installs only this machine's prebuilt package", () => {
    expect(prebuiltPackage("linux", "x64")).toBe("@node-llama-cpp/linux-x64");
    expect(prebuiltPackage("darwin", "arm64")).toBe("@node-llama-cpp/mac-arm64-metal");
    expect(prebuiltPackage("win32", "x64")).toBe("@node-llama-cpp/win-x64");
  });
});
