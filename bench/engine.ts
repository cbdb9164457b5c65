/**
 * `npm run bench`: the story engine's own overhead per chapter, and the prompt size as
 * one story grows. Plays one long story against the in-process fake OpenAI server (real
 * HTTP + SSE, real `openai` SDK, real SQLite), with a fixed injected model latency.
 * The engine's overhead is the measured interval minus the time the engine spent
 * waiting on model calls (the fake model's own latency, as the engine sees it).
 * Prints ONE JSON document to stdout
 * (progress goes to stderr) and always exits 0 unless the benchmark itself crashes.
 *
 * Options (flag or env): --chapters N / BENCH_CHAPTERS (default 200),
 * --latency MS / BENCH_LATENCY_MS (delay before each model reply, default 2),
 * --chunk-latency MS / BENCH_CHUNK_LATENCY_MS (pause between streamed chunks, default 1).
 * See bench/README.md for how to read the output.
 */
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/app/config.ts";
import { createEngine } from "../src/app/wiring.ts";
import type { ChatRequest, ChatResult, ChatStreamEvent, ModelClient, ModelRoute, Task } from "../src/llm/types.ts";
import type { ChoiceOffer, MessageRef, Surface } from "../src/render/surface.ts";
import type { WriteTicket } from "../src/story/chapter-job.ts";
import type { Conversation } from "../src/story/identity.ts";
import type { FakeOpenAiServer } from "../tests/fakes/fake-openai-server.ts";
import type { FakeRequest } from "../tests/fakes/fake-openai-types.ts";
import { startBenchModel } from "./harness.ts";
import { type Distribution, distribution, option, round } from "./stats.ts";

const TARGETS = { overheadP95Ms: 20, promptRatioMax: 1.2 } as const;
const PROMPT_CHECKPOINTS = [20, 50, 200] as const;

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);

/** Timestamps of one chapter, with the injected model latency accrued at each of them. */
interface ChapterMark {
  number: number;
  requestAt: number;
  requestLatency: number;
  firstPostAt?: number;
  firstPostLatency?: number;
  choicesAt?: number;
  choicesLatency?: number;
  firstRequestIndex: number;
}

/**
 * One model call as the engine saw it: the spans during which the engine was
 * waiting on the model (for a stream, each wait for its next event), and when
 * the first text arrived.
 */
interface ModelCall {
  spans: [number, number][];
  firstText?: number;
}

/** Wraps the engine's model client and timestamps every wait on the model. */
class TimedModelClient implements ModelClient {
  readonly calls: ModelCall[] = [];
  constructor(private readonly inner: ModelClient) {}

  route(task: Task): ModelRoute {
    return this.inner.route(task);
  }

  async complete(req: ChatRequest): Promise<ChatResult> {
    const call: ModelCall = { spans: [] };
    this.calls.push(call);
    const start = performance.now();
    try {
      return await this.inner.complete(req);
    } finally {
      call.spans.push([start, performance.now()]);
    }
  }

  async *stream(req: ChatRequest): AsyncIterable<ChatStreamEvent> {
    const call: ModelCall = { spans: [] };
    this.calls.push(call);
    const events = this.inner.stream(req)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const start = performance.now();
        let next: IteratorResult<ChatStreamEvent>;
        try {
          next = await events.next();
        } finally {
          call.spans.push([start, performance.now()]);
        }
        if (next.done) return;
        if (next.value.type === "text" && call.firstText === undefined) call.firstText = performance.now();
        // The time the engine spends on an event before asking for the next is its own.
        yield next.value;
      }
    } finally {
      await events.return?.();
    }
  }
}

/**
 * Milliseconds within [from, to] during which the engine was waiting on at least one
 * model call (parallel calls count once). With `untilFirstText`, a stream counts only
 * until its first text: after that the reader already sees the chapter.
 */
function modelWait(calls: ModelCall[], from: number, to: number, untilFirstText: boolean): number {
  const spans = calls
    .flatMap((c) => c.spans.filter(([a]) => !untilFirstText || c.firstText === undefined || a < c.firstText))
    .map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cursor = from;
  for (const [a, b] of spans) {
    const start = Math.max(a, cursor);
    if (b > start) total += b - start;
    cursor = Math.max(cursor, b);
  }
  return total;
}

/** A surface that only timestamps: the first `post` (first prose visible) and `offerChoices` (chapter done). */
class BenchSurface implements Surface {
  readonly limits = { maxMessageLength: 2000, minEditIntervalMs: 0 };
  current: ChapterMark | undefined;
  #ids = 0;
  offers: ChoiceOffer[] = [];

  constructor(private readonly server: FakeOpenAiServer) {}

  async post(_text: string): Promise<MessageRef> {
    const mark = this.current;
    if (mark !== undefined && mark.firstPostAt === undefined) {
      mark.firstPostAt = performance.now();
      mark.firstPostLatency = this.server.injectedLatencyMs;
    }
    return { id: String(++this.#ids) };
  }
  async edit(_ref: MessageRef, _text: string): Promise<void> {}
  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const mark = this.current;
    if (mark !== undefined && mark.choicesAt === undefined) {
      mark.choicesAt = performance.now();
      mark.choicesLatency = this.server.injectedLatencyMs;
    }
    this.offers.push(offer);
    return { id: String(++this.#ids) };
  }
  async updateChoices(): Promise<void> {}
  async closeChoices(): Promise<void> {}
  async notice(_text: string): Promise<void> {}
  async failed(_text: string): Promise<void> {}
  async sendFile(): Promise<void> {}
  async postImage(): Promise<MessageRef> {
    return { id: String(++this.#ids) };
  }
}

/** The fake's own prompt-token estimate (chars/4 of message contents, tool-call arguments and tools). */
function requestPromptTokens(req: FakeRequest): number {
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON
  const body: any = req.body ?? {};
  let chars = 0;
  for (const m of Array.isArray(body.messages) ? body.messages : []) {
    if (typeof m.content === "string") chars += m.content.length;
    for (const call of m.tool_calls ?? []) {
      if (typeof call.function?.arguments === "string") chars += call.function.arguments.length;
    }
  }
  if (Array.isArray(body.tools) && body.tools.length > 0) chars += JSON.stringify(body.tools).length;
  return Math.ceil(chars / 4);
}

/** The streamed prose request: stream, no tools, not the summarizer. */
function isProse(req: FakeRequest): boolean {
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON
  const body: any = req.body ?? {};
  if (req.path !== "/chat/completions" || body.stream !== true) return false;
  if (Array.isArray(body.tools) && body.tools.length > 0) return false;
  const first = body.messages?.[0]?.content;
  return !(typeof first === "string" && first.startsWith("Inkloom: summarize"));
}

interface PromptAt {
  chapter: number;
  /** Sum of `promptTokens` over every call of the writing run (AgentRun task open/continue). */
  writingRunPromptTokens: number;
  /** Sum over every AgentRun of the chapter (writing, check, choices...). */
  allRunsPromptTokens: number;
  runs: { task: string; method: string; promptTokens: number }[];
  /** Estimated tokens of the single streamed prose request (chars/4), from the fake's request log. */
  proseRequestTokens: number | null;
  /** Largest single request of the chapter (chars/4). */
  largestRequestTokens: number;
  requests: number;
}

async function main(): Promise<void> {
  const chapters = Math.max(1, Math.floor(option("--chapters", "BENCH_CHAPTERS", 200)));
  const delayMs = option("--latency", "BENCH_LATENCY_MS", 2);
  const chunkDelayMs = option("--chunk-latency", "BENCH_CHUNK_LATENCY_MS", 1);
  const started = performance.now();

  const bench = await startBenchModel("engine", { delayMs, chunkDelayMs });
  const server = bench.model;
  const logs: string[] = [];
  let timed: TimedModelClient | undefined;
  const engine = await createEngine(
    loadConfig(bench.env),
    (message) => {
      logs.push(message);
      progress(`engine: ${message}`);
    },
    { decorateModel: (inner) => (timed = new TimedModelClient(inner)) },
  );

  const surface = new BenchSurface(server);
  const conversation: Conversation = { platform: "bench", workspaceId: "bench", id: "bench" };
  engine.audiences.set(`${conversation.platform}:${conversation.id}`, { surface, locale: "en" });

  const marks: ChapterMark[] = [];
  const jobMs: number[] = [];
  const failures: string[] = [];
  let storyId = "";
  try {
    for (let n = 1; n <= chapters; n++) {
      const mark: ChapterMark = {
        number: n,
        requestAt: performance.now(),
        requestLatency: server.injectedLatencyMs,
        firstRequestIndex: server.requests.length,
      };
      surface.current = mark;
      let ticket: WriteTicket;
      if (n === 1) {
        ticket = await engine.stories.start({
          actor: { platform: "bench", id: "reader", name: "Reader" },
          conversation,
          premise: "A harbour detective follows a stranger through a rainy town that hides an old crime.",
          genre: "adventure",
        });
        storyId = ticket.storyId;
      } else {
        const offer = surface.offers.at(-1);
        if (offer === undefined) throw new Error(`no choices offered before chapter ${n}`);
        ticket = await engine.stories.choose(storyId, offer.revision, 1);
      }
      await ticket.job.finished;
      jobMs.push(performance.now() - mark.requestAt);
      marks.push(mark);
      if (mark.choicesAt === undefined) {
        const state = await engine.queries.state(storyId);
        failures.push(`chapter ${n}: no choices offered (head status ${state.head?.status ?? "none"})`);
        break;
      }
      if (n % 20 === 0 || n === chapters) {
        const last = marks
          .slice(-20)
          .map((m) => (m.choicesAt ?? 0) - m.requestAt - ((m.choicesLatency ?? 0) - m.requestLatency));
        progress(`chapter ${n}/${chapters}: done overhead (last 20) p95 ${round(distribution(last).p95)} ms`);
      }
    }

    const calls = timed?.calls ?? [];
    const firstText: number[] = [];
    const done: number[] = [];
    // The same intervals minus only the injected delays: this also charges the engine
    // with the in-process fake server's own work and the loopback HTTP (a pessimistic bound).
    const firstTextInjectedOnly: number[] = [];
    const doneInjectedOnly: number[] = [];
    for (const m of marks) {
      if (m.firstPostAt !== undefined && m.firstPostLatency !== undefined) {
        firstText.push(m.firstPostAt - m.requestAt - modelWait(calls, m.requestAt, m.firstPostAt, true));
        firstTextInjectedOnly.push(m.firstPostAt - m.requestAt - (m.firstPostLatency - m.requestLatency));
      }
      if (m.choicesAt !== undefined && m.choicesLatency !== undefined) {
        done.push(m.choicesAt - m.requestAt - modelWait(calls, m.requestAt, m.choicesAt, false));
        doneInjectedOnly.push(m.choicesAt - m.requestAt - (m.choicesLatency - m.requestLatency));
      }
    }

    const prompts: PromptAt[] = [];
    for (const number of PROMPT_CHECKPOINTS) {
      if (number > marks.length) continue;
      const runs = await engine.db.agentRun.findMany({
        where: { chapter: { storyId, number } },
        select: { task: true, method: true, promptTokens: true },
        orderBy: { createdAt: "asc" },
      });
      const from = marks[number - 1]?.firstRequestIndex ?? 0;
      const to = marks[number]?.firstRequestIndex ?? server.requests.length;
      const requests = server.requests.slice(from, to).filter((r) => r.path === "/chat/completions");
      const prose = requests.filter(isProse).at(-1);
      prompts.push({
        chapter: number,
        writingRunPromptTokens: runs
          .filter((r) => r.task === "open" || r.task === "continue")
          .reduce((s, r) => s + r.promptTokens, 0),
        allRunsPromptTokens: runs.reduce((s, r) => s + r.promptTokens, 0),
        runs,
        proseRequestTokens: prose === undefined ? null : requestPromptTokens(prose),
        largestRequestTokens: Math.max(0, ...requests.map(requestPromptTokens)),
        requests: requests.length,
      });
    }
    const at = (n: number) => prompts.find((p) => p.chapter === n);
    const p20 = at(20);
    const p200 = at(200);
    const ratio = (f: (p: PromptAt) => number | null): number | null => {
      if (p20 === undefined || p200 === undefined) return null;
      const a = f(p20);
      const b = f(p200);
      return a === null || b === null || a === 0 ? null : round(b / a, 3);
    };
    const ratio200to20 = ratio((p) => p.writingRunPromptTokens);

    const firstTextStats = distribution(firstText);
    const doneStats = distribution(done);
    const overheadP95 = Math.max(firstTextStats.p95, doneStats.p95);
    const modelLatencyTotal = server.injectedLatencyMs;

    const result = {
      benchmark: "engine",
      chapters: marks.length,
      requestedChapters: chapters,
      modelLatency: {
        delayMsPerRequest: delayMs,
        chunkDelayMs,
        totalInjectedMs: modelLatencyTotal,
        modelRequests: server.requests.filter((r) => r.path === "/chat/completions").length,
      },
      overheadMs: {
        firstText: firstTextStats,
        done: doneStats,
        excludingChapter1: {
          firstText: distribution(firstText.slice(1)),
          done: distribution(done.slice(1)),
        },
        byPhase: phases(done),
        injectedLatencyOnly: {
          firstText: distribution(firstTextInjectedOnly),
          done: distribution(doneInjectedOnly),
        },
      },
      jobMs: distribution(jobMs),
      promptTokens: {
        chapter20: p20?.writingRunPromptTokens ?? null,
        chapter50: at(50)?.writingRunPromptTokens ?? null,
        chapter200: p200?.writingRunPromptTokens ?? null,
        ratio200to20,
        proseRequestRatio200to20: ratio((p) => p.proseRequestTokens),
        detail: prompts,
      },
      targets: TARGETS,
      meets: {
        overhead: done.length > 0 && overheadP95 < TARGETS.overheadP95Ms,
        prompt: ratio200to20 === null ? null : ratio200to20 <= TARGETS.promptRatioMax,
      },
      failures,
      engineLog: logs,
      node: process.version,
      durationSec: round((performance.now() - started) / 1000, 1),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    surface.current = undefined;
    await engine.close();
    await bench.cleanup();
  }
}

/** Overhead of "done" by fifths of the story, to show growth with length. */
function phases(values: number[]): { chapters: string; p50: number; p95: number }[] {
  const out: { chapters: string; p50: number; p95: number }[] = [];
  const size = Math.max(1, Math.ceil(values.length / 5));
  for (let i = 0; i < values.length; i += size) {
    const slice = values.slice(i, i + size);
    const d: Distribution = distribution(slice);
    out.push({ chapters: `${i + 1}-${i + slice.length}`, p50: d.p50, p95: d.p95 });
  }
  return out;
}

await main();
