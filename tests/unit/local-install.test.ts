/**
 * The on-demand install of the embedded runtime (src/llm/local-install.ts): npm's arguments,
 * its output streamed, and each way it fails turned into a message that says what to do.
 * npm is a stand-in (tests/helpers/fake-npm.ts) first on PATH, except for the unreachable
 * registry, where the real npm is pointed at a closed loopback port.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { installRuntime, isRuntimeInstalled, RuntimeInstallError } from "../../src/llm/local-install.ts";
import { prebuiltPackage, RUNTIME_INSTALL_COMMAND } from "../../src/llm/local-runtime.ts";
import { type FakeNpmMode, writeFakeNpm } from "../helpers/fake-npm.ts";

let dir: string;
let runtime: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-install-"));
  runtime = join(dir, "runtime");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
  });
  return { stream, text: () => text };
}

/** Install with a fake npm of `mode` first on PATH; the error thrown, if any, and the output. */
async function installWith(mode: FakeNpmMode, options: { timeoutMs?: number; killGraceMs?: number } = {}) {
  const npm = writeFakeNpm(dir, mode);
  const out = collect();
  const error = await installRuntime(runtime, {
    output: out.stream,
    env: { ...process.env, PATH: `${npm.bin}:${process.env.PATH ?? ""}` },
    ...options,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { npm, error, output: out.text() };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("installRuntime", () => {
  it("runs exactly the lean npm command into the prefix, streams npm's output and checks the result", async () => {
    const { npm, error, output } = await installWith("ok");
    expect(error).toBeUndefined();
    expect(npm.runs()).toEqual([
      [
        "install",
        "--prefix",
        runtime,
        "--omit=optional",
        "--no-audit",
        "--no-fund",
        "node-llama-cpp@3.22.1",
        `${prebuiltPackage()}@3.22.1`,
      ],
    ]);
    expect(output).toContain(
      `Installing the local runtime: node-llama-cpp ${prebuiltPackage()} (about 80 MB) into ${runtime}`,
    );
    expect(output).toContain("added 117 packages");
    expect(output).toContain(`The local runtime is installed in ${runtime}`);
    expect(isRuntimeInstalled(runtime)).toBe(true);
  });

  it("does not run npm when the runtime is already there", async () => {
    await installWith("ok");
    const again = await installWith("ok");
    expect(again.error).toBeUndefined();
    expect(again.npm.runs()).toHaveLength(1);
  });

  it("says the registry could not be reached when npm fails on the network, with the command to run by hand", async () => {
    const { error } = await installWith("offline");
    expect(error).toBeInstanceOf(RuntimeInstallError);
    expect((error as RuntimeInstallError).kind).toBe("offline");
    const message = (error as Error).message;
    expect(message).toContain("the npm registry could not be reached (ENOTFOUND)");
    expect(message).toContain(RUNTIME_INSTALL_COMMAND(runtime));
    expect(message).toContain("OPENAI_BASE_URL");
  });

  it("says so when the real npm cannot reach its registry (a closed loopback port)", async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const out = collect();
    const error = await installRuntime(runtime, {
      output: out.stream,
      env: {
        ...process.env,
        npm_config_registry: `http://127.0.0.1:${closed}/`,
        // npm retries for about two minutes by default; once is enough to see the failure.
        npm_config_fetch_retries: "0",
        npm_config_cache: join(dir, "npm-cache"),
        npm_config_update_notifier: "false",
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RuntimeInstallError);
    expect((error as RuntimeInstallError).kind).toBe("offline");
    expect((error as Error).message).toContain("the npm registry could not be reached (ECONNREFUSED)");
    expect(out.text()).toContain(`127.0.0.1:${closed}`);
    expect(isRuntimeInstalled(runtime)).toBe(false);
  });

  it("gives npm's last lines when it fails for another reason", async () => {
    const { error } = await installWith("fail");
    expect((error as RuntimeInstallError).kind).toBe("npm_failed");
    expect((error as Error).message).toContain("exit code 243");
    expect((error as Error).message).toContain("permission denied");
    expect((error as Error).message).toContain(RUNTIME_INSTALL_COMMAND(runtime));
  });

  it("says npm is missing when there is none on PATH", async () => {
    const empty = join(dir, "empty-bin");
    mkdirSync(empty);
    const error = await installRuntime(runtime, { output: collect().stream, env: { PATH: empty } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as RuntimeInstallError).kind).toBe("npm_missing");
    expect((error as Error).message).toContain("npm was not found");
    expect((error as Error).message).toContain(RUNTIME_INSTALL_COMMAND(runtime));
  });

  it("refuses an npm that exits 0 but leaves no runtime", async () => {
    const { error } = await installWith("noop");
    expect((error as RuntimeInstallError).kind).toBe("incomplete");
    expect((error as Error).message).toContain(`are not both in ${runtime}`);
  });

  it("stops npm at the timeout and says so", async () => {
    const started = Date.now();
    const { npm, error, output } = await installWith("hang", { timeoutMs: 500 });
    expect((error as RuntimeInstallError).kind).toBe("timeout");
    expect((error as Error).message).toContain("did not finish within 0.5 s and was stopped");
    expect(output).toContain("fetching...");
    expect(Date.now() - started).toBeLessThan(5000);
    const pid = npm.lastPid();
    expect(pid).toBeDefined();
    expect(alive(pid as number)).toBe(false);
  });

  it("kills an npm that ignores SIGTERM after the grace", async () => {
    const { npm, error } = await installWith("hang-ignoring-term", { timeoutMs: 300, killGraceMs: 300 });
    expect((error as RuntimeInstallError).kind).toBe("timeout");
    expect(alive(npm.lastPid() as number)).toBe(false);
  });

  it("waits for another process's install into the same prefix instead of running npm over it", async () => {
    const npm = writeFakeNpm(dir, "ok");
    mkdirSync(runtime, { recursive: true });
    const lock = join(runtime, ".inkloom-install.lock");
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }));
    const out = collect();
    const installing = installRuntime(runtime, {
      output: out.stream,
      env: { ...process.env, PATH: `${npm.bin}:${process.env.PATH ?? ""}` },
      lockPollMs: 50,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(out.text()).toContain("Another Inkloom process");
    // The other process finishes: the runtime is there and its lock gone.
    spawnSync(npm.path, ["install", "--prefix", runtime]);
    rmSync(lock);
    await installing;
    expect(npm.runs()).toHaveLength(1);
    expect(isRuntimeInstalled(runtime)).toBe(true);
  });

  it("takes over the lock of a process that is gone", async () => {
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]).stdout.toString();
    mkdirSync(runtime, { recursive: true });
    writeFileSync(
      join(runtime, ".inkloom-install.lock"),
      JSON.stringify({ pid: Number(gone), host: hostname(), startedAt: new Date().toISOString() }),
    );
    const { npm, error } = await installWith("ok");
    expect(error).toBeUndefined();
    expect(npm.runs()).toHaveLength(1);
    expect(existsSync(join(runtime, ".inkloom-install.lock"))).toBe(false);
  });
});
