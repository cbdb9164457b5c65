/**
 * `npm run bench:latency`: how long a reader waits for the first sentence of a chapter when
 * every model call takes a realistic 800 ms to its first token, with and without speculative
 * planning (PREPLAN). Real engine (`createEngine`: SQLite in a temp dir, the `openai` SDK over
 * HTTP/SSE, the story agent, the job queue) against the in-process fake OpenAI server
 * answering with `storyResponder()`.
 *
 * For each method (cot, react: METHOD_OPEN, METHOD_CONTINUE and METHOD_REWRITE all set to it)
 * and PREPLAN on and off, N stories of C chapters are played, one after the other:
 * chapter 1 is `stories.start`; chapter n >= 2 is a typed action (`stories.act`) when
 * (n - 1) % typedEvery === 0, else a choice (`stories.choose`): by default even chapters are
 * choices, odd ones typed actions. Before every action the bench waits until the engine has
 * had no model call in flight for `--idle-ms` (the reader reading; with PREPLAN on, the plans
 * of the offered choices are then finished), so a choice is a "planned choice".
 *
 * Measured per chapter: action (just before the call to start/choose/act) -> the first post or
 * edit on the surface that carries prose (the chapter's first message opens with the heading
 * "Chapter N" and the first prose in the same post), and how many model calls were started in
 * between. Unused plans: `promptTokens` of the AgentRun rows with status "unused", per chapter
 * written.
 *
 * Prints ONE JSON document to stdout (progress on stderr) and exits 0 unless the bench itself
 * crashes. Options (flag or env): --stories N / BENCH_LAT_STORIES (5), --chapters N /
 * BENCH_LAT_CHAPTERS (4, per story), --latency MS / BENCH_LAT_LATENCY_MS (800, before every
 * reply), --chunk-latency MS / BENCH_LAT_CHUNK_LATENCY_MS (27, between 16-character prose
 * chunks: ~590 characters, ~100 words of this prose a second), --idle-ms MS /
 * BENCH_LAT_IDLE_MS (500), --typed-every N / BENCH_LAT_TYPED_EVERY (2; 0 = choices only),
 * --parallel N / BENCH_LAT_PARALLEL (4: the four method x PREPLAN runs at once, each with its
 * own engine, fake model and database; they share this process's event loop).
 * See bench/README.md for how to read the output.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Method } from "../src/agent/types.ts";
import { loadConfig } from "../src/app/config.ts";
import { createEngine, type Engine } from "../src/app/wiring.ts";
import { t } from "../src/i18n/messages.ts";
import type { ChatRequest, ChatResult, ChatStreamEvent, ModelClient, ModelRoute, Task } from "../src/llm/types.ts";
import type { ChoiceOffer, MessageRef, Surface } from "../src/render/surface.ts";
import type { WriteTicket } from "../src/story/chapter-job.ts";
import type { Conversation } from "../src/story/identity.ts";
import { engineLogger, startBenchModel } from "./harness.ts";
import { type Distribution, distribution, option, round } from "./stats.ts";

const METHODS_UNDER_TEST = ["cot", "react"] as const satisfies readonly Method[];
/** Characters per streamed prose chunk: fixed by `storyResponder()` for prose. */
const PROSE_CHUNK_CHARS = 16;
/** An action that never reaches its choices within this time is a failure. */
const CHAPTER_TIMEOUT_MS = 60_000;
/** The longest wait for the engine to go quiet before an action. */
const IDLE_TIMEOUT_MS = 30_000;
/** Sampling interval of the event-loop delay histogram. */
const LOOP_RESOLUTION_MS = 10;

const progress = (message: string) => process.stderr.write(`[bench:latency] ${message}\n`);

type Kind = "chapter1" | "plannedChoice" | "typedAction";
const KINDS: readonly Kind[] = ["chapter1", "plannedChoice", "typedAction"];

/** One chapter as the reader lived it. */
interface Mark {
  kind: Kind;
  story: number;
  number: number;
  actionAt: number;
  /** Model calls started before the action. */
  callsAtAction: number;
  firstProseAt?: number;
  callsAtFirstProse?: number;
  choicesAt?: number;
}

/** Wraps the engine's model client: calls in flight and the last time one started or ended. */
class ModelActivity implements ModelClient {
  inFlight = 0;
  started = 0;
  lastActivity = performance.now();

  constructor(private readonly inner: ModelClient) {}

  route(task: Task): ModelRoute {
    return this.inner.route(task);
  }

  async complete(req: ChatRequest): Promise<ChatResult> {
    this.begin();
    try {
      return await this.inner.complete(req);
    } finally {
      this.end();
    }
  }

  async *stream(req: ChatRequest): AsyncIterable<ChatStreamEvent> {
    this.begin();
    try {
      yield* this.inner.stream(req);
    } finally {
      this.end();
    }
  }

  /** Resolves once no call has been in flight for `idleMs` (false when `maxMs` passed first). */
  async quiet(idleMs: number, maxMs: number): Promise<boolean> {
    const from = performance.now();
    for (;;) {
      const now = performance.now();
      if (this.inFlight === 0 && now - this.lastActivity >= idleMs) return true;
      if (now - from > maxMs) return false;
      await sleep(20);
    }
  }

  private begin(): void {
    this.inFlight++;
    this.started++;
    this.lastActivity = performance.now();
  }

  private end(): void {
    this.inFlight--;
    this.lastActivity = performance.now();
  }
}

/** A surface that timestamps the first prose of the current chapter and its choices. */
class LatencySurface implements Surface {
  readonly limits = { maxMessageLength: 2000, minEditIntervalMs: 0 };
  current: Mark | undefined;
  offers: ChoiceOffer[] = [];
  failures: string[] = [];
  #ids = 0;

  constructor(private readonly activity: ModelActivity) {}

  async post(text: string): Promise<MessageRef> {
    this.seen(text);
    return { id: String(++this.#ids) };
  }
  async edit(_ref: MessageRef, text: string): Promise<void> {
    this.seen(text);
  }
  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const mark = this.current;
    if (mark !== undefined && mark.choicesAt === undefined) mark.choicesAt = performance.now();
    this.offers.push(offer);
    return { id: String(++this.#ids) };
  }
  async updateChoices(): Promise<void> {}
  async closeChoices(): Promise<void> {}
  async notice(_text: string): Promise<void> {}
  async failed(text: string): Promise<void> {
    this.failures.push(text);
  }
  async sendFile(): Promise<void> {}
  async postImage(): Promise<MessageRef> {
    return { id: String(++this.#ids) };
  }

  private seen(text: string): void {
    const mark = this.current;
    if (mark === undefined || mark.firstProseAt !== undefined) return;
    const heading = t("en", "chapter.headingUntitled", { number: mark.number });
    const body = text.startsWith(heading) ? text.slice(heading.length) : text;
    if (body.trim() === "") return;
    mark.firstProseAt = performance.now();
    mark.callsAtFirstProse = this.activity.started;
  }
}

interface RunOptions {
  method: Method;
  preplan: boolean;
  stories: number;
  chapters: number;
  delayMs: number;
  chunkDelayMs: number;
  idleMs: number;
  /** Every this many chapters after chapter 1 is a typed action (0: never). */
  typedEvery: number;
}

interface KindResult {
  firstProseMs: Distribution;
  /** Action -> choices offered (the whole chapter). */
  choicesMs: Distribution;
  /** Model calls started between the action and the first prose (1 = only the prose call). */
  modelCallsBeforeProse: { mean: number; max: number };
}

interface RunResult {
  method: Method;
  preplan: boolean;
  chaptersWritten: number;
  kinds: Record<Kind, KindResult>;
  /**
   * PREPLAN on: planned choices that needed more model calls than the prose call before their
   * first sentence, i.e. their plan was not used ("story S chapter N"); null when PREPLAN is off.
   */
  plannedChoicesWithoutPlan: string[] | null;
  unusedPlans: {
    runs: number;
    promptTokens: number;
    promptTokensPerChapter: number;
    /** Unused-plan prompt tokens / prompt tokens of every other run. */
    shareOfOtherPromptTokens: number | null;
  };
  /** Average prose words per second as streamed (chunk size and pause, words in the stored prose). */
  streamWordsPerSecond: number | null;
  modelRequests: number;
  failures: string[];
  engineLog: string[];
  durationSec: number;
}

function label(o: Pick<RunOptions, "method" | "preplan">): string {
  return `${o.method}/preplan-${o.preplan ? "on" : "off"}`;
}

const PREMISES = [
  "A harbour detective follows a stranger through a rainy town that hides an old crime.",
  "A lighthouse keeper finds a letter addressed to someone who drowned forty years ago.",
  "Two rival clockmakers must repair the town's great clock before the festival.",
  "A courier carries a sealed box across a city where every bridge is closing.",
  "An archivist discovers that the museum's newest exhibit is still alive.",
];

const PLACES = ["cellar", "quay", "archive", "bell tower", "market", "ferry", "old mill", "chapel"];

async function runOne(o: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const name = label(o);
  const say = (message: string) => progress(`${name}: ${message}`);
  const bench = await startBenchModel(`latency-${o.method}-${o.preplan ? "on" : "off"}`, {
    delayMs: o.delayMs,
    chunkDelayMs: o.chunkDelayMs,
  });
  const logger = engineLogger(say);
  let activity: ModelActivity | undefined;
  let engine: Engine | undefined;
  try {
    engine = await createEngine(
      loadConfig({
        ...bench.env,
        METHOD_OPEN: o.method,
        METHOD_CONTINUE: o.method,
        METHOD_REWRITE: o.method,
        PREPLAN: o.preplan ? "on" : "off",
      }),
      logger.log,
      { decorateModel: (inner) => (activity = new ModelActivity(inner)) },
    );
    if (activity === undefined) throw new Error("the engine did not build its model client");
    const tracker = activity;
    const surface = new LatencySurface(tracker);
    const conversation: Conversation = { platform: "bench", workspaceId: "bench", id: `latency-${name}` };
    engine.audiences.set(`${conversation.platform}:${conversation.id}`, { surface, locale: "en" });

    const marks: Mark[] = [];
    const failures: string[] = [];
    for (let s = 0; s < o.stories; s++) {
      let storyId = "";
      for (let n = 1; n <= o.chapters; n++) {
        const kind: Kind =
          n === 1 ? "chapter1" : o.typedEvery > 0 && (n - 1) % o.typedEvery === 0 ? "typedAction" : "plannedChoice";
        // The reader reads: planning ahead (when on) finishes, the summary fold too.
        if (!(await tracker.quiet(o.idleMs, IDLE_TIMEOUT_MS))) {
          failures.push(
            `story ${s + 1} chapter ${n}: the engine was still calling the model after ${IDLE_TIMEOUT_MS} ms`,
          );
        }
        const offer = surface.offers.at(-1);
        const mark: Mark = {
          kind,
          story: s + 1,
          number: n,
          actionAt: performance.now(),
          callsAtAction: tracker.started,
        };
        surface.current = mark;
        let ticket: WriteTicket;
        if (n === 1) {
          ticket = await engine.stories.start({
            actor: { platform: "bench", id: "reader", name: "Reader" },
            conversation,
            premise: PREMISES[s % PREMISES.length] ?? "A story.",
            genre: "adventure",
          });
          storyId = ticket.storyId;
        } else if (offer === undefined) {
          throw new Error(`no choices offered before chapter ${n}`);
        } else if (kind === "plannedChoice") {
          ticket = await engine.stories.choose(storyId, offer.revision, 1 + ((s + n) % offer.choices.length));
        } else {
          const place = PLACES[(s * o.chapters + n) % PLACES.length] ?? "harbour";
          ticket = await engine.stories.act(storyId, offer.revision, `Mara slips away alone to search the ${place}.`);
        }
        const outcome = await Promise.race([
          ticket.job.finished,
          sleep(CHAPTER_TIMEOUT_MS, "timeout" as const, { ref: false }),
        ]);
        surface.current = undefined;
        marks.push(mark);
        if (outcome === "timeout" || mark.choicesAt === undefined) {
          const state = await engine.queries.state(storyId);
          failures.push(
            `story ${s + 1} chapter ${n} (${kind}): ${outcome === "timeout" ? "no end within the timeout" : "no choices offered"}` +
              ` (head status ${state.head?.status ?? "none"})`,
          );
          break;
        }
        const firstProse =
          mark.firstProseAt === undefined ? "none" : `${round(mark.firstProseAt - mark.actionAt, 0)} ms`;
        say(`story ${s + 1}/${o.stories} chapter ${n} (${kind}): first prose ${firstProse}`);
      }
    }
    await tracker.quiet(o.idleMs, IDLE_TIMEOUT_MS);
    // Unused plans are recorded when they are cancelled: cancel what is left, wait for the rows.
    await engine.preplanner?.close();

    const byKind = (kind: Kind): KindResult => {
      const of = marks.filter((m) => m.kind === kind);
      const calls = of.flatMap((m) =>
        m.callsAtFirstProse === undefined ? [] : [m.callsAtFirstProse - m.callsAtAction],
      );
      return {
        firstProseMs: distribution(
          of.flatMap((m) => (m.firstProseAt === undefined ? [] : [m.firstProseAt - m.actionAt])),
        ),
        choicesMs: distribution(of.flatMap((m) => (m.choicesAt === undefined ? [] : [m.choicesAt - m.actionAt]))),
        modelCallsBeforeProse: {
          mean: calls.length === 0 ? Number.NaN : round(calls.reduce((a, b) => a + b, 0) / calls.length),
          max: Math.max(0, ...calls),
        },
      };
    };
    const kinds = Object.fromEntries(KINDS.map((k) => [k, byKind(k)])) as Record<Kind, KindResult>;

    const chapters = await engine.db.chapter.findMany({ where: { status: "done" }, select: { text: true } });
    const unused = await engine.db.agentRun.aggregate({
      where: { status: "unused" },
      _sum: { promptTokens: true },
      _count: { _all: true },
    });
    const others = await engine.db.agentRun.aggregate({
      where: { status: { not: "unused" } },
      _sum: { promptTokens: true },
    });
    const unusedTokens = unused._sum.promptTokens ?? 0;
    const otherTokens = others._sum.promptTokens ?? 0;
    const words = chapters.reduce((sum, c) => sum + c.text.split(/\s+/).filter(Boolean).length, 0);
    const chars = chapters.reduce((sum, c) => sum + c.text.length, 0);
    const charsPerSecond = o.chunkDelayMs > 0 ? (PROSE_CHUNK_CHARS * 1000) / o.chunkDelayMs : Number.POSITIVE_INFINITY;

    return {
      method: o.method,
      preplan: o.preplan,
      chaptersWritten: chapters.length,
      kinds,
      plannedChoicesWithoutPlan: !o.preplan
        ? null
        : marks
            .filter(
              (m) =>
                m.kind === "plannedChoice" &&
                m.callsAtFirstProse !== undefined &&
                m.callsAtFirstProse - m.callsAtAction > 1,
            )
            .map((m) => `story ${m.story} chapter ${m.number}`),
      unusedPlans: {
        runs: unused._count._all,
        promptTokens: unusedTokens,
        promptTokensPerChapter: chapters.length === 0 ? 0 : round(unusedTokens / chapters.length, 1),
        shareOfOtherPromptTokens: otherTokens === 0 ? null : round(unusedTokens / otherTokens, 3),
      },
      streamWordsPerSecond:
        words === 0 || !Number.isFinite(charsPerSecond) ? null : round(charsPerSecond / (chars / words), 1),
      modelRequests: bench.model.chatRequests().length,
      failures: [...failures, ...surface.failures],
      engineLog: logger.lines,
      durationSec: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await engine?.close();
    await bench.cleanup();
  }
}

/** Whether a p95 is within its target; null when nothing was measured. */
function meets(d: Distribution, targetMs: number): boolean | null {
  return d.n === 0 ? null : d.p95 <= targetMs;
}

/** Run `tasks` at most `limit` at a time, results in order. */
async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < tasks.length; i = next++) {
      const task = tasks[i];
      if (task !== undefined) results[i] = await task();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker));
  return results;
}

async function main(): Promise<void> {
  const stories = Math.max(1, Math.floor(option("--stories", "BENCH_LAT_STORIES", 5)));
  const chapters = Math.max(2, Math.floor(option("--chapters", "BENCH_LAT_CHAPTERS", 4)));
  const delayMs = option("--latency", "BENCH_LAT_LATENCY_MS", 800);
  const chunkDelayMs = option("--chunk-latency", "BENCH_LAT_CHUNK_LATENCY_MS", 27);
  const idleMs = option("--idle-ms", "BENCH_LAT_IDLE_MS", 500);
  const typedEvery = Math.max(0, Math.floor(option("--typed-every", "BENCH_LAT_TYPED_EVERY", 2)));
  const parallel = Math.max(1, Math.floor(option("--parallel", "BENCH_LAT_PARALLEL", 4)));
  const started = performance.now();
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();

  const runs: RunOptions[] = [true, false].flatMap((preplan) =>
    METHODS_UNDER_TEST.map((method) => ({
      method,
      preplan,
      stories,
      chapters,
      delayMs,
      chunkDelayMs,
      idleMs,
      typedEvery,
    })),
  );
  progress(`${runs.length} runs (${parallel} at a time): ${stories} stories x ${chapters} chapters each`);
  const results = await pool(
    runs.map((r) => () => runOne(r)),
    parallel,
  );
  loop.disable();

  const targets = { plannedChoiceP95Ms: 1.25 * delayMs, typedActionP95Ms: 2 * delayMs };
  const section = (preplan: boolean) =>
    Object.fromEntries(
      results
        .filter((r) => r.preplan === preplan)
        .map((r) => {
          const { kinds } = r;
          const perKind = <T>(pick: (k: KindResult) => T): Record<Kind, T> =>
            Object.fromEntries(KINDS.map((k) => [k, pick(kinds[k])])) as Record<Kind, T>;
          return [
            r.method,
            {
              firstProseMs: perKind((k) => k.firstProseMs),
              met: {
                plannedChoice: meets(kinds.plannedChoice.firstProseMs, targets.plannedChoiceP95Ms),
                typedAction: meets(kinds.typedAction.firstProseMs, targets.typedActionP95Ms),
              },
              modelCallsBeforeProse: perKind((k) => k.modelCallsBeforeProse),
              choicesMs: perKind((k) => ({ p50: k.choicesMs.p50, p95: k.choicesMs.p95 })),
              plannedChoicesWithoutPlan: r.plannedChoicesWithoutPlan,
              unusedPlans: r.unusedPlans,
              chaptersWritten: r.chaptersWritten,
              streamWordsPerSecond: r.streamWordsPerSecond,
              modelRequests: r.modelRequests,
              failures: r.failures,
              engineLog: r.engineLog,
              durationSec: r.durationSec,
            },
          ];
        }),
    );
  // The histogram's values include its own sampling interval: the lag is what is beyond it.
  const lag = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS), 1);
  const result = {
    benchmark: "latency",
    model: {
      delayMsBeforeEveryReply: delayMs,
      proseChunkChars: PROSE_CHUNK_CHARS,
      chunkDelayMs,
      streamCharsPerSecond: chunkDelayMs > 0 ? round((PROSE_CHUNK_CHARS * 1000) / chunkDelayMs, 0) : null,
    },
    stories,
    chaptersPerStory: chapters,
    schedule:
      typedEvery === 0
        ? "chapter 1 = start; every later chapter = choose (planned choice)"
        : `chapter 1 = start; chapter n >= 2 = act (typed action) when (n - 1) % ${typedEvery} === 0, else choose (planned choice)`,
    idleMsBeforeEachAction: idleMs,
    parallelRuns: parallel,
    targets,
    met: Object.fromEntries(
      results
        .filter((r) => r.preplan)
        .map((r) => [
          r.method,
          {
            plannedChoice: meets(r.kinds.plannedChoice.firstProseMs, targets.plannedChoiceP95Ms),
            typedAction: meets(r.kinds.typedAction.firstProseMs, targets.typedActionP95Ms),
          },
        ]),
    ),
    preplanOn: section(true),
    preplanOff: section(false),
    eventLoopLagMs: { p50: lag(loop.percentile(50)), p99: lag(loop.percentile(99)), max: lag(loop.max) },
    node: process.version,
    durationSec: round((performance.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
