/**
 * `npm run bench:faults`: does every chapter still finish, once and whole, when the model
 * endpoint misbehaves? Real engine (`createEngine`: SQLite in a temp dir, the `openai` SDK over
 * HTTP/SSE, the story agent, the job queue, background repairs) against the in-process fake
 * OpenAI server answering with `storyResponder()`, with seeded faults and endpoint quirks:
 *
 * - `baseline`: no faults (the reference for extra model calls);
 * - `cut30`: 30% of streamed text answers cut mid-text (`setFaults({ cut: 0.3 })`);
 * - `rate429`: 30% of requests answered 429 with `retry-after-ms: 50` (`{ rateLimit: 0.3 }`);
 * - `server500`: 20% of requests answered 500 (`{ serverError: 0.2 }`);
 * - `ollama`: the "ollama" profile, forced tool calls answered in plain text half the time;
 * - `mixed`: cut, 429 and 500 at 10% each, on the "ollama" profile with the same drop rate.
 *
 * Each profile gets its own engine, fake model and database (so what one profile made the
 * engine learn, e.g. a structured-output strategy, does not carry into the next). Stories are
 * played chapter by chapter with no reader action but choosing choice 1: a fresh story every
 * `--story-length` chapters, or after a chapter that failed. OPENAI_MAX_RETRIES=4, PREPLAN=off
 * (so model calls per chapter compare across profiles), default methods (open cot, continue
 * react). The model answers after `--latency` ms (default 2), 1 ms between streamed chunks.
 *
 * Per chapter the bench checks what the surface got: the heading "Chapter N" posted more than
 * once, the same text posted twice, choices offered more than once, a prose sentence shown
 * twice, and the text shown differing from the text saved.
 *
 * Prints ONE JSON document to stdout (progress on stderr) and exits 0 unless the bench itself
 * crashes. Options (flag or env): --chapters N / BENCH_FAULT_CHAPTERS (100 per profile),
 * --story-length N / BENCH_FAULT_STORY_LENGTH (10), --latency MS / BENCH_FAULT_LATENCY_MS (2),
 * --seed N / BENCH_FAULT_SEED (1), --timeout S / BENCH_FAULT_TIMEOUT_S (60, per chapter).
 * See bench/README.md for how to read the output.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { CONTINUE_MARKER } from "../src/agent/prompts.ts";
import { loadConfig } from "../src/app/config.ts";
import { createEngine, type Engine } from "../src/app/wiring.ts";
import { t } from "../src/i18n/messages.ts";
import type { ChoiceOffer, MessageRef, Surface } from "../src/render/surface.ts";
import type { WriteTicket } from "../src/story/chapter-job.ts";
import type { Conversation } from "../src/story/identity.ts";
import type { FakeFaults, FakeProfile } from "../tests/fakes/fake-openai-types.ts";
import { engineLogger, startBenchModel } from "./harness.ts";
import { option, round } from "./stats.ts";

interface FaultProfile {
  name: string;
  endpoint: FakeProfile;
  dropForcedToolRate?: number;
  faults: FakeFaults;
}

const PROFILES: readonly FaultProfile[] = [
  { name: "baseline", endpoint: "openai", faults: {} },
  { name: "cut30", endpoint: "openai", faults: { cut: 0.3 } },
  { name: "rate429", endpoint: "openai", faults: { rateLimit: 0.3 } },
  { name: "server500", endpoint: "openai", faults: { serverError: 0.2 } },
  { name: "ollama", endpoint: "ollama", dropForcedToolRate: 0.5, faults: {} },
  {
    name: "mixed",
    endpoint: "ollama",
    dropForcedToolRate: 0.5,
    faults: { cut: 0.1, rateLimit: 0.1, serverError: 0.1 },
  },
];

/** Sentences of `storyResponder()`'s prose: each must be shown once per chapter. */
const PROSE_MARKERS = ["Mara pulled her grey coat tighter", "Elias was waiting under the stopped clock"];
/** Examples of each problem kept in the output. */
const MAX_EXAMPLES = 5;
const CLOSE_TIMEOUT_MS = 30_000;

const progress = (message: string) => process.stderr.write(`[bench:faults] ${message}\n`);

/** What the surface got while one chapter was being written. */
interface ChapterLog {
  number: number;
  /** Every post, in order: its id and the text it was posted with. */
  posts: { id: string; text: string }[];
  /** Each posted message's latest text (after edits). */
  shown: Map<string, string>;
  offers: number;
  notices: string[];
  failed: string[];
}

/** A surface that keeps, per chapter, every post, the final text of each message and the offers. */
class RecordingSurface implements Surface {
  readonly limits = { maxMessageLength: 2000, minEditIntervalMs: 0 };
  current: ChapterLog | undefined;
  offers: ChoiceOffer[] = [];
  #ids = 0;

  async post(text: string): Promise<MessageRef> {
    const id = String(++this.#ids);
    this.current?.posts.push({ id, text });
    this.current?.shown.set(id, text);
    return { id };
  }
  async edit(ref: MessageRef, text: string): Promise<void> {
    if (this.current?.shown.has(ref.id) === true) this.current.shown.set(ref.id, text);
  }
  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    if (this.current !== undefined) this.current.offers++;
    this.offers.push(offer);
    return { id: String(++this.#ids) };
  }
  async updateChoices(): Promise<void> {}
  async closeChoices(): Promise<void> {}
  async notice(text: string): Promise<void> {
    this.current?.notices.push(text);
  }
  async failed(text: string): Promise<void> {
    this.current?.failed.push(text);
  }
  async sendFile(): Promise<void> {}
  async postImage(): Promise<MessageRef> {
    return { id: String(++this.#ids) };
  }
}

const squash = (text: string) => text.replace(/\s+/g, " ").trim();

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

interface Problems {
  headingPostedTwice: string[];
  samePostTwice: string[];
  choicesOfferedTwice: string[];
  proseSentenceShownTwice: string[];
  shownDiffersFromSaved: string[];
  doneWithoutChoices: string[];
}

interface ProfileResult {
  profile: string;
  endpoint: FakeProfile;
  dropForcedToolRate: number | null;
  faults: FakeFaults;
  chaptersAttempted: number;
  completedWithoutReaderAction: number;
  completedShare: number;
  failed: number;
  failedByKind: Record<string, number>;
  /** Chapters whose job did not end within the timeout (the profile stops there). */
  stuck: number;
  duplicates: {
    chaptersWithHeadingPostedTwice: number;
    chaptersWithSamePostTwice: number;
    chaptersWithChoicesOfferedTwice: number;
    chaptersWithProseSentenceShownTwice: number;
    total: number;
    examples: string[];
  };
  shownDiffersFromSaved: { chapters: number; examples: string[] };
  doneWithoutChoices: number;
  keptForRepair: number;
  stillNeedingRepairAtEnd: number;
  modelCalls: { total: number; perChapter: number; extraPerChapterVsBaseline: number | null };
  injected: { cut: number; rateLimit: number; serverError: number; droppedForcedCalls: number };
  continuationRequests: number;
  stillWritingNotices: number;
  stories: number;
  met: { allCompleted: boolean; noDuplicates: boolean };
  engineLogLines: number;
  engineLog: string[];
  durationSec: number;
}

interface RunOptions {
  chapters: number;
  storyLength: number;
  delayMs: number;
  seed: number;
  timeoutMs: number;
}

async function runProfile(p: FaultProfile, o: RunOptions): Promise<ProfileResult> {
  const started = performance.now();
  const say = (message: string) => progress(`${p.name}: ${message}`);
  const bench = await startBenchModel(`faults-${p.name}`, { delayMs: o.delayMs, chunkDelayMs: 1 });
  const model = bench.model;
  model.setProfile(p.endpoint, p.dropForcedToolRate === undefined ? {} : { dropForcedToolRate: p.dropForcedToolRate });
  model.setFaults(p.faults, o.seed);
  const logger = engineLogger(say);
  let engine: Engine | undefined;
  let stuck = 0;
  try {
    engine = await createEngine(loadConfig({ ...bench.env, OPENAI_MAX_RETRIES: "4", PREPLAN: "off" }), logger.log);
    const surface = new RecordingSurface();
    const conversation: Conversation = { platform: "bench", workspaceId: "bench", id: `faults-${p.name}` };
    engine.audiences.set(`${conversation.platform}:${conversation.id}`, { surface, locale: "en" });

    const problems: Problems = {
      headingPostedTwice: [],
      samePostTwice: [],
      choicesOfferedTwice: [],
      proseSentenceShownTwice: [],
      shownDiffersFromSaved: [],
      doneWithoutChoices: [],
    };
    const failedByKind: Record<string, number> = {};
    let completed = 0;
    let attempted = 0;
    let stories = 0;
    let storyId: string | undefined;
    let inStory = 0;
    /** The last chapter is done and offered its choices: the story can go on. */
    let canContinue = false;
    let stillWritingNotices = 0;
    const stillWriting = t("en", "chapter.stillWriting");
    for (let i = 0; i < o.chapters; i++) {
      const offer = surface.offers.at(-1);
      const carryOn = canContinue && inStory < o.storyLength && offer?.storyId === storyId;
      const number = carryOn ? inStory + 1 : 1;
      const log: ChapterLog = { number, posts: [], shown: new Map(), offers: 0, notices: [], failed: [] };
      surface.current = log;
      let ticket: WriteTicket;
      if (carryOn && storyId !== undefined && offer !== undefined) {
        ticket = await engine.stories.choose(storyId, offer.revision, 1);
      } else {
        stories++;
        ticket = await engine.stories.start({
          actor: { platform: "bench", id: "reader", name: "Reader" },
          conversation,
          premise: `Story ${stories}: a harbour detective follows a stranger through a rainy town.`,
          genre: "adventure",
        });
      }
      storyId = ticket.storyId;
      inStory = number;
      attempted++;
      const outcome = await Promise.race([ticket.job.finished, sleep(o.timeoutMs, "timeout" as const, { ref: false })]);
      surface.current = undefined;
      stillWritingNotices += log.notices.filter((n) => n === stillWriting).length;
      const where = `story ${stories} chapter ${number}`;
      if (outcome === "timeout") {
        stuck++;
        const row = await engine.db.chapter.findUnique({ where: { id: ticket.chapterId }, select: { status: true } });
        say(`${where}: no end after ${o.timeoutMs} ms (status ${row?.status ?? "missing"}); stopping this profile`);
        failedByKind.stuck = (failedByKind.stuck ?? 0) + 1;
        break;
      }
      const row = await engine.db.chapter.findUnique({
        where: { id: ticket.chapterId },
        select: { status: true, text: true, error: true },
      });
      const heading = t("en", "chapter.headingUntitled", { number });
      const headingPosts = log.posts.filter((m) => m.text === heading || m.text.startsWith(`${heading}\n`)).length;
      if (headingPosts > 1) problems.headingPostedTwice.push(`${where}: heading posted ${headingPosts} times`);
      const texts = log.posts.map((m) => m.text);
      const repeated = texts.filter((text, k) => texts.indexOf(text) !== k);
      if (repeated.length > 0) {
        problems.samePostTwice.push(`${where}: ${JSON.stringify((repeated[0] ?? "").slice(0, 80))} posted again`);
      }
      if (log.offers > 1) problems.choicesOfferedTwice.push(`${where}: choices offered ${log.offers} times`);
      const shown = log.posts.map((m) => log.shown.get(m.id) ?? m.text).join("\n");
      for (const marker of PROSE_MARKERS) {
        const n = occurrences(shown, marker);
        if (n > 1) problems.proseSentenceShownTwice.push(`${where}: "${marker}" shown ${n} times`);
      }
      if (row?.status === "done") {
        completed++;
        canContinue = log.offers > 0;
        if (squash(shown) !== squash(`${heading}\n\n${row.text}`)) {
          problems.shownDiffersFromSaved.push(
            `${where}: shown ${JSON.stringify(squash(shown).slice(-80))} / saved ${JSON.stringify(squash(row.text).slice(-80))}`,
          );
        }
        if (log.offers === 0) problems.doneWithoutChoices.push(`${where}: done but no choices offered`);
      } else {
        const kind = row === null ? "missing" : `${row.status}:${row.error || "?"}`;
        failedByKind[kind] = (failedByKind[kind] ?? 0) + 1;
        // A failed head needs a reader's /retry: this bench starts a fresh story instead.
        canContinue = false;
        say(`${where}: ${kind}`);
      }
      if (attempted % 25 === 0) say(`${attempted}/${o.chapters} chapters, ${completed} done`);
    }

    // Background repairs finish before the calls are counted.
    const idle = await Promise.race([
      engine.queue.onIdle(),
      sleep(CLOSE_TIMEOUT_MS, "timeout" as const, { ref: false }),
    ]);
    if (idle === "timeout") say(`jobs still running ${CLOSE_TIMEOUT_MS} ms after the last chapter`);

    const failedChoiceRuns = await engine.db.agentRun.findMany({
      where: { task: "choices", status: "failed", chapter: { status: "done" } },
      select: { chapterId: true },
      distinct: ["chapterId"],
    });
    const stillNeedingRepair = await engine.db.chapter.count({ where: { needsRepair: true } });
    const requests = model.chatRequests();
    const continuations = requests.filter((r) => JSON.stringify(r.body?.messages ?? []).includes(CONTINUE_MARKER));
    const duplicateChapters = new Set(
      [
        ...problems.headingPostedTwice,
        ...problems.samePostTwice,
        ...problems.choicesOfferedTwice,
        ...problems.proseSentenceShownTwice,
      ].map((line) => line.split(":")[0]),
    );
    const failed = attempted - completed;
    return {
      profile: p.name,
      endpoint: p.endpoint,
      dropForcedToolRate: p.dropForcedToolRate ?? null,
      faults: p.faults,
      chaptersAttempted: attempted,
      completedWithoutReaderAction: completed,
      completedShare: attempted === 0 ? 0 : round(completed / attempted, 3),
      failed,
      failedByKind,
      stuck,
      duplicates: {
        chaptersWithHeadingPostedTwice: problems.headingPostedTwice.length,
        chaptersWithSamePostTwice: problems.samePostTwice.length,
        chaptersWithChoicesOfferedTwice: problems.choicesOfferedTwice.length,
        chaptersWithProseSentenceShownTwice: new Set(problems.proseSentenceShownTwice.map((l) => l.split(":")[0])).size,
        total: duplicateChapters.size,
        examples: [
          ...problems.headingPostedTwice,
          ...problems.samePostTwice,
          ...problems.choicesOfferedTwice,
          ...problems.proseSentenceShownTwice,
        ].slice(0, MAX_EXAMPLES),
      },
      shownDiffersFromSaved: {
        chapters: problems.shownDiffersFromSaved.length,
        examples: problems.shownDiffersFromSaved.slice(0, MAX_EXAMPLES),
      },
      doneWithoutChoices: problems.doneWithoutChoices.length,
      keptForRepair: failedChoiceRuns.length,
      stillNeedingRepairAtEnd: stillNeedingRepair,
      modelCalls: {
        total: requests.length,
        perChapter: attempted === 0 ? 0 : round(requests.length / attempted),
        extraPerChapterVsBaseline: null,
      },
      injected: { ...model.faultCounts, droppedForcedCalls: model.droppedForcedCalls },
      continuationRequests: continuations.length,
      stillWritingNotices,
      stories,
      met: { allCompleted: failed === 0 && stuck === 0, noDuplicates: duplicateChapters.size === 0 },
      engineLogLines: logger.lines.length,
      engineLog: logger.lines.slice(0, 20),
      durationSec: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    if (engine !== undefined) {
      // A stuck chapter job would keep close() waiting forever: give up after a while.
      const closed = await Promise.race([
        engine.close().then(() => "closed" as const),
        sleep(stuck > 0 ? 1000 : CLOSE_TIMEOUT_MS, "timeout" as const, { ref: false }),
      ]);
      if (closed === "timeout") progress(`${p.name}: the engine did not close in time`);
    }
    await bench.cleanup();
  }
}

async function main(): Promise<void> {
  const options: RunOptions = {
    chapters: Math.max(1, Math.floor(option("--chapters", "BENCH_FAULT_CHAPTERS", 100))),
    storyLength: Math.max(1, Math.floor(option("--story-length", "BENCH_FAULT_STORY_LENGTH", 10))),
    delayMs: option("--latency", "BENCH_FAULT_LATENCY_MS", 2),
    seed: Math.floor(option("--seed", "BENCH_FAULT_SEED", 1)),
    timeoutMs: option("--timeout", "BENCH_FAULT_TIMEOUT_S", 60) * 1000,
  };
  const started = performance.now();
  const results: ProfileResult[] = [];
  for (const profile of PROFILES) {
    progress(`${profile.name}: ${options.chapters} chapters`);
    results.push(await runProfile(profile, options));
  }
  const baseline = results.find((r) => r.profile === "baseline")?.modelCalls.perChapter;
  for (const r of results) {
    if (baseline !== undefined) r.modelCalls.extraPerChapterVsBaseline = round(r.modelCalls.perChapter - baseline);
  }
  const result = {
    benchmark: "faults",
    chaptersPerProfile: options.chapters,
    storyLength: options.storyLength,
    model: { delayMsBeforeEveryReply: options.delayMs, chunkDelayMs: 1, seed: options.seed },
    engine: {
      OPENAI_MAX_RETRIES: 4,
      PREPLAN: "off",
      retryBackoff: "engine default (250 ms base; 429 waits its retry-after-ms 50)",
    },
    targets: { completedShare: 1, duplicates: 0 },
    met: Object.fromEntries(results.map((r) => [r.profile, r.met])),
    profiles: results,
    node: process.version,
    durationSec: round((performance.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
