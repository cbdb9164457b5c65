/**
 * `npx tsx bench/telegram.ts`: many Telegram chats playing at once through the real engine and
 * the real Telegram adapter (telegraf + the outbound queue) against the in-process fake Bot API
 * server with Telegram's flood limits enforced (`enforceLimits`: 1 message call/s per chat,
 * 20/min per group, 30/s for the whole bot) and the fake OpenAI server streaming at a fixed rate.
 *
 * Private chats: `/start <scenario>`, then for chapters 2..N the first choice button.
 * Groups: the starter sends `/start <scenario>`; per later chapter three members vote (the
 * starter among them) and the starter presses "Close vote".
 *
 * Measured per chapter, from the fake server's call log (`calls[].at`, Date.now at arrival):
 * - first visible text: from the reader's action (the sendText / clickButton that asks for
 *   the chapter) to the first successful sendMessage after the chapter heading notice
 *   ("Chapter N"), i.e. the first message carrying prose (see bench/README.md);
 * - successful sendMessage/sendDocument/sendPhoto ("sends") and editMessage* ("edits") calls
 *   in that chat from the action up to and including the message offering the choices;
 * - every 429, with the limit that refused it.
 *
 * Prints ONE JSON document to stdout (progress on stderr) and exits 0 unless the benchmark
 * itself crashes. Options (flag or env): --private N / BENCH_TG_PRIVATE (50), --groups N /
 * BENCH_TG_GROUPS (10), --chapters N / BENCH_TG_CHAPTERS (3), --latency MS / BENCH_TG_LATENCY_MS
 * (20, fake model delay before every reply), --chunk-latency MS / BENCH_TG_CHUNK_LATENCY_MS
 * (15, pause between streamed chunks), --timeout S / BENCH_TG_TIMEOUT_S (120, per chapter).
 */
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { TelegramAdapter } from "../adapters/telegram/telegram-adapter.ts";
import { loadConfig } from "../src/app/config.ts";
import { createEngine, type Engine } from "../src/app/wiring.ts";
import {
  type BotMessageRecord,
  type CallRecord,
  type FakeChat,
  FakeTelegramServer,
  type FakeUser,
} from "../tests/fakes/fake-telegram-server.ts";
import { engineLogger, startBenchModel } from "./harness.ts";
import { type Distribution, distribution, option, peakPerSecond, round } from "./stats.ts";

export interface TelegramBenchOptions {
  /** Private chats, one reader each. Default 50. */
  privateChats?: number;
  /** Groups, three voting members each. Default 10. */
  groups?: number;
  /** Chapters each chat plays. Default 3. */
  chapters?: number;
  /** Fake model delay before every reply (ms). Default 20. */
  modelLatencyMs?: number;
  /** Fake model pause between streamed chunks (ms). Default 15. */
  chunkLatencyMs?: number;
  /** A chapter not offering its choices within this time is a failure (ms). Default 120 000. */
  chapterTimeoutMs?: number;
  /** Progress lines (default: stderr). */
  progress?: (message: string) => void;
  /** Called with the fake Bot API server after the run, before cleanup (to dig into `calls`). */
  inspect?: (tg: FakeTelegramServer) => void;
}

type ChatKind = "private" | "group";

export interface ChapterFailure {
  kind: ChatKind;
  chat: number;
  chapter: number;
  reason: string;
}

export interface RateLimitedCall {
  method: string;
  chat: number | null;
  kind: ChatKind | null;
  at: number;
  description: string;
  /** The emulator's limit(s) that the call exceeded, recomputed from the successful calls before it. */
  limits: ("perChat" | "groupPerMinute" | "global" | "injected")[];
}

export interface TelegramBenchResult {
  benchmark: "telegram";
  privateChats: number;
  groups: number;
  chaptersPerChat: number;
  requestedChapters: number;
  completedChapters: number;
  modelLatency: { delayMsPerRequest: number; chunkDelayMs: number };
  /** Reader's action -> first prose the reader sees, message or draft preview (rule in bench/README.md). */
  firstVisibleTextMs: { private: Distribution; group: Distribution; all: Distribution };
  /** Reader's action -> first real message (sendMessage) carrying prose. */
  firstProseMessageMs: { private: Distribution; group: Distribution };
  /** Reader's action -> the message offering the next choices. */
  chapterDoneMs: { private: Distribution; group: Distribution };
  /** Successful calls in the chat per chapter, from the action to the choices message (inclusive). */
  callsPerChapter: {
    sends: { mean: number; max: number };
    edits: { mean: number; max: number };
    private: { sends: Distribution; edits: Distribution };
    group: { sends: Distribution; edits: Distribution };
    /** Groups: edits of the ballot (live counts) between the ballot and the close, per chapter. */
    groupVoteEdits: Distribution;
    /** sendMessageDraft previews per chapter (not counted by flood control). */
    drafts: { private: Distribution; group: Distribution };
  };
  /** Every Bot API message call (sends + edits) the server accepted, and the busiest second seen. */
  messageCalls: { total: number; peakPerSecond: number; durationOfTrafficSec: number };
  rateLimited429: number;
  rateLimitedCalls: RateLimitedCall[];
  targets: { rateLimited429: 0 };
  meets: { zero429: boolean };
  /** How the first visible text was identified: right after the heading (the rule) or by the fallback. */
  firstTextRule: { opensChapter: number; fallback: number; missing: number };
  failures: ChapterFailure[];
  engineLog: string[];
  node: string;
  durationSec: number;
}

const SCENARIOS = [
  "a lighthouse keeper finds a message in a bottle",
  "a heist on a night train across the mountains",
  "a clockwork city under the sea loses its tide",
  "a haunted observatory where the stars move wrong",
  "a courier in a rainy harbour town carries a sealed letter",
];

/** The message calls Telegram's flood control counts (as the emulator does). */
const SEND_METHODS = new Set(["sendMessage", "sendDocument", "sendPhoto"]);
const EDIT_METHODS = new Set(["editMessageText", "editMessageReplyMarkup", "editMessageCaption"]);
const isMessageCall = (method: string) => SEND_METHODS.has(method) || EDIT_METHODS.has(method);

type Button = { text: string; callback_data?: string };
const buttonsOf = (markup: unknown): Button[] =>
  (markup as { inline_keyboard?: Button[][] } | undefined)?.inline_keyboard?.flat() ?? [];
export const buttons = (m: BotMessageRecord | undefined): Button[] => buttonsOf(m?.reply_markup);
/** A choices message: its buttons pick (`p|`) or vote (`v|`). */
const offersKind = (markup: unknown, kind: "p" | "v") =>
  buttonsOf(markup).some((b) => b.callback_data?.startsWith(`${kind}|`) === true);

/** One chapter as the driver saw it; analysed from the call log afterwards. */
interface ChapterRecord {
  kind: ChatKind;
  chat: number;
  chapter: number;
  /** Date.now() just before the action. */
  actionAt: number;
  /** `calls.length` just before the action: every call of this chapter has an index >= this. */
  actionIndex: number;
  /** Index of the successful sendMessage offering the choices. */
  offerIndex?: number;
  /** Groups: index of the close-vote click's action (the next chapter's action). */
  closeIndex?: number;
}

/**
 * Watches the server's call log (instead of each chat polling its messages) and resolves a
 * chat's waiter when a successful sendMessage offering choices of the wanted kind arrives.
 */
export class OfferWatcher {
  #cursor = 0;
  readonly #inFlight = new Set<number>();
  readonly #waiters = new Map<number, { kind: "p" | "v"; after: number; resolve: (index: number) => void }>();
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly tg: FakeTelegramServer) {
    this.#timer = setInterval(() => this.#tick(), 10);
  }

  /** The index of the next successful choices message in `chat` at index >= `after`. */
  next(chat: number, kind: "p" | "v", after: number, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(chat);
        reject(new Error(`no ${kind === "p" ? "choices" : "ballot"} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#waiters.set(chat, {
        kind,
        after,
        resolve: (index) => {
          clearTimeout(timer);
          this.#waiters.delete(chat);
          resolvePromise(index);
        },
      });
      // An offer that already arrived (the watcher may have passed it) counts too.
      const calls = this.tg.calls;
      for (let i = after; i < this.#cursor; i++) {
        const call = calls[i];
        if (call !== undefined && call.status !== 0) this.#check(i, call);
      }
    });
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const calls = this.tg.calls;
    for (const i of this.#inFlight) {
      const call = calls[i];
      if (call !== undefined && call.status !== 0) {
        this.#inFlight.delete(i);
        this.#check(i, call);
      }
    }
    for (; this.#cursor < calls.length; this.#cursor++) {
      const call = calls[this.#cursor];
      if (call === undefined) continue;
      if (call.status === 0) this.#inFlight.add(this.#cursor);
      else this.#check(this.#cursor, call);
    }
  }

  #check(index: number, call: CallRecord): void {
    if (call.method !== "sendMessage" || call.status !== 200 || call.chatId === undefined) return;
    const waiter = this.#waiters.get(call.chatId);
    if (waiter === undefined || index < waiter.after) return;
    if (offersKind(call.params.reply_markup, waiter.kind)) waiter.resolve(index);
  }
}

const defaultProgress = (message: string) => process.stderr.write(`[bench:telegram] ${message}\n`);

export async function runTelegramBench(options: TelegramBenchOptions = {}): Promise<TelegramBenchResult> {
  const privateChats = Math.max(0, Math.floor(options.privateChats ?? 50));
  const groups = Math.max(0, Math.floor(options.groups ?? 10));
  const chapters = Math.max(1, Math.floor(options.chapters ?? 3));
  const delayMs = options.modelLatencyMs ?? 20;
  const chunkDelayMs = options.chunkLatencyMs ?? 15;
  const timeoutMs = options.chapterTimeoutMs ?? 120_000;
  const progress = options.progress ?? defaultProgress;
  const started = performance.now();

  const bench = await startBenchModel("tg", { delayMs, chunkDelayMs });
  const tg = await FakeTelegramServer.start({ enforceLimits: true, privacyMode: true });
  const { lines: engineLog, log } = engineLogger(progress);
  let engine: Engine | undefined;
  let bot: TelegramAdapter | undefined;
  const watcher = new OfferWatcher(tg);
  try {
    const config = loadConfig({
      ...bench.env,
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_API_ROOT: tg.apiRoot,
      // Groups close their votes early ("Close vote"); a long window keeps the timer out of the way.
      VOTE_SECONDS: "3600",
    });
    engine = await createEngine(config, log);
    if (config.telegram === undefined) throw new Error("telegram not configured");
    bot = new TelegramAdapter(config.telegram, { ...engine, log });
    await bot.start();
    progress(`${privateChats} private chats and ${groups} groups, ${chapters} chapters each`);

    const records: ChapterRecord[] = [];
    const failures: ChapterFailure[] = [];
    let completed = 0;
    const total = (privateChats + groups) * chapters;
    const done = (r: ChapterRecord, index: number) => {
      r.offerIndex = index;
      completed++;
      if (completed % 20 === 0 || completed === total) {
        progress(`${completed}/${total} chapters, ${round((performance.now() - started) / 1000, 1)} s`);
      }
    };
    const fail = (r: ChapterRecord, error: unknown) =>
      failures.push({
        kind: r.kind,
        chat: r.chat,
        chapter: r.chapter,
        reason: error instanceof Error ? error.message : String(error),
      });
    const begin = (kind: ChatKind, chat: FakeChat, chapter: number): ChapterRecord => {
      const r: ChapterRecord = { kind, chat: chat.id, chapter, actionAt: Date.now(), actionIndex: tg.calls.length };
      records.push(r);
      return r;
    };
    const message = (chat: number, index: number): BotMessageRecord => {
      const text = tg.calls[index]?.params.text;
      // The newest message with that text and choice buttons: the one the call created.
      const found = tg.messages(chat).findLast((m) => m.text === text && buttons(m).length > 0);
      if (found === undefined) throw new Error(`choices message of call ${index} not found`);
      return found;
    };
    const click = async (chat: FakeChat, user: FakeUser, messageId: number, data: string | undefined) => {
      if (data === undefined) throw new Error("button not found");
      const answer = await tg.clickButton(chat, user, messageId, data, { timeoutMs });
      if (answer.show_alert === true) throw new Error(`button ${data.split("|")[0]}: ${answer.text ?? "alert"}`);
    };

    const playPrivate = async (i: number) => {
      const user = tg.user({ first_name: `Reader${i + 1}` });
      const chat = tg.chat("private", { user });
      let offerIndex = 0;
      for (let n = 1; n <= chapters; n++) {
        const r = begin("private", chat, n);
        try {
          let clicked: Promise<void> = Promise.resolve();
          if (n === 1) {
            tg.sendText(chat, user, `/start ${SCENARIOS[i % SCENARIOS.length]}`);
          } else {
            const offer = message(chat.id, offerIndex);
            const pick = buttons(offer).find((b) => b.callback_data?.startsWith("p|"));
            clicked = click(chat, user, offer.message_id, pick?.callback_data);
          }
          const [index] = await Promise.all([watcher.next(chat.id, "p", r.actionIndex, timeoutMs), clicked]);
          done(r, index);
          offerIndex = index;
        } catch (error) {
          fail(r, error);
          return;
        }
      }
    };

    const playGroup = async (i: number) => {
      const members = ["Ann", "Bea", "Cal"].map((name) => tg.user({ first_name: `${name}${i + 1}` }));
      const [starter] = members;
      if (starter === undefined) return;
      const chat = tg.chat("group", { title: `Book club ${i + 1}` });
      let r = begin("group", chat, 1);
      try {
        tg.sendText(chat, starter, `/start ${SCENARIOS[(i + 2) % SCENARIOS.length]}`);
        done(r, await watcher.next(chat.id, "v", r.actionIndex, timeoutMs));
        for (let n = 2; n <= chapters; n++) {
          const ballot = message(chat.id, r.offerIndex ?? 0);
          const votes = buttons(ballot).filter((b) => b.callback_data?.startsWith("v|"));
          // Three members vote at once (two for the first choice, one for the second)...
          await Promise.all(
            members.map((m, k) => click(chat, m, ballot.message_id, votes[k === 2 ? 1 : 0]?.callback_data)),
          );
          // ...and the starter closes the vote: that asks for the next chapter.
          const close = buttons(ballot).find((b) => b.callback_data?.startsWith("x|"))?.callback_data;
          const previous = r;
          r = begin("group", chat, n);
          previous.closeIndex = r.actionIndex;
          await Promise.all([
            watcher.next(chat.id, "v", r.actionIndex, timeoutMs),
            click(chat, starter, ballot.message_id, close),
          ]).then(([index]) => done(r, index));
        }
      } catch (error) {
        fail(r, error);
      }
    };

    await Promise.all([
      ...Array.from({ length: privateChats }, (_, i) => playPrivate(i)),
      ...Array.from({ length: groups }, (_, i) => playGroup(i)),
    ]);
    const playSec = (performance.now() - started) / 1000;
    progress(`played ${completed}/${total} chapters in ${round(playSec, 1)} s; ${tg.rateLimited} 429s`);
    options.inspect?.(tg);

    return analyse({
      tg,
      records,
      failures,
      engineLog,
      privateChats,
      groups,
      chapters,
      delayMs,
      chunkDelayMs,
      started,
    });
  } finally {
    watcher.close();
    await bot?.stop().catch((error: unknown) => progress(`adapter stop failed: ${String(error)}`));
    await engine?.close().catch((error: unknown) => progress(`engine close failed: ${String(error)}`));
    await tg.close();
    await bench.cleanup();
  }
}

interface AnalyseInput {
  tg: FakeTelegramServer;
  records: ChapterRecord[];
  failures: ChapterFailure[];
  engineLog: string[];
  privateChats: number;
  groups: number;
  chapters: number;
  delayMs: number;
  chunkDelayMs: number;
  started: number;
}

/** Per-chapter numbers and 429s, from the server's call log. */
function analyse(input: AnalyseInput): TelegramBenchResult {
  const { tg, records } = input;
  const calls = tg.calls;
  const kinds = new Map(records.map((r) => [r.chat, r.kind]));
  const byChat = new Map<number, number[]>();
  calls.forEach((call, index) => {
    if (call.chatId === undefined) return;
    const list = byChat.get(call.chatId) ?? [];
    list.push(index);
    byChat.set(call.chatId, list);
  });

  const firstText: Record<ChatKind, number[]> = { private: [], group: [] };
  const doneMs: Record<ChatKind, number[]> = { private: [], group: [] };
  const sends: Record<ChatKind, number[]> = { private: [], group: [] };
  const edits: Record<ChatKind, number[]> = { private: [], group: [] };
  const drafts: Record<ChatKind, number[]> = { private: [], group: [] };
  const firstMessage: Record<ChatKind, number[]> = { private: [], group: [] };
  const voteEdits: number[] = [];
  const rule = { opensChapter: 0, fallback: 0, missing: 0 };

  for (const r of records) {
    if (r.offerIndex === undefined) continue;
    const offerIndex = r.offerIndex;
    const offer = calls[offerIndex];
    if (offer === undefined) continue;
    const window = (byChat.get(r.chat) ?? [])
      .filter((i) => i >= r.actionIndex && i <= offerIndex)
      .map((i) => calls[i])
      .filter((c): c is CallRecord => c !== undefined && c.status === 200);
    sends[r.kind].push(window.filter((c) => SEND_METHODS.has(c.method)).length);
    edits[r.kind].push(window.filter((c) => EDIT_METHODS.has(c.method)).length);
    doneMs[r.kind].push(offer.at - r.actionAt);

    drafts[r.kind].push(window.filter((c) => c.method === "sendMessageDraft").length);
    // First visible text: the first message or draft preview that opens the chapter
    // ("Chapter N" heads the prose's first message).
    const shown = window.filter((c) => c !== offer && (c.method === "sendMessage" || c.method === "sendMessageDraft"));
    let visible = shown.find((c) => opensChapter(c.params.text, r.chapter));
    if (visible !== undefined) {
      rule.opensChapter++;
    } else {
      // Fallback: the first draft, or plain message that is not one of the known notices.
      visible = shown.find(
        (c) => c.method === "sendMessageDraft" || (c.params.reply_markup === undefined && !isNotice(c.params.text)),
      );
      if (visible === undefined) rule.missing++;
      else rule.fallback++;
    }
    if (visible !== undefined) firstText[r.kind].push(visible.at - r.actionAt);
    const prose = shown.find((c) => c.method === "sendMessage" && opensChapter(c.params.text, r.chapter));
    if (prose !== undefined) firstMessage[r.kind].push(prose.at - r.actionAt);

    if (r.kind === "group" && r.closeIndex !== undefined) {
      const closeIndex = r.closeIndex;
      voteEdits.push(
        (byChat.get(r.chat) ?? []).filter(
          (i) =>
            i > offerIndex && i < closeIndex && EDIT_METHODS.has(calls[i]?.method ?? "") && calls[i]?.status === 200,
        ).length,
      );
    }
  }

  const accepted = calls.filter((c) => c.status === 200 && isMessageCall(c.method));
  const rateLimitedCalls = calls.filter((c) => c.status === 429).map((c) => classify(c, accepted, kinds));
  const allSends = [...sends.private, ...sends.group];
  const allEdits = [...edits.private, ...edits.group];
  const meanMax = (values: number[]) => {
    const d = distribution(values);
    return { mean: d.mean, max: d.max };
  };
  const completedChapters = records.filter((r) => r.offerIndex !== undefined).length;
  const first = accepted[0]?.at ?? 0;
  const last = accepted.at(-1)?.at ?? first;

  return {
    benchmark: "telegram",
    privateChats: input.privateChats,
    groups: input.groups,
    chaptersPerChat: input.chapters,
    requestedChapters: (input.privateChats + input.groups) * input.chapters,
    completedChapters,
    modelLatency: { delayMsPerRequest: input.delayMs, chunkDelayMs: input.chunkDelayMs },
    firstVisibleTextMs: {
      private: distribution(firstText.private),
      group: distribution(firstText.group),
      all: distribution([...firstText.private, ...firstText.group]),
    },
    firstProseMessageMs: { private: distribution(firstMessage.private), group: distribution(firstMessage.group) },
    chapterDoneMs: { private: distribution(doneMs.private), group: distribution(doneMs.group) },
    callsPerChapter: {
      sends: meanMax(allSends),
      edits: meanMax(allEdits),
      private: { sends: distribution(sends.private), edits: distribution(edits.private) },
      group: { sends: distribution(sends.group), edits: distribution(edits.group) },
      groupVoteEdits: distribution(voteEdits),
      drafts: { private: distribution(drafts.private), group: distribution(drafts.group) },
    },
    messageCalls: {
      total: accepted.length,
      peakPerSecond: peakPerSecond(accepted.map((c) => c.at)),
      durationOfTrafficSec: round((last - first) / 1000, 1),
    },
    rateLimited429: Math.max(tg.rateLimited, rateLimitedCalls.length),
    rateLimitedCalls,
    targets: { rateLimited429: 0 },
    meets: { zero429: tg.rateLimited === 0 && rateLimitedCalls.length === 0 },
    firstTextRule: rule,
    failures: input.failures,
    engineLog: input.engineLog,
    node: process.version,
    durationSec: round((performance.now() - input.started) / 1000, 1),
  };
}

/** The first message of a chapter's prose starts with its heading line "Chapter N". */
export function opensChapter(text: unknown, chapter: number): boolean {
  return typeof text === "string" && text.startsWith(`Chapter ${chapter}\n`);
}

/** Notices a chapter may be preceded by (English locale): never counted as prose. */
export function isNotice(text: unknown): boolean {
  if (typeof text !== "string") return true;
  return (
    text.startsWith("Writing your story") ||
    text.startsWith("The readers chose") ||
    text.startsWith("Tie between") ||
    /\nCast: /.test(text)
  );
}

/** Which of the emulator's limits a 429 hit, recomputed from the calls it had accepted before. */
function classify(call: CallRecord, accepted: CallRecord[], kinds: Map<number, ChatKind>): RateLimitedCall {
  const limits: RateLimitedCall["limits"] = [];
  const t = call.at;
  const before = accepted.filter((c) => c.at <= t && c.at > t - 60_000 && c !== call);
  const chat = call.chatId;
  if (chat !== undefined) {
    const inChat = before.filter((c) => c.chatId === chat);
    const lastInChat = inChat.at(-1);
    if (lastInChat !== undefined && t - lastInChat.at < 1000) limits.push("perChat");
    if (chat < 0 && inChat.length >= 20) limits.push("groupPerMinute");
  }
  if (before.filter((c) => c.at > t - 1000).length >= 30) limits.push("global");
  if (limits.length === 0) limits.push("injected");
  return {
    method: call.method,
    chat: chat ?? null,
    kind: chat === undefined ? null : (kinds.get(chat) ?? (chat < 0 ? "group" : "private")),
    at: t,
    description: call.description ?? "",
    limits,
  };
}

async function main(): Promise<void> {
  const result = await runTelegramBench({
    privateChats: option("--private", "BENCH_TG_PRIVATE", 50),
    groups: option("--groups", "BENCH_TG_GROUPS", 10),
    chapters: option("--chapters", "BENCH_TG_CHAPTERS", 3),
    modelLatencyMs: option("--latency", "BENCH_TG_LATENCY_MS", 20),
    chunkLatencyMs: option("--chunk-latency", "BENCH_TG_CHUNK_LATENCY_MS", 15),
    chapterTimeoutMs: option("--timeout", "BENCH_TG_TIMEOUT_S", 120) * 1000,
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) await main();
