/**
 * LOCAL_MODEL in the configuration (docs/local-model.md): with no endpoint, a .gguf path
 * and the on-demand runtime's prefix make every task run on the embedded model; what is
 * wrong is named (a missing runtime is installed at start, not refused here). Needs no
 * runtime: a stand-in prefix is made.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/app/config.ts";
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
      modelPath: model,
      runtimeDir: runtime,
      sequences: 3,
      threads: 1,
      contextSize: 4096,
    });
    expect(config.models.continue).toEqual({ model: "local:tiny.gguf", baseUrl: "local://embedded", fineTuned: false });
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

  it("lets a configured endpoint win", () => {
    const config = loadConfig({ LOCAL_MODEL: model, LOCAL_RUNTIME_DIR: runtime, OPENAI_API_KEY: "sk-test" });
    expect(config.local).toBeUndefined();
    expect(config.models.continue.baseUrl).toBe("https://api.openai.com/v1");
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

  it("says that `default` and hf: references are not supported yet", () => {
    expect(problems({ LOCAL_MODEL: "default" })[0]).toContain("not supported yet");
    expect(problems({ LOCAL_MODEL: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/q4.gguf" })[0]).toContain("not supported yet");
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
