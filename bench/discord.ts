/**
 * `npx tsx bench/discord.ts`: many stories played at once, each in its own public thread,
 * through the real engine and the real Discord adapter (discord.js over REST + gateway) against
 * the in-process fake Discord with Discord-like per-route limits enforced (per channel, fixed
 * windows: message create 5 per 5 s, message edit 5 per 5 s; interaction callbacks unlimited)
 * and the fake OpenAI server streaming at a fixed rate.
 *
 * Each story: one member runs /start in a text channel (the modal comes back, it is submitted
 * with the scenario), the bot opens a thread and writes chapter 1 ending in a ballot. For every
 * later chapter three members vote at once (two for choice 1, one for choice 2), each waits for
 * the answer to their press (the ballot redrawn with the live count, or "Your vote: …" when the
 * bot answered late), and the starter presses "Close vote". Several stories share a text channel.
 *
 * Measured per chapter, from the fake's REST call log (`calls[].at`, Date.now at arrival):
 * - vote close -> first text: from the close click to the first successful message create in
 *   the thread whose content starts with "Chapter N\n" (the prose's first message);
 * - REST calls in the chapter's window (action up to and including the new ballot): sends,
 *   edits and other calls on the thread, plus the interaction calls of the chapter's action;
 * - every 429, by route; the busiest second of requests that count against Discord's global
 *   limit (50/s, not enforced by the fake; interaction endpoints are exempt);
 * - requests per voted round: from the ballot's message create to the next chapter's first
 *   message create, the thread's calls and the votes' and close's interaction calls, split
 *   into the bot's budget (all but callbacks) and interaction callbacks.
 *
 * Prints ONE JSON document to stdout (progress on stderr) and exits 0 unless the benchmark
 * itself crashes. Options (flag or env): --stories N / BENCH_DC_STORIES (200), --chapters N /
 * BENCH_DC_CHAPTERS (2), --channels N / BENCH_DC_CHANNELS (20, text channels, 4 per guild),
 * --latency MS / BENCH_DC_LATENCY_MS (20, fake model delay before every reply), --chunk-latency MS
 * / BENCH_DC_CHUNK_LATENCY_MS (15, pause between streamed chunks), --timeout S /
 * BENCH_DC_TIMEOUT_S (180, per chapter).
 */
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { DiscordAdapter } from "../adapters/discord/discord-adapter.ts";
import { loadConfig } from "../src/app/config.ts";
import { createEngine, type Engine } from "../src/app/wiring.ts";
import {
  countsAgainstGlobalLimit,
  type FakeChannel,
  FakeDiscordServer,
  type FakeGuild,
  type FakeMessage,
  type FakeUser,
  type InteractionHandle,
  type RateLimitRule,
  type RestCall,
} from "../tests/fakes/fake-discord-server.ts";
import { engineLogger, startBenchModel } from "./harness.ts";
import { type Distribution, distribution, option, peakPerSecond, round } from "./stats.ts";

export interface DiscordBenchOptions {
  /** Stories, each in its own thread with three members. Default 200. */
  stories?: number;
  /** Chapters each story plays: the opening chapter, then voted ones. Default 2. */
  chapters?: number;
  /** Text channels the stories are spread over (4 per guild). Default 20. */
  channels?: number;
  /** Fake model delay before every reply (ms). Default 20. */
  modelLatencyMs?: number;
  /** Fake model pause between streamed chunks (ms). Default 15. */
  chunkLatencyMs?: number;
  /** A chapter not offering its ballot within this time is a failure (ms). Default 180 000. */
  chapterTimeoutMs?: number;
  /** Per-route limits the fake enforces (default: `DISCORD_RATE_LIMITS`). */
  rateLimits?: RateLimitRule[];
  /** Progress lines (default: stderr). */
  progress?: (message: string) => void;
  /** Called with the fake Discord after the run, before cleanup (to dig into `calls`). */
  inspect?: (discord: FakeDiscordServer) => void;
}

/** Discord-like per-route limits, counted per channel (a thread is a channel). */
export const DISCORD_RATE_LIMITS: RateLimitRule[] = [
  { route: "POST /channels/:channel/messages", limit: 5, windowMs: 5000 },
  { route: "PATCH /channels/:channel/messages/:message", limit: 5, windowMs: 5000 },
];

/** Discord's global limit for a bot (interaction endpoints exempt); the fake does not enforce it. */
const GLOBAL_LIMIT_PER_SECOND = 50;

export interface ChapterFailure {
  story: number;
  chapter: number;
  reason: string;
}

type MeanMax = { mean: number; max: number };

export interface DiscordBenchResult {
  benchmark: "discord";
  stories: number;
  chaptersPerStory: number;
  channels: number;
  guilds: number;
  requestedChapters: number;
  completedChapters: number;
  modelLatency: { delayMsPerRequest: number; chunkDelayMs: number };
  rateLimits: RateLimitRule[];
  /**
   * Close click -> the first prose readers can read (voted chapters): the first message create or
   * edit in the thread whose content starts with "Chapter N\n" and has text after that heading.
   */
  voteCloseToFirstTextMs: Distribution;
  /** Close click -> the first message create starting with "Chapter N\n", even a bare heading. */
  voteCloseToHeadingMs: Distribution;
  /** Close click -> the next ballot (voted chapters). */
  voteCloseToBallotMs: Distribution;
  /** Modal submit -> first prose / "Chapter 1" heading / first ballot (opening chapters). */
  startToFirstTextMs: Distribution;
  startToHeadingMs: Distribution;
  startToBallotMs: Distribution;
  /** Calls per chapter, from the action to the new ballot (inclusive); rule in bench/README.md. */
  restCallsPerChapter: {
    /** Message creates in the thread. */
    sends: MeanMax;
    /** Message edits in the thread. */
    edits: MeanMax;
    /** Other calls on the thread (typing, channel edits...) and, for chapter 1, the thread creation. */
    other: MeanMax;
    /** Interaction callbacks and webhook (interaction token) calls of the chapter's action. */
    interaction: MeanMax;
    /** sends + edits + other + interaction. */
    total: MeanMax;
    opening: { sends: Distribution; edits: Distribution; total: Distribution };
    voted: { sends: Distribution; edits: Distribution; total: Distribution };
    /** Ballot edits (live counts) between the ballot and the close click. */
    ballotEditsWhileVoting: Distribution;
  };
  /**
   * One voted round: from the ballot's message create to the next chapter's first message create
   * (three votes and the close), the thread's calls and those of the round's interactions.
   * `budget` counts against the bot's global limit (everything but interaction callbacks, as
   * @discordjs/rest counts: `editReply` webhooks included); `callbacks` are exempt.
   */
  requestsPerVotedRound: { budget: Distribution; callbacks: Distribution };
  rateLimited429: { total: number; byRoute: Record<string, number> };
  /**
   * Requests counting against Discord's global limit (all but interaction endpoints): the busiest
   * sliding second, and how many a 50/s fixed-window limiter (windows opened by the first request
   * after the previous one ended, as discord.js counts) would have refused. `peakAllRoutes`
   * includes interaction callbacks and webhooks.
   */
  requestsPerSecond: {
    globalLimit: number;
    peakSlidingSecond: number;
    overGlobalLimitFixedWindow: number;
    peakAllRoutes: number;
    totalRequests: number;
  };
  targets: { rateLimited429: 0; globalPeakPerSecond: number };
  meets: { zero429: boolean; underGlobalLimit: boolean };
  /**
   * Where the first prose was found: in the chapter's first message, in a later edit of it (the
   * first message was the bare heading), or not at all; `headingOnlyFirstMessage` counts bare headings.
   */
  firstTextRule: { inFirstMessage: number; inEdit: number; missing: number; headingOnlyFirstMessage: number };
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

const CHANNELS_PER_GUILD = 4;
const MESSAGES_ROUTE = "/channels/:channel/messages";
const MESSAGE_ROUTE = "/channels/:channel/messages/:message";

type Button = { custom_id?: string; label?: string };
const buttonsOf = (components: unknown): Button[] =>
  Array.isArray(components)
    ? (components as { components?: Button[] }[]).flatMap((row) =>
        Array.isArray(row.components) ? row.components : [],
      )
    : [];
const bodyOf = (call: RestCall): { content?: unknown; components?: unknown; name?: unknown } =>
  typeof call.body === "object" && call.body !== null ? (call.body as Record<string, unknown>) : {};
const isBallotCall = (call: RestCall) =>
  buttonsOf(bodyOf(call).components).some((b) => b.custom_id?.startsWith("ink:v:") === true);
const ok = (call: RestCall) => call.status >= 200 && call.status < 300;
/** The thread (or channel) a `/channels/<id>/...` call is about. */
const channelOf = (call: RestCall): string | undefined => /^\/channels\/(\d+)/.exec(call.path)?.[1];
/** The interaction token of a callback or webhook call. */
const tokenOf = (call: RestCall): string | undefined =>
  /^\/interactions\/[^/]+\/([^/]+)\/callback$/.exec(call.path)?.[1] ??
  /^\/webhooks\/[^/]+\/([^/]+)/.exec(call.path)?.[1];
const isInteractionCall = (call: RestCall) =>
  call.path.startsWith("/interactions/") || call.path.startsWith("/webhooks/");

/** One chapter as the driver saw it; analysed from the call log afterwards. */
interface ChapterRecord {
  story: number;
  chapter: number;
  thread?: string;
  /** Parent channel and thread name (the opening chapter creates its thread there). */
  parent: string;
  threadName: string;
  /** Date.now() just before the action (modal submit or close click). */
  actionAt: number;
  /** Interaction tokens of the chapter's action(s). */
  tokens: string[];
  /** Voted chapters: interaction tokens of the votes and the close that asked for it. */
  roundTokens: string[];
  /** The successful message create of the new ballot. */
  offer?: RestCall;
  /** Voted chapters: when the ballot the close click closed was offered. */
  previousOfferAt?: number;
}

/**
 * Watches the fake's call log (instead of every story polling) and resolves a waiter when a
 * successful call with its key arrives: `thread:<name>` for a thread creation, `ballot:<channel>`
 * for a message create carrying vote buttons. Calls are appended when answered.
 */
class CallWatcher {
  #cursor = 0;
  readonly #waiters = new Map<string, { after: number; resolve: (call: RestCall) => void }>();
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly discord: FakeDiscordServer) {
    this.#timer = setInterval(() => this.#tick(), 10);
  }

  /** The next matching call at index >= `after` (`calls.length` taken before the action). */
  next(key: string, after: number, timeoutMs: number, what: string): Promise<RestCall> {
    return new Promise<RestCall>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(key);
        reject(new Error(`no ${what} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#waiters.set(key, {
        after,
        resolve: (call) => {
          clearTimeout(timer);
          this.#waiters.delete(key);
          resolvePromise(call);
        },
      });
      const calls = this.discord.calls;
      for (let i = after; i < this.#cursor; i++) {
        const call = calls[i];
        if (call !== undefined) this.#check(i, call);
      }
    });
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const calls = this.discord.calls;
    for (; this.#cursor < calls.length; this.#cursor++) {
      const call = calls[this.#cursor];
      if (call !== undefined) this.#check(this.#cursor, call);
    }
  }

  #check(index: number, call: RestCall): void {
    if (call.method !== "POST" || !ok(call)) return;
    let key: string | undefined;
    if (call.route === "/channels/:channel/threads") key = `thread:${String(bodyOf(call).name)}`;
    else if (call.route === MESSAGES_ROUTE && isBallotCall(call)) key = `ballot:${channelOf(call)}`;
    if (key === undefined) return;
    const waiter = this.#waiters.get(key);
    if (waiter !== undefined && index >= waiter.after) waiter.resolve(call);
  }
}

const defaultProgress = (message: string) => process.stderr.write(`[bench:discord] ${message}\n`);

/** Polls `check` every 25 ms until it returns a value. */
async function poll<T>(check: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function runDiscordBench(options: DiscordBenchOptions = {}): Promise<DiscordBenchResult> {
  const stories = Math.max(0, Math.floor(options.stories ?? 200));
  const chapters = Math.max(1, Math.floor(options.chapters ?? 2));
  const channelCount = Math.max(1, Math.min(Math.max(1, stories), Math.floor(options.channels ?? 20)));
  const delayMs = options.modelLatencyMs ?? 20;
  const chunkDelayMs = options.chunkLatencyMs ?? 15;
  const timeoutMs = options.chapterTimeoutMs ?? 180_000;
  const rateLimits = options.rateLimits ?? DISCORD_RATE_LIMITS;
  const progress = options.progress ?? defaultProgress;
  const started = performance.now();

  const bench = await startBenchModel("dc", { delayMs, chunkDelayMs });
  const discord = await FakeDiscordServer.start({ rateLimits });
  const { lines: engineLog, log } = engineLogger(progress);
  let engine: Engine | undefined;
  let bot: DiscordAdapter | undefined;
  const watcher = new CallWatcher(discord);
  try {
    const config = loadConfig({
      ...bench.env,
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_API_ROOT: discord.apiRoot,
      // Votes are closed with "Close vote"; a long window keeps the ballot timer out of the way.
      VOTE_SECONDS: "3600",
    });
    engine = await createEngine(config, log);
    if (config.discord === undefined) throw new Error("discord not configured");
    bot = new DiscordAdapter(config.discord, { ...engine, log });
    await bot.start();

    // The world: guilds of 4 text channels, three members per story.
    const channels: { guild: FakeGuild; channel: FakeChannel }[] = [];
    let guild: FakeGuild | undefined;
    for (let c = 0; c < channelCount; c++) {
      if (guild === undefined || c % CHANNELS_PER_GUILD === 0)
        guild = discord.guild({ name: `Book Club ${Math.floor(c / CHANNELS_PER_GUILD) + 1}` });
      channels.push({ guild, channel: discord.textChannel(guild, { name: `stories-${c + 1}` }) });
    }
    const guilds = new Set(channels.map((c) => c.guild.id)).size;
    // Let discord.js see the guilds and channels (GUILD_CREATE / CHANNEL_CREATE over the gateway).
    await poll(
      () => channels.every(({ channel }) => bot?.client.channels.cache.has(channel.id)),
      10_000,
      "channels in the client cache",
    );
    progress(`${stories} stories in ${channelCount} channels (${guilds} guilds), ${chapters} chapters each`);

    const records: ChapterRecord[] = [];
    const failures: ChapterFailure[] = [];
    let completed = 0;
    const total = stories * chapters;
    const done = (r: ChapterRecord, offer: RestCall) => {
      r.offer = offer;
      completed++;
      if (completed % 50 === 0 || completed === total) {
        progress(`${completed}/${total} chapters, ${round((performance.now() - started) / 1000, 1)} s`);
      }
    };
    const reply = async (handle: InteractionHandle, what: string): Promise<void> => {
      const cb = await handle.response(timeoutMs);
      if (cb.type !== 5) throw new Error(`${what}: callback type ${cb.type}, expected a deferred reply`);
    };
    /**
     * A press on the ballot: answered by redrawing it (update, type 7); or with an ephemeral
     * reply (type 4: a refusal, or the answer when the ballot had not yet learnt its message,
     * a press within milliseconds of the offer); or deferred (type 5) when the bot was slow,
     * then answered in the deferred reply.
     */
    const pressed = async (handle: InteractionHandle, what: string, answer: RegExp): Promise<void> => {
      const cb = await handle.response(timeoutMs);
      if (cb.type === 7) return;
      if (cb.type !== 4 && cb.type !== 5) throw new Error(`${what}: callback type ${cb.type}`);
      const text =
        cb.type === 4
          ? String(cb.data?.content ?? "")
          : await poll(() => handle.original()?.content || undefined, timeoutMs, `${what} answer`);
      if (!answer.test(text)) throw new Error(`${what} refused: ${text}`);
    };

    const play = async (i: number) => {
      const home = channels[i % channels.length];
      if (home === undefined) return;
      const { guild: g, channel } = home;
      const members = ["ann", "bea", "cal"].map((name) => {
        const u = discord.user({ username: `${name}${i + 1}` });
        discord.addMember(g, u);
        return u;
      }) as [FakeUser, FakeUser, FakeUser];
      const [starter] = members;
      const scenario = `${SCENARIOS[i % SCENARIOS.length]}, story ${i + 1}`;
      let r: ChapterRecord = {
        story: i + 1,
        chapter: 1,
        parent: channel.id,
        threadName: scenario,
        actionAt: Date.now(),
        tokens: [],
        roundTokens: [],
      };
      records.push(r);
      try {
        // /start -> modal -> submit: the submit is the opening chapter's action.
        const command = discord.slashCommand(g, channel, starter, "start", []);
        const modal = await command.response(timeoutMs);
        if (modal.type !== 9) throw new Error(`/start answered with callback type ${modal.type}, expected a modal`);
        const after = discord.calls.length;
        r.actionAt = Date.now();
        const submit = discord.submitModal(g, channel, starter, String(modal.data?.custom_id), { scenario });
        r.tokens.push(command.token, submit.token);
        const created = watcher.next(`thread:${scenario}`, after, timeoutMs, "thread");
        await Promise.all([reply(submit, "modal submit"), created]);
        const thread = await poll(
          () => discord.threads(channel).find((t) => t.name === scenario),
          timeoutMs,
          "thread in the fake",
        );
        r.thread = thread.id;
        done(r, await watcher.next(`ballot:${thread.id}`, after, timeoutMs, "ballot"));

        for (let n = 2; n <= chapters; n++) {
          const ballot = latestBallot(discord, thread.id);
          if (ballot === undefined) throw new Error("ballot message not found");
          const buttons = buttonsOf(ballot.components);
          const votes = buttons.filter((b) => b.custom_id?.startsWith("ink:v:"));
          const close = buttons.find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id;
          if (close === undefined || votes.length < 2) throw new Error("ballot without votes or close button");
          // Three members vote at once (two for the first choice, one for the second)...
          const roundTokens: string[] = [];
          await Promise.all(
            members.map(async (m, k) => {
              const handle = discord.clickButton(g, thread, m, ballot.id, votes[k === 2 ? 1 : 0]?.custom_id ?? "");
              roundTokens.push(handle.token);
              await pressed(handle, "vote", /^Your vote:/);
            }),
          );
          // ...and the starter closes the vote: that asks for the next chapter.
          const previousOfferAt = r.offer?.at;
          r = {
            story: i + 1,
            chapter: n,
            thread: thread.id,
            parent: channel.id,
            threadName: scenario,
            actionAt: 0,
            tokens: [],
            roundTokens,
          };
          if (previousOfferAt !== undefined) r.previousOfferAt = previousOfferAt;
          records.push(r);
          const closeAfter = discord.calls.length;
          r.actionAt = Date.now();
          const closing = discord.clickButton(g, thread, starter, ballot.id, close);
          r.tokens.push(closing.token);
          roundTokens.push(closing.token);
          const next = watcher.next(`ballot:${thread.id}`, closeAfter, timeoutMs, "next ballot").catch((error) => {
            const said = closing.original()?.content;
            throw said ? new Error(`${(error as Error).message} (close answered: ${said})`) : error;
          });
          const [offer] = await Promise.all([next, pressed(closing, "close", /^Chosen:/)]);
          done(r, offer);
        }
      } catch (error) {
        failures.push({
          story: r.story,
          chapter: r.chapter,
          reason: error instanceof Error ? error.message : String(error),
        });
      }
    };

    await Promise.all(Array.from({ length: stories }, (_, i) => play(i)));
    const playSec = (performance.now() - started) / 1000;
    const limited = discord.calls.filter((c) => c.status === 429).length;
    progress(`played ${completed}/${total} chapters in ${round(playSec, 1)} s; ${limited} 429s`);
    options.inspect?.(discord);

    return analyse({
      calls: discord.calls,
      records,
      failures,
      engineLog,
      stories,
      chapters,
      channels: channelCount,
      guilds,
      delayMs,
      chunkDelayMs,
      rateLimits,
      started,
    });
  } finally {
    watcher.close();
    await bot?.stop().catch((error: unknown) => progress(`adapter stop failed: ${String(error)}`));
    await engine?.close().catch((error: unknown) => progress(`engine close failed: ${String(error)}`));
    await discord.close();
    await bench.cleanup();
  }
}

/** The newest live bot message in the thread carrying vote buttons. */
function latestBallot(discord: FakeDiscordServer, threadId: string): FakeMessage | undefined {
  return discord
    .messages(threadId)
    .filter((m) => !m.deleted)
    .findLast((m) => buttonsOf(m.components).some((b) => b.custom_id?.startsWith("ink:v:") === true));
}

interface AnalyseInput {
  calls: RestCall[];
  records: ChapterRecord[];
  failures: ChapterFailure[];
  engineLog: string[];
  stories: number;
  chapters: number;
  channels: number;
  guilds: number;
  delayMs: number;
  chunkDelayMs: number;
  rateLimits: RateLimitRule[];
  started: number;
}

/** Per-chapter numbers and 429s, from the fake's call log. */
function analyse(input: AnalyseInput): DiscordBenchResult {
  const { calls, records } = input;
  const byChannel = new Map<string, RestCall[]>();
  const byToken = new Map<string, RestCall[]>();
  for (const call of calls) {
    const channel = channelOf(call);
    if (channel !== undefined) push(byChannel, channel, call);
    const token = tokenOf(call);
    if (token !== undefined) push(byToken, token, call);
  }

  const firstText = { opening: [] as number[], voted: [] as number[] };
  const heading = { opening: [] as number[], voted: [] as number[] };
  const ballotMs = { opening: [] as number[], voted: [] as number[] };
  const counts = {
    sends: [] as number[],
    edits: [] as number[],
    other: [] as number[],
    interaction: [] as number[],
    total: [] as number[],
  };
  const split = {
    opening: { sends: [] as number[], edits: [] as number[], total: [] as number[] },
    voted: { sends: [] as number[], edits: [] as number[], total: [] as number[] },
  };
  const ballotEdits: number[] = [];
  const rounds = { budget: [] as number[], callbacks: [] as number[] };
  const rule = { inFirstMessage: 0, inEdit: 0, missing: 0, headingOnlyFirstMessage: 0 };

  for (const r of records) {
    const offer = r.offer;
    if (offer === undefined || r.thread === undefined) continue;
    const kind = r.chapter === 1 ? "opening" : "voted";
    const inWindow = (c: RestCall) => c.at >= r.actionAt && c.at <= offer.at;
    const window = (byChannel.get(r.thread) ?? []).filter(inWindow);
    const sends = window.filter((c) => c.method === "POST" && c.route === MESSAGES_ROUTE).length;
    const edits = window.filter((c) => c.method === "PATCH" && c.route === MESSAGE_ROUTE).length;
    let other = window.length - sends - edits;
    if (r.chapter === 1) {
      // The thread's creation, on the parent channel.
      other += (byChannel.get(r.parent) ?? []).filter(
        (c) => inWindow(c) && c.route === "/channels/:channel/threads" && bodyOf(c).name === r.threadName,
      ).length;
    }
    const interaction = r.tokens.flatMap((token) => (byToken.get(token) ?? []).filter(inWindow)).length;
    const all = sends + edits + other + interaction;
    counts.sends.push(sends);
    counts.edits.push(edits);
    counts.other.push(other);
    counts.interaction.push(interaction);
    counts.total.push(all);
    split[kind].sends.push(sends);
    split[kind].edits.push(edits);
    split[kind].total.push(all);
    ballotMs[kind].push(offer.at - r.actionAt);

    // Calls are logged when answered; order the window by arrival for "first".
    const byArrival = [...window].sort((a, b) => a.at - b.at);
    const head = `Chapter ${r.chapter}\n`;
    const contentOf = (c: RestCall) => {
      const content = bodyOf(c).content;
      return ok(c) && typeof content === "string" && content.startsWith(head) ? content : undefined;
    };
    const hasProse = (c: RestCall) => (contentOf(c)?.slice(head.length).trim().length ?? 0) > 0;
    const headingCall = byArrival.find((c) => c.method === "POST" && c.route === MESSAGES_ROUTE && contentOf(c));
    if (headingCall !== undefined) heading[kind].push(headingCall.at - r.actionAt);
    if (headingCall !== undefined && !hasProse(headingCall)) rule.headingOnlyFirstMessage++;
    const prose = byArrival.find((c) => (c.route === MESSAGES_ROUTE || c.route === MESSAGE_ROUTE) && hasProse(c));
    if (prose === undefined) rule.missing++;
    else {
      if (prose.method === "POST") rule.inFirstMessage++;
      else rule.inEdit++;
      firstText[kind].push(prose.at - r.actionAt);
    }

    if (r.previousOfferAt !== undefined && headingCall !== undefined) {
      const [from, to] = [r.previousOfferAt, headingCall.at];
      const calls = [
        ...(byChannel.get(r.thread) ?? []).filter((c) => c.at > from && c.at < to),
        ...r.roundTokens.flatMap((token) => byToken.get(token) ?? []).filter((c) => c.at > from && c.at < to),
      ];
      rounds.budget.push(calls.filter(countsAgainstGlobalLimit).length);
      rounds.callbacks.push(calls.filter((c) => !countsAgainstGlobalLimit(c)).length);
    }
    if (r.previousOfferAt !== undefined) {
      const from = r.previousOfferAt;
      ballotEdits.push(
        (byChannel.get(r.thread) ?? []).filter(
          (c) => c.at > from && c.at < r.actionAt && c.method === "PATCH" && c.route === MESSAGE_ROUTE,
        ).length,
      );
    }
  }

  const rateLimited = calls.filter((c) => c.status === 429);
  const byRoute: Record<string, number> = {};
  for (const c of rateLimited) {
    const key = `${c.method} ${c.route}`;
    byRoute[key] = (byRoute[key] ?? 0) + 1;
  }
  const globalCalls = calls.filter((c) => !isInteractionCall(c));
  const globalTimes = globalCalls.map((c) => c.at);
  const peak = peakPerSecond(globalTimes);
  const meanMax = (values: number[]) => {
    const d = distribution(values);
    return { mean: d.mean, max: d.max };
  };
  const three = (v: { sends: number[]; edits: number[]; total: number[] }) => ({
    sends: distribution(v.sends),
    edits: distribution(v.edits),
    total: distribution(v.total),
  });

  return {
    benchmark: "discord",
    stories: input.stories,
    chaptersPerStory: input.chapters,
    channels: input.channels,
    guilds: input.guilds,
    requestedChapters: input.stories * input.chapters,
    completedChapters: records.filter((r) => r.offer !== undefined).length,
    modelLatency: { delayMsPerRequest: input.delayMs, chunkDelayMs: input.chunkDelayMs },
    rateLimits: input.rateLimits,
    voteCloseToFirstTextMs: distribution(firstText.voted),
    voteCloseToHeadingMs: distribution(heading.voted),
    voteCloseToBallotMs: distribution(ballotMs.voted),
    startToFirstTextMs: distribution(firstText.opening),
    startToHeadingMs: distribution(heading.opening),
    startToBallotMs: distribution(ballotMs.opening),
    restCallsPerChapter: {
      sends: meanMax(counts.sends),
      edits: meanMax(counts.edits),
      other: meanMax(counts.other),
      interaction: meanMax(counts.interaction),
      total: meanMax(counts.total),
      opening: three(split.opening),
      voted: three(split.voted),
      ballotEditsWhileVoting: distribution(ballotEdits),
    },
    requestsPerVotedRound: { budget: distribution(rounds.budget), callbacks: distribution(rounds.callbacks) },
    rateLimited429: { total: rateLimited.length, byRoute },
    requestsPerSecond: {
      globalLimit: GLOBAL_LIMIT_PER_SECOND,
      peakSlidingSecond: peak,
      overGlobalLimitFixedWindow: overFixedWindow(globalTimes, GLOBAL_LIMIT_PER_SECOND),
      peakAllRoutes: peakPerSecond(calls.map((c) => c.at)),
      totalRequests: calls.length,
    },
    targets: { rateLimited429: 0, globalPeakPerSecond: GLOBAL_LIMIT_PER_SECOND },
    meets: {
      zero429: rateLimited.length === 0,
      underGlobalLimit: overFixedWindow(globalTimes, GLOBAL_LIMIT_PER_SECOND) === 0,
    },
    firstTextRule: rule,
    failures: input.failures,
    engineLog: input.engineLog,
    node: process.version,
    durationSec: round((performance.now() - input.started) / 1000, 1),
  };
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** Calls a fixed-window limiter of `limit` per second would refuse (a window opens at the first call after the last one closed). */
function overFixedWindow(times: number[], limit: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let over = 0;
  let windowEnd = Number.NEGATIVE_INFINITY;
  let count = 0;
  for (const t of sorted) {
    if (t >= windowEnd) {
      windowEnd = t + 1000;
      count = 0;
    }
    count++;
    if (count > limit) over++;
  }
  return over;
}

async function main(): Promise<void> {
  const result = await runDiscordBench({
    stories: option("--stories", "BENCH_DC_STORIES", 200),
    chapters: option("--chapters", "BENCH_DC_CHAPTERS", 2),
    channels: option("--channels", "BENCH_DC_CHANNELS", 20),
    modelLatencyMs: option("--latency", "BENCH_DC_LATENCY_MS", 20),
    chunkLatencyMs: option("--chunk-latency", "BENCH_DC_CHUNK_LATENCY_MS", 15),
    chapterTimeoutMs: option("--timeout", "BENCH_DC_TIMEOUT_S", 180) * 1000,
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) await main();
