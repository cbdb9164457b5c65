/**
 * `npm run bench:scale`: does adding `npm run worker` processes add capacity?
 *
 * For each worker count (default 1, 2 and 4), with a fresh PostgreSQL database and a fresh
 * Redis prefix: the fake model in this process paced like a hosted model (300 ms before every
 * reply, prose streamed at ~100 words/s), the fake Bot API server in this process with
 * Telegram's flood limits enforced, ONE front process (`src/app/main.ts`, REDIS_URL set, so
 * it only turns updates into jobs) and N worker processes (`src/app/worker.ts`), each with
 * WORKER_CONCURRENCY chapters at once. Then S private chats play at the same time: `/start
 * <scenario>`, then the first choice of each choices message, C chapters each.
 *
 * Measured per worker count:
 * - chapters per minute: completed chapters / (last choices message - first action);
 * - time to first visible text: reader's action -> the first draft or message opening the
 *   chapter ("Chapter N" heading), from the fake's call log (same rule as bench:telegram);
 * - 429s answered by the fake Bot API server;
 * - Redis commands per chapter: `INFO commandstats` delta (sum of calls) over the played
 *   interval / chapters; PostgreSQL transactions per chapter: `pg_stat_database`
 *   `xact_commit + xact_rollback` delta of the bench's database / chapters.
 *
 * PostgreSQL and Redis: TEST_POSTGRES_URL and TEST_REDIS_URL when set (a server where the
 * bench may create databases, and a Redis it may use under its own prefixes; best a private
 * one, since commandstats count every client); otherwise it starts its own through
 * `.ci/services.sh` and stops them at the end.
 *
 * Prints ONE JSON document to stdout (progress on stderr); exits 0 whether or not the targets
 * are met. Options (flag or env): --stories N / BENCH_SCALE_STORIES (200), --chapters N /
 * BENCH_SCALE_CHAPTERS (2), --concurrency N / BENCH_SCALE_CONCURRENCY (4, WORKER_CONCURRENCY
 * of each worker), --workers 1,2,4 / BENCH_SCALE_WORKERS, --first-token MS /
 * BENCH_SCALE_FIRST_TOKEN_MS (300), --wps N / BENCH_SCALE_WPS (100), --timeout S /
 * BENCH_SCALE_TIMEOUT_S (300, per chapter).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import pg from "pg";
import { FakeOpenAiServer, withLatency } from "../tests/fakes/fake-openai-server.ts";
import { type CallRecord, FakeTelegramServer } from "../tests/fakes/fake-telegram-server.ts";
import { storyResponder } from "../tests/fakes/story-responder.ts";
import { createPostgresDatabase, type TestDatabase } from "../tests/helpers/database.ts";
import { freePort } from "../tests/helpers/own-redis.ts";
import { type Distribution, distribution, option, round } from "./stats.ts";
import { buttons, isNotice, OfferWatcher, opensChapter } from "./telegram.ts";

const ROOT = resolve(import.meta.dirname, "..");
const progress = (message: string) => process.stderr.write(`[bench:scale] ${message}\n`);

/** The story responder streams prose in 16-character chunks. */
const CHUNK_CHARS = 16;
/** Characters per word of the responder's English prose, spaces and punctuation included (as bench:latency). */
const CHARS_PER_WORD = 5.9;

const SCENARIOS = [
  "a lighthouse keeper finds a message in a bottle",
  "a heist on a night train across the mountains",
  "a clockwork city under the sea loses its tide",
  "a haunted observatory where the stars move wrong",
  "a courier in a rainy harbour town carries a sealed letter",
];

interface Services {
  postgresUrl: string;
  redisUrl: string;
  /** Started by the bench (stopped at the end), or given by the environment. */
  own: boolean;
  stop(): void;
}

function services(): Services {
  const postgresUrl = process.env.TEST_POSTGRES_URL;
  const redisUrl = process.env.TEST_REDIS_URL;
  if (postgresUrl && redisUrl) return { postgresUrl, redisUrl, own: false, stop: () => {} };
  progress("TEST_POSTGRES_URL / TEST_REDIS_URL not set: starting PostgreSQL and Redis with .ci/services.sh");
  const out = execFileSync("bash", [".ci/services.sh", "start"], { cwd: ROOT, encoding: "utf8" });
  const value = (name: string) => {
    const found = new RegExp(`${name}=(\\S+)`).exec(out)?.[1];
    if (found === undefined) throw new Error(`.ci/services.sh start printed no ${name}: ${out}`);
    return found;
  };
  const dir = value("INKLOOM_SERVICES_DIR");
  process.env.TEST_POSTGRES_URL = value("TEST_POSTGRES_URL");
  return {
    postgresUrl: value("TEST_POSTGRES_URL"),
    redisUrl: value("TEST_REDIS_URL"),
    own: true,
    stop: () => execFileSync("bash", [".ci/services.sh", "stop", dir], { cwd: ROOT, stdio: "inherit" }),
  };
}

interface Role {
  name: string;
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

async function launch(name: string, script: string, env: Record<string, string>): Promise<Role> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env, HEALTH_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const logDir = process.env.BENCH_SCALE_LOG_DIR;
  if (logDir) {
    const file = createWriteStream(join(logDir, `${env.REDIS_PREFIX ?? "run"}-${name.replace(/\W/g, "")}.log`));
    child.stdout?.pipe(file);
    child.stderr?.pipe(file);
  }
  return { name, child, port, output: () => output, exited };
}

async function waitReady(role: Role, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (role.child.exitCode !== null) throw new Error(`${role.name} exited ${role.child.exitCode}\n${role.output()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${role.port}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`${role.name} not ready within ${ms} ms\n${role.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopRoles(roles: Role[]): Promise<void> {
  for (const role of roles) if (role.child.exitCode === null) role.child.kill("SIGTERM");
  const timer = setTimeout(() => {
    for (const role of roles) if (role.child.exitCode === null) role.child.kill("SIGKILL");
  }, 10_000);
  await Promise.all(roles.map((r) => r.exited));
  clearTimeout(timer);
}

/** Sum of `calls=` over every command in `INFO commandstats`, and the calls by command. */
async function redisCommands(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info("commandstats");
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] ?? "", Number(m[2]));
  return calls;
}

async function pgTransactions(serverUrl: string, database: string): Promise<number> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query("SELECT pg_stat_clear_snapshot()");
    const { rows } = await client.query<{ n: string }>(
      "SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = $1",
      [database],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

interface ChapterRecord {
  chat: number;
  chapter: number;
  actionAt: number;
  actionIndex: number;
  offerIndex?: number;
}

export interface ScaleRun {
  workers: number;
  workerConcurrency: number;
  stories: number;
  chaptersPerStory: number;
  requestedChapters: number;
  completedChapters: number;
  failures: { chat: number; chapter: number; reason: string }[];
  /** First action -> last choices message (s). */
  playedSec: number;
  chaptersPerMinute: number;
  /** Reader's action -> first draft or message opening the chapter (queue wait included). */
  firstVisibleTextMs: Distribution & { chapter1: Distribution; laterChapters: Distribution };
  /** Reader's action -> the choices message. */
  chapterDoneMs: Distribution;
  /** How the first visible text was found: the draft/message opening the chapter, the fallback, or none. */
  firstTextRule: { opensChapter: number; fallback: number; missing: number };
  platform429: number;
  /** Accepted Bot API message calls (sends + edits) per chapter, and the busiest second (limit 30). */
  messageCalls: { perChapter: number; peakPerSecond: number; byMethodPerChapter: Record<string, number> };
  redis: { commandsPerChapter: number; scriptCallsPerChapter: number; topCommandsPerChapter: Record<string, number> };
  postgres: { transactionsPerChapter: number };
  model: { requestsPerChapter: number };
  /** CPU seconds used by the front, the workers, and this process (fakes + driver) while playing. */
  cpuSec: { front: number; workers: number; benchProcess: number; perChapterMs: number };
  /** Lines the front and workers logged with "failed" / "fatal" / "error", counted by their first 160 characters. */
  roleErrors: Record<string, number>;
  /** The machine's 1-minute load average when playing starts and ends (other work on it shows here). */
  loadAverage: { atStart: number; atEnd: number };
  durationSec: number;
}

interface RunInput {
  workers: number;
  concurrency: number;
  stories: number;
  chapters: number;
  firstTokenMs: number;
  chunkDelayMs: number;
  timeoutMs: number;
  services: Services;
}

/** CPU seconds (user + system) of a process, from /proc (Linux). */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    return ticks / 100;
  } catch {
    return 0;
  }
}

async function runOnce(input: RunInput): Promise<ScaleRun> {
  const started = performance.now();
  const { workers, concurrency, stories, chapters, timeoutMs } = input;
  const model = await FakeOpenAiServer.start({
    responder: withLatency(storyResponder(), { delayMs: input.firstTokenMs, chunkDelayMs: input.chunkDelayMs }),
  });
  const tg = await FakeTelegramServer.start({ enforceLimits: true, privacyMode: true });
  const prefix = `bench-scale-${workers}w-${Date.now().toString(36)}`;
  const redis = new Redis(input.services.redisUrl, { maxRetriesPerRequest: 3 });
  let database: TestDatabase | undefined;
  const roles: Role[] = [];
  const watcher = new OfferWatcher(tg);
  try {
    database = await createPostgresDatabase(`scale_${workers}w`);
    const dbName = new URL(database.url).pathname.slice(1);
    const env = {
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_API_KEY: "bench",
      OPENAI_MODEL: "bench-model",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: database.url,
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_API_ROOT: tg.apiRoot,
      INKLOOM_LOCALE: "en",
      REDIS_URL: input.services.redisUrl,
      REDIS_PREFIX: prefix,
      WORKER_CONCURRENCY: String(concurrency),
      SHUTDOWN_GRACE_SECONDS: "2",
      PREPLAN: "off",
    };
    // The front first: it migrates the fresh database; then the workers at once.
    const front = await launch("front", "src/app/main.ts", env);
    roles.push(front);
    await waitReady(front);
    const workerRoles = await Promise.all(
      Array.from({ length: workers }, (_, i) => launch(`worker ${i + 1}`, "src/app/worker.ts", env)),
    );
    roles.push(...workerRoles);
    await Promise.all(workerRoles.map((w) => waitReady(w)));
    progress(`${workers} worker(s) x ${concurrency} ready; ${stories} stories x ${chapters} chapters`);

    const redisBefore = await redisCommands(redis);
    const pgBefore = await pgTransactions(input.services.postgresUrl, dbName);
    const modelBefore = model.chatRequests().length;
    const cpuBefore = {
      front: cpuOf(front.child.pid),
      workers: workerRoles.reduce((s, w) => s + cpuOf(w.child.pid), 0),
      bench: process.cpuUsage(),
    };

    const records: ChapterRecord[] = [];
    const failures: ScaleRun["failures"] = [];
    const total = stories * chapters;
    let completed = 0;
    const playStart = Date.now();
    const loadAtStart = loadavg()[0] ?? 0;
    const play = async (i: number) => {
      const user = tg.user({ first_name: `Reader${i + 1}` });
      const chat = tg.chat("private", { user });
      let offerIndex = 0;
      for (let n = 1; n <= chapters; n++) {
        const r: ChapterRecord = { chat: chat.id, chapter: n, actionAt: Date.now(), actionIndex: tg.calls.length };
        records.push(r);
        try {
          let clicked: Promise<unknown> = Promise.resolve();
          if (n === 1) {
            tg.sendText(chat, user, `/start ${SCENARIOS[i % SCENARIOS.length]}`);
          } else {
            const text = tg.calls[offerIndex]?.params.text;
            const offer = tg.messages(chat.id).findLast((m) => m.text === text && buttons(m).length > 0);
            const pick = buttons(offer).find((b) => b.callback_data?.startsWith("p|"))?.callback_data;
            if (offer === undefined || pick === undefined) throw new Error("no choice button to press");
            clicked = tg.clickButton(chat, user, offer.message_id, pick, { timeoutMs }).then((answer) => {
              if (answer.show_alert === true) throw new Error(`pick refused: ${answer.text ?? "alert"}`);
            });
          }
          const [index] = await Promise.all([watcher.next(chat.id, "p", r.actionIndex, timeoutMs), clicked]);
          r.offerIndex = index;
          offerIndex = index;
          completed++;
          if (completed % 50 === 0 || completed === total) {
            progress(`${workers}w: ${completed}/${total} chapters, ${round((Date.now() - playStart) / 1000, 1)} s`);
          }
        } catch (error) {
          failures.push({ chat: chat.id, chapter: n, reason: error instanceof Error ? error.message : String(error) });
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: stories }, (_, i) => play(i)));
    const calls = tg.calls;
    const done = records.filter((r) => r.offerIndex !== undefined);
    const lastOfferAt = Math.max(playStart, ...done.map((r) => calls[r.offerIndex ?? 0]?.at ?? playStart));
    const cpuAfter = {
      front: cpuOf(front.child.pid),
      workers: workerRoles.reduce((s, w) => s + cpuOf(w.child.pid), 0),
      bench: process.cpuUsage(cpuBefore.bench),
    };
    const redisAfter = await redisCommands(redis);
    // Backends report their counters at most once a second: let them flush before reading.
    await new Promise((r) => setTimeout(r, 1500));
    const pgAfter = await pgTransactions(input.services.postgresUrl, dbName);
    const modelRequests = model.chatRequests().length - modelBefore;

    const n = Math.max(1, done.length);
    const byCommand = new Map<string, number>();
    for (const [command, after] of redisAfter) {
      const delta = after - (redisBefore.get(command) ?? 0);
      if (delta > 0) byCommand.set(command, delta);
    }
    // The two INFO calls of this bench are not the app's.
    byCommand.set("info", Math.max(0, (byCommand.get("info") ?? 0) - 1));
    const redisTotal = [...byCommand.values()].reduce((s, v) => s + v, 0);
    const scripts = ["eval", "evalsha", "fcall", "eval_ro", "evalsha_ro"].reduce(
      (s, c) => s + (byCommand.get(c) ?? 0),
      0,
    );
    const top = Object.fromEntries(
      [...byCommand.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([c, v]) => [c, round(v / n, 1)]),
    );

    const analysis = analyse(calls, done);
    const playedSec = (lastOfferAt - playStart) / 1000;
    const accepted = calls.filter(
      (c) => c.status === 200 && /^(sendMessage|sendDocument|sendPhoto|editMessage\w+)$/.test(c.method),
    );
    const cpuBenchSec = (cpuAfter.bench.user + cpuAfter.bench.system) / 1e6;
    const cpuFront = cpuAfter.front - cpuBefore.front;
    const cpuWorkers = cpuAfter.workers - cpuBefore.workers;
    return {
      workers,
      workerConcurrency: concurrency,
      stories,
      chaptersPerStory: chapters,
      requestedChapters: total,
      completedChapters: done.length,
      failures,
      playedSec: round(playedSec, 1),
      chaptersPerMinute: round(playedSec > 0 ? (done.length / playedSec) * 60 : 0, 1),
      firstVisibleTextMs: analysis.firstText,
      chapterDoneMs: analysis.doneMs,
      firstTextRule: analysis.rule,
      platform429: Math.max(tg.rateLimited, calls.filter((c) => c.status === 429).length),
      messageCalls: {
        perChapter: round(accepted.length / n, 2),
        peakPerSecond: peakSecond(accepted),
        byMethodPerChapter: Object.fromEntries(
          [...new Set(accepted.map((c) => c.method))].map((m) => [
            m,
            round(accepted.filter((c) => c.method === m).length / n, 2),
          ]),
        ),
      },
      redis: {
        commandsPerChapter: round(redisTotal / n, 1),
        scriptCallsPerChapter: round(scripts / n, 1),
        topCommandsPerChapter: top,
      },
      postgres: { transactionsPerChapter: round((pgAfter - pgBefore) / n, 1) },
      model: { requestsPerChapter: round(modelRequests / n, 2) },
      cpuSec: {
        front: round(cpuFront, 1),
        workers: round(cpuWorkers, 1),
        benchProcess: round(cpuBenchSec, 1),
        perChapterMs: round(((cpuFront + cpuWorkers + cpuBenchSec) * 1000) / n, 1),
      },
      roleErrors: roleErrors(roles),
      loadAverage: { atStart: round(loadAtStart), atEnd: round(loadavg()[0] ?? 0) },
      durationSec: round((performance.now() - started) / 1000, 1),
    };
  } catch (error) {
    for (const role of roles) progress(`--- ${role.name} output (tail)\n${role.output().slice(-3000)}`);
    throw error;
  } finally {
    watcher.close();
    await stopRoles(roles);
    await database?.drop().catch((error: unknown) => progress(`drop database failed: ${String(error)}`));
    // This run's keys go with it (the next run has its own prefix anyway).
    await dropPrefix(redis, prefix).catch(() => {});
    redis.disconnect();
    await tg.close();
    await model.close();
  }
}

function roleErrors(roles: Role[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const role of roles) {
    for (const line of role.output().split("\n")) {
      if (!/failed|fatal|error/i.test(line) || /^\s+at /.test(line)) continue;
      const key = `${role.name === "front" ? "front" : "worker"}: ${line.slice(0, 160)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10));
}

async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
}

function peakSecond(calls: CallRecord[]): number {
  const times = calls.map((c) => c.at).sort((a, b) => a - b);
  let peak = 0;
  let from = 0;
  for (let i = 0; i < times.length; i++) {
    while ((times[from] ?? 0) <= (times[i] ?? 0) - 1000) from++;
    peak = Math.max(peak, i - from + 1);
  }
  return peak;
}

function analyse(calls: CallRecord[], done: ChapterRecord[]) {
  const byChat = new Map<number, number[]>();
  calls.forEach((call, index) => {
    if (call.chatId === undefined) return;
    const list = byChat.get(call.chatId) ?? [];
    list.push(index);
    byChat.set(call.chatId, list);
  });
  const first: number[] = [];
  const firstCh1: number[] = [];
  const firstLater: number[] = [];
  const doneMs: number[] = [];
  const rule = { opensChapter: 0, fallback: 0, missing: 0 };
  for (const r of done) {
    const offerIndex = r.offerIndex ?? 0;
    const offer = calls[offerIndex];
    if (offer === undefined) continue;
    doneMs.push(offer.at - r.actionAt);
    const shown = (byChat.get(r.chat) ?? [])
      .filter((i) => i >= r.actionIndex && i < offerIndex)
      .map((i) => calls[i])
      .filter(
        (c): c is CallRecord =>
          c !== undefined && c.status === 200 && (c.method === "sendMessage" || c.method === "sendMessageDraft"),
      );
    let visible = shown.find((c) => opensChapter(c.params.text, r.chapter));
    if (visible !== undefined) rule.opensChapter++;
    else {
      visible = shown.find(
        (c) => c.method === "sendMessageDraft" || (c.params.reply_markup === undefined && !isNotice(c.params.text)),
      );
      if (visible === undefined) rule.missing++;
      else rule.fallback++;
    }
    if (visible === undefined) continue;
    const ms = visible.at - r.actionAt;
    first.push(ms);
    (r.chapter === 1 ? firstCh1 : firstLater).push(ms);
  }
  return {
    firstText: { ...distribution(first), chapter1: distribution(firstCh1), laterChapters: distribution(firstLater) },
    doneMs: distribution(doneMs),
    rule,
  };
}

async function main(): Promise<void> {
  const stories = Math.floor(option("--stories", "BENCH_SCALE_STORIES", 200));
  const chapters = Math.max(1, Math.floor(option("--chapters", "BENCH_SCALE_CHAPTERS", 2)));
  const concurrency = Math.max(1, Math.floor(option("--concurrency", "BENCH_SCALE_CONCURRENCY", 4)));
  const firstTokenMs = option("--first-token", "BENCH_SCALE_FIRST_TOKEN_MS", 300);
  const wordsPerSecond = option("--wps", "BENCH_SCALE_WPS", 100);
  const timeoutMs = option("--timeout", "BENCH_SCALE_TIMEOUT_S", 300) * 1000;
  const i = process.argv.indexOf("--workers");
  const workerList = (i >= 0 ? process.argv[i + 1] : process.env.BENCH_SCALE_WORKERS) ?? "1,2,4";
  const workerCounts = workerList.split(",").map((w) => Math.max(1, Math.floor(Number(w))));
  if (workerCounts.some((w) => !Number.isFinite(w))) throw new Error(`--workers: ${workerList}`);
  const chunkDelayMs = round((CHUNK_CHARS / (wordsPerSecond * CHARS_PER_WORD)) * 1000, 1);

  const started = performance.now();
  const svc = services();
  const runs: ScaleRun[] = [];
  try {
    for (const workers of workerCounts) {
      progress(`--- ${workers} worker(s)`);
      const run = await runOnce({
        workers,
        concurrency,
        stories,
        chapters,
        firstTokenMs,
        chunkDelayMs,
        timeoutMs,
        services: svc,
      });
      progress(
        `${workers}w: ${run.completedChapters}/${run.requestedChapters} chapters in ${run.playedSec} s = ` +
          `${run.chaptersPerMinute}/min, p95 first text ${run.firstVisibleTextMs.p95} ms, ${run.platform429} 429s`,
      );
      runs.push(run);
    }
  } finally {
    if (svc.own) svc.stop();
  }

  const base = runs.find((r) => r.workers === 1)?.chaptersPerMinute;
  const ratio = (w: number) => {
    const r = runs.find((x) => x.workers === w);
    return base === undefined || base === 0 || r === undefined ? null : round(r.chaptersPerMinute / base, 2);
  };
  const speedup2 = ratio(2);
  const speedup4 = ratio(4);
  const total429 = runs.reduce((s, r) => s + r.platform429, 0);
  const result = {
    benchmark: "scale",
    parameters: {
      workerCounts,
      workerConcurrency: concurrency,
      stories,
      chaptersPerStory: chapters,
      model: {
        firstTokenMs,
        wordsPerSecond,
        chunkChars: CHUNK_CHARS,
        chunkDelayMs,
        note: "every reply waits firstTokenMs; streamed prose then comes in 16-character chunks every chunkDelayMs",
      },
      telegram: "fake Bot API, enforceLimits (1 message call/s per chat, 20/min per group, 30/s per bot), privacy mode",
      preplan: "off",
      database: "PostgreSQL, a fresh database per worker count",
      redis: "one Redis, a fresh REDIS_PREFIX per worker count",
      cpus: cpus().length,
    },
    runs,
    speedup: {
      twoWorkers: speedup2,
      fourWorkers: speedup4,
      targets: { twoWorkers: 1.8, fourWorkers: 3.4 },
      met: {
        twoWorkers: speedup2 === null ? null : speedup2 >= 1.8,
        fourWorkers: speedup4 === null ? null : speedup4 >= 3.4,
        zero429: total429 === 0,
      },
    },
    notes: [
      `Each worker runs at most WORKER_CONCURRENCY=${concurrency} chapters at once and the fake model's pace is fixed, so one worker's throughput is bounded by its concurrency / chapter time (mostly waiting on the model), not by CPU; adding workers adds chapter slots. That makes the speedup a test of whether the queue, Redis, PostgreSQL and the shared Telegram budget let the slots add up.`,
      "The default of 4 chapters per worker keeps 4 workers' demand on Telegram (16 slots x 3 message calls per ~3 s chapter, about 16 calls/s) inside the bot-wide 30 calls/s, so the speedup measures the workers. At 8 per worker, 4 workers would ask for about 32 calls/s: Telegram's limit, which no worker can lift, then caps the run (bench/README.md has both runs).",
      `${stories} stories start at once, so with few slots most of the time to first visible text is waiting in the queue: it is the reader's wait, queue included, and it falls as workers are added.`,
      `chaptersPerMinute = completed chapters / (first action -> last choices message). ${chapters} chapters per story keep the whole bench within ~10 minutes on ${cpus().length} cores; chapter 1 (plan + CoT) costs more model calls than later chapters (ReAct).`,
      "Redis: commandsPerChapter is the INFO commandstats delta (all clients of that Redis, idle polling included) / chapters. Commands run inside Lua scripts (BullMQ) count too and pipelined commands count one each, so it is an upper bound on network round trips; scriptCallsPerChapter counts EVAL/EVALSHA.",
      "PostgreSQL: pg_stat_database xact_commit + xact_rollback delta of the bench database / chapters (pg_stat_statements is not loaded). Every statement outside a transaction is one transaction; an explicit transaction is several round trips, so this is a lower bound on round trips.",
      "All processes (bench with both fakes, front, workers, PostgreSQL, Redis) share this machine's cores; cpuSec says who used them, loadAverage whether anything else was running.",
    ],
    node: process.version,
    durationSec: round((performance.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
