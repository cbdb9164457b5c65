/**
 * Process roles with REDIS_URL, as separate processes: `npm start` is only the Telegram
 * front (it turns updates into jobs and writes nothing), and two `npm run worker`
 * processes with no gateway write the chapters and stream them through the Bot API.
 * Real Redis (BullMQ), the fake Bot API and the fake model.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { freePort, useTestRedis } from "../helpers/redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const redis = useTestRedis();

interface Role {
  name: string;
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

let dir: string;
let model: FakeOpenAiServer;
let tg: FakeTelegramServer;
let roles: Role[] = [];
let database: TestDatabase;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-roles-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ privacyMode: true });
  // SQLite, or a fresh PostgreSQL database in the PostgreSQL pass (npm run test:postgres).
  database = await createTestDatabase(dir, "roles");
});

afterEach(async () => {
  for (const role of roles) if (role.child.exitCode === null) role.child.kill("SIGKILL");
  await Promise.all(roles.map((r) => r.exited));
  roles = [];
  await database.drop();
  await tg.close();
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

async function launch(name: string, script: string): Promise<Role> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_MODEL: "fake",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: database.url,
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_API_ROOT: tg.apiRoot,
      INKLOOM_LOCALE: "en",
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      HEALTH_PORT: String(port),
      SHUTDOWN_GRACE_SECONDS: "5",
      PREPLAN: "off",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const role = { name, child, port, output: () => output, exited };
  roles.push(role);
  await until(
    async () => (await ready(role)) === 200,
    `${name} ready`,
    () => output,
  );
  return role;
}

async function ready(role: Role): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${role.port}/readyz`)).status;
  } catch {
    return 0;
  }
}

async function until(check: () => Promise<boolean>, what: string, output: () => string, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a front and two workers in separate processes (REDIS_URL)", { timeout: 120_000 }, () => {
  it("the front turns a /start into a job that a worker writes into the chat, once", async () => {
    const front = await launch("front", "src/app/main.ts");
    expect(front.output()).toContain("front running");
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start a lighthouse keeper finds a message in a bottle");
    // The front runs no job: the chapter waits in Redis until a worker takes it.
    await new Promise((r) => setTimeout(r, 2500));
    expect(model.chatRequests()).toHaveLength(0);
    expect(tg.messages(chat.id).filter((m) => (m.text ?? "").startsWith("Chapter 1"))).toHaveLength(0);
    const workers = [await launch("worker 1", "src/app/worker.ts"), await launch("worker 2", "src/app/worker.ts")];
    const offer = await tg
      .waitFor(() => tg.messages(chat.id).find((m) => JSON.stringify(m.reply_markup ?? {}).includes('"p|')), 60_000)
      .catch((error: unknown) => {
        throw new Error(
          `${String(error)}\n${JSON.stringify(tg.messages(chat.id).map((m) => m.text))}\n${roles.map((r) => `--- ${r.name}\n${r.output()}`).join("\n")}`,
        );
      });
    expect(offer).toBeDefined();
    const chapters = tg.messages(chat.id).filter((m) => (m.text ?? "").startsWith("Chapter 1"));
    expect(chapters).toHaveLength(1);
    expect(model.chatRequests().length).toBeGreaterThan(0);

    // The health of each role, then SIGTERM: the front first, then the workers, all exit 0.
    for (const role of [front, ...workers]) {
      const body = (await (await fetch(`http://127.0.0.1:${role.port}/readyz`)).json()) as {
        role: string;
        checks: Record<string, string>;
      };
      expect(body.checks).toMatchObject({ database: "ok", redis: "ok" });
      expect(body.role).toBe(role === front ? "front" : "worker");
      if (role === front) expect(body.checks.telegram).toBe("ok");
    }
    for (const role of [front, ...workers]) {
      role.child.kill("SIGTERM");
      expect(await role.exited, role.output()).toBe(0);
    }
  });

  it("a worker refuses to start without REDIS_URL, saying why", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/app/worker.ts"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", OPENAI_API_KEY: "k", DATABASE_URL: `file:${join(dir, "w.db")}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    const code = await new Promise<number | null>((done) => child.once("exit", done));
    expect(code).toBe(2);
    expect(err).toContain("npm run worker needs REDIS_URL");
  });
});
