/**
 * Speculative planning (PREPLAN): while readers read a chapter (or vote on it), the
 * agent's pre-prose steps run for each offered choice, so that when one is taken only
 * the streamed prose call remains: the first sentence arrives one model round trip
 * after the choice.
 *
 * - Bounded: at most `concurrency` plans run at once, across stories.
 * - Cancelled when the head moves: offering new choices, or starting any chapter of the
 *   story, cancels the story's other plans.
 * - Discarded when the story changes under it: a plan is used only when the chapter's
 *   writing input is exactly the one it was made from (a fingerprint of the input).
 * - Recorded: the plan used becomes part of the chapter's trajectory, with the same
 *   shape and content as without planning; every other plan's runs are recorded as
 *   their own runs with status `unused` (left out of training data).
 *
 * Plans live in this process's memory: losing them (a restart) only costs the time
 * they would have saved.
 */
import { createHash } from "node:crypto";
import type { AgentInput, ChapterPlan, Method, PlanOutcome, RunRecord, StoryAgent } from "../agent/types.ts";
import type { Db } from "../store/db.ts";
import { runData } from "./run-data.ts";
import { loadStoryWithCanon, type StoryWithCanon, writingInputFor } from "./snapshot.ts";

export interface PreplannerOptions {
  /** The continue method (plans are made for continue chapters). */
  method: Method;
  /** Plans running at once, across stories (PREPLAN_CONCURRENCY). */
  concurrency: number;
  /** Stories holding plans at once; beyond it the oldest story's plans are cancelled (default 500). */
  maxStories?: number;
  log?: (message: string) => void;
}

const MAX_STORIES = 500;

interface Entry {
  storyId: string;
  parentId: string;
  action: string;
  fingerprint: string;
  controller: AbortController;
  outcome: Promise<PlanOutcome>;
}

/** A writing input's identity: same fingerprint, same prompts, same trajectory. */
export function fingerprint(input: AgentInput): string {
  return createHash("sha256").update(JSON.stringify(input)).digest("hex");
}

export class Preplanner {
  /** Plans by story, then by action. */
  readonly #plans = new Map<string, Map<string, Entry>>();
  readonly #waiting: (() => void)[] = [];
  readonly #recording = new Set<Promise<void>>();
  /** planChoices / planAction calls still reading the story: close() waits for them. */
  readonly #starting = new Set<Promise<void>>();
  #closed = false;
  #running = 0;

  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly options: PreplannerOptions,
  ) {}

  /** Plan every choice of the story's head chapter (its earlier plans are cancelled). */
  planChoices(storyId: string): Promise<void> {
    return this.starting(() => this.planChoicesNow(storyId));
  }

  private async planChoicesNow(storyId: string): Promise<void> {
    const story = await loadStoryWithCanon(this.db, storyId);
    const headId = story?.headChapterId;
    if (story == null || headId == null || story.status === "ended") return;
    const head = await this.db.chapter.findUnique({
      where: { id: headId },
      select: {
        id: true,
        number: true,
        status: true,
        authorNote: true,
        choices: { orderBy: { position: "asc" }, select: { label: true } },
      },
    });
    if (head == null || head.status !== "done") return;
    // Plans still valid (the same choices of the same head, as when the story is shown
    // again) are kept; the rest are cancelled.
    const before = this.#plans.get(storyId) ?? new Map<string, Entry>();
    this.#plans.delete(storyId);
    const kept = new Map<string, Entry>();
    for (const choice of head.choices) {
      const input = await this.inputFor(story, head, choice.label);
      const old = before.get(choice.label);
      if (old !== undefined && old.parentId === head.id && old.fingerprint === fingerprint(input)) {
        kept.set(choice.label, old);
        before.delete(choice.label);
      }
    }
    for (const stale of before.values()) this.drop(stale);
    if (kept.size > 0) this.#plans.set(storyId, kept);
    for (const choice of head.choices) if (!kept.has(choice.label)) await this.start(story, head, choice.label);
  }

  /** Plan one more action for the head chapter (a reader's own action, a write-in joining a ballot). */
  planAction(storyId: string, action: string): Promise<void> {
    return this.starting(() => this.planActionNow(storyId, action));
  }

  private async planActionNow(storyId: string, action: string): Promise<void> {
    const story = await loadStoryWithCanon(this.db, storyId);
    const headId = story?.headChapterId;
    if (story == null || headId == null) return;
    const head = await this.db.chapter.findUnique({
      where: { id: headId },
      select: { id: true, number: true, authorNote: true },
    });
    if (head == null || this.#plans.get(storyId)?.has(action) === true) return;
    await this.start(story, head, action);
  }

  /**
   * The plan for the chapter about to be written from `input` after `parentId`, if one was
   * made for exactly that input (waiting for it when still running). Every other plan of
   * the story is cancelled and recorded as unused.
   */
  async take(storyId: string, parentId: string | null, input: AgentInput): Promise<ChapterPlan | undefined> {
    const plans = this.#plans.get(storyId);
    this.#plans.delete(storyId);
    if (plans === undefined) return undefined;
    const action = input.action;
    const entry = action === undefined ? undefined : plans.get(action);
    const usable = entry !== undefined && entry.parentId === parentId && entry.fingerprint === fingerprint(input);
    for (const other of plans.values()) if (other !== entry || !usable) this.drop(other);
    if (!usable || entry === undefined) return undefined;
    const outcome = await entry.outcome;
    if (outcome.ok) return outcome.plan;
    this.record(storyId, outcome.runs);
    return undefined;
  }

  /** Cancel one action's plan (it was refused), recording what it spent as unused. */
  forget(storyId: string, action: string): void {
    const plans = this.#plans.get(storyId);
    const entry = plans?.get(action);
    if (plans === undefined || entry === undefined) return;
    plans.delete(action);
    this.drop(entry);
  }

  /** Cancel the story's plans (the head moved), recording what they spent as unused. */
  cancel(storyId: string): void {
    const plans = this.#plans.get(storyId);
    this.#plans.delete(storyId);
    for (const entry of plans?.values() ?? []) this.drop(entry);
  }

  /** Cancel every plan and wait until their runs are recorded. */
  async close(): Promise<void> {
    // Nothing starts any more, and what was starting finishes before its plans are cancelled
    // (it reads the database, which closes next).
    this.#closed = true;
    await Promise.allSettled([...this.#starting]);
    for (const storyId of [...this.#plans.keys()]) this.cancel(storyId);
    while (this.#recording.size > 0) await Promise.all([...this.#recording]);
  }

  /** Plans running or waiting for a slot (tests, benchmarks). */
  get pending(): number {
    let count = 0;
    for (const plans of this.#plans.values()) count += plans.size;
    return count;
  }

  /** The input the continue chapter after `head` with `action` would be written from. */
  private async inputFor(
    story: StoryWithCanon,
    head: { id: string; number: number; authorNote: string },
    action: string,
  ) {
    const { input } = await writingInputFor(this.db, story, {
      // The chapter inherits the head's author's note.
      authorNote: head.authorNote,
      parentId: head.id,
      number: head.number + 1,
      task: "continue",
      action,
      direction: "",
      rewriteOfId: null,
    });
    return { ...input, method: this.options.method } satisfies AgentInput;
  }

  private async start(
    story: StoryWithCanon,
    head: { id: string; number: number; authorNote: string },
    action: string,
  ): Promise<void> {
    const input = await this.inputFor(story, head, action);
    // Closing: no new plan (close() waits for this call, then cancels what exists).
    if (this.#closed) return;
    const controller = new AbortController();
    const entry: Entry = {
      storyId: story.id,
      parentId: head.id,
      action,
      fingerprint: fingerprint(input),
      controller,
      outcome: this.slot(controller.signal).then(async (free) => {
        try {
          return await this.agent.plan(input, controller.signal);
        } finally {
          free();
        }
      }),
    };
    let plans = this.#plans.get(story.id);
    if (plans === undefined) {
      plans = new Map();
      this.#plans.set(story.id, plans);
      // Stories whose readers went away keep no plans forever: the oldest go first.
      for (const [oldest] of this.#plans) {
        if (this.#plans.size <= (this.options.maxStories ?? MAX_STORIES)) break;
        this.cancel(oldest);
      }
    }
    plans.set(action, entry);
  }

  private async starting(work: () => Promise<void>): Promise<void> {
    if (this.#closed) return;
    const run = work();
    this.#starting.add(run);
    try {
      await run;
    } finally {
      this.#starting.delete(run);
    }
  }

  /** Wait for a free slot; resolves with its release. An aborted wait resolves at once. */
  private async slot(signal: AbortSignal): Promise<() => void> {
    while (this.#running >= this.options.concurrency && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.#waiting.push(resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    this.#running++;
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      this.#running--;
      // Every waiter checks again (some may have been cancelled meanwhile).
      for (const wake of this.#waiting.splice(0)) wake();
    };
  }

  private drop(entry: Entry): void {
    entry.controller.abort();
    const recorded = entry.outcome.then((outcome) =>
      this.record(entry.storyId, outcome.ok ? outcome.plan.runs : outcome.runs),
    );
    this.#recording.add(recorded);
    void recorded.finally(() => this.#recording.delete(recorded));
  }

  /** An unused plan's runs, recorded as their own runs (never training data). */
  private async record(storyId: string, runs: RunRecord[]): Promise<void> {
    const spent = runs.filter((r) => r.messages.length > 0 && (r.promptTokens > 0 || r.completionTokens > 0));
    if (spent.length === 0) return;
    try {
      await this.db.agentRun.createMany({
        data: spent.map((run) => runData(storyId, null, { ...run, status: "unused" })),
      });
    } catch (error) {
      // The story may be gone; an unused plan is only bookkeeping.
      this.options.log?.(`unused plan of story ${storyId} not recorded: ${String(error)}`);
    }
  }
}
