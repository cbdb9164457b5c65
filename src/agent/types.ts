/**
 * Contract between the story service (src/story) and the story agent (src/agent).
 * The agent is platform-neutral and storage-neutral: it receives a snapshot of the
 * story and yields `StoryEvent`s; the service persists what comes out.
 */
import type { ChatMessage, ModelError, ToolSpec } from "../llm/types.ts";
import type { LoreEntry } from "./lore.ts";

/** FireAct methods, chosen per task by configuration and recorded with every run. */
export const METHODS = ["cot", "react", "reflexion"] as const;
export type Method = (typeof METHODS)[number];

/** Genres offered by /start ("none" = no genre). */
export const GENRES = ["sweet", "angst", "what-if", "adventure", "horror", "fan-fiction", "none"] as const;
export type Genre = (typeof GENRES)[number];

export interface BibleCharacter {
  name: string;
  role: string;
  /** Fixed appearance (face, hair, build, clothing): reused verbatim for illustrations. */
  appearance: string;
  notes?: string;
}

export interface BiblePlace {
  name: string;
  description: string;
}

/** Canon: what must stay true. */
export interface Bible {
  characters: BibleCharacter[];
  places: BiblePlace[];
  facts: string[];
}

/** Hidden story arc the agent steers toward; revised as readers diverge. */
export interface Arc {
  beats: string[];
  openThreads: string[];
}

/** Where the protagonist stands with one main character (story state). */
export interface Relationship {
  name: string;
  /** -100 (enemies) .. 100 (devoted). */
  value: number;
  /** One line: how things stand between them now. */
  standing: string;
}

/**
 * The story state after a chapter (branch-local, like the summary): relationships with the
 * main characters, milestones reached, and how far the hidden arc has come.
 */
export interface StoryState {
  relationships: Relationship[];
  /** Milestones reached, oldest first. */
  milestones: string[];
  /** 0..100: the arc's progress. */
  arcProgress: number;
}

/** What one chapter's structured parts say changed (merged into the branch's state). */
export interface StateUpdate {
  /** Relationships that changed, with their new value and standing. */
  relationships: Relationship[];
  /** Milestones reached in this chapter. */
  milestones: string[];
  arcProgress: number;
}

export interface ChapterSnapshot {
  number: number;
  title: string;
  text: string;
  summary: string;
  /** The choice or action that led to this chapter ("" for chapter 1). */
  action: string;
}

/** Everything the agent may read about a story (head branch only). */
export interface StorySnapshot {
  premise: string;
  genre: Genre;
  /** BCP-47 language of the story ("en", "zh", ...); "" before chapter 1 is written. */
  language: string;
  title: string;
  bible: Bible;
  arc: Arc;
  /** Rolling summary of chapters 1..summaryUpTo. */
  summary: string;
  summaryUpTo: number;
  /** Chapters of the head branch, oldest first (done chapters only). */
  chapters: ChapterSnapshot[];
  /** Lore entries (world info): see src/agent/lore.ts. */
  lore: LoreEntry[];
  /** short | medium | long (the workspace's setting when the story started). */
  chapterLength?: string;
  /** Content rating: general, teen or adult (from the theme or the workspace). */
  rating?: string;
  /** The moderators' theme the story was started with: its rules bind every chapter. */
  theme?: { name: string; description: string; rules: string; rating: string };
  /** The story state after the branch's last chapter (absent until a chapter set it). */
  state?: StoryState;
}

export type WritingTask = "open" | "continue" | "rewrite";

export interface AgentInput {
  task: WritingTask;
  method: Method;
  story: StorySnapshot;
  /** Number of the chapter being written. */
  chapterNumber: number;
  /** continue: the choice taken or the reader's own action. */
  action?: string;
  /** rewrite: the reader's direction ("make the ending happier"). */
  direction?: string;
  /** rewrite: the chapter being replaced (not part of `story.chapters`). */
  replacing?: ChapterSnapshot;
  /** The readers' author's note (/note): a standing direction for this chapter. */
  authorNote?: string;
  /**
   * A chapter interrupted by a restart: the prose already shown, continued rather than
   * written again; `complete` when the prose was finished and only its structured parts
   * remain; for an opening, the story plan it was written from.
   */
  resume?: { prose: string; complete: boolean; story?: PlannedStory };
  /**
   * continue: the requesting reader's latest /talk exchange with a character, right before
   * this action. Not canon; the reader may cite it, and the prompt marks it as such.
   */
  talk?: TalkExchange;
}

/** One /talk exchange: what a reader said to a character and the in-character reply. */
export interface TalkExchange {
  character: string;
  message: string;
  reply: string;
}

/** What the agent needs to answer a reader in a character's voice (`StoryAgent.talk`). */
export interface TalkInput {
  story: StorySnapshot;
  character: BibleCharacter;
  /** The lore entries about this character (their keys name it). */
  lore: { keys: string[]; content: string }[];
  /** What the reader says to the character. */
  message: string;
}

/** What `StoryAgent.talk` yields: the reply as it streams, then one `done` or `failed`. */
export type TalkEvent =
  | { type: "text"; delta: string }
  | { type: "done"; reply: string; run: RunRecord }
  | { type: "failed"; error: ModelError; run: RunRecord };

/** What an opening's plan_story call decided (saved with the chapter). */
export interface PlannedStory {
  title: string;
  language: string;
  bible: Bible;
  arc: Arc;
}

export interface ChoiceDraft {
  /** What the reader sees (<= 80 chars). */
  label: string;
  /** Where this choice takes the story (hidden; keeps choices genuinely different). */
  direction: string;
}

/** One recorded agent run (a FireAct trajectory). */
export interface RunRecord {
  task: "open" | "continue" | "rewrite" | "choices" | "summarize" | "check" | "illustrate" | "talk";
  method: Method;
  model: string;
  baseUrl: string;
  /** The route was a fine-tuned model (it got the zero-shot prompt). */
  fineTuned: boolean;
  promptVersion: string;
  messages: ChatMessage[];
  tools: ToolSpec[];
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  latencyMs: number;
  /** `unused`: a speculative plan for a choice the readers did not take. */
  status: "ok" | "failed" | "unused";
  error?: string;
  checks: {
    finishedInFormat?: boolean;
    continuityOk?: boolean;
    issues?: string[];
    /** Lore entries (by keys) the prompt carried, and those that came up but the token budget left out. */
    lore?: { included: string[]; leftOut: string[] };
  };
}

export interface ChapterResult {
  /** open only: the story's title, language, bible and arc. */
  story?: PlannedStory;
  chapterTitle: string;
  text: string;
  /** One or two sentences, for the rolling summary. */
  summary: string;
  choices: ChoiceDraft[];
  /** Characters and facts introduced by this chapter (merged into the bible). */
  bibleUpdates: { characters: BibleCharacter[]; facts: string[] };
  /** Revised arc, when the agent revised it. */
  arc?: Arc;
  /** What this chapter changed in the story state. */
  state?: StateUpdate;
  continuity: { ok: boolean; issues: string[] };
  /** Key scenes the agent asked to illustrate (its illustrate tool, or submit_chapter's illustration). */
  illustrations: IllustrationProposal[];
  runs: RunRecord[];
  /**
   * The structured parts failed on every strategy after the prose was written: the title
   * comes from the prose, the summary is empty and the choices may be empty. The chapter
   * is kept and its parts are repaired in the background (`StoryAgent.repairParts`).
   */
  needsRepair?: boolean;
}

/** The structured parts of a written chapter, asked for again (the background repair). */
export interface ChapterParts {
  chapterTitle: string;
  summary: string;
  choices: ChoiceDraft[];
  bibleUpdates: { characters: BibleCharacter[]; facts: string[] };
  arc?: Arc;
  state?: StateUpdate;
}

export interface IllustrationProposal {
  /** What to draw, in the story's words. */
  scene: string;
  /** Names of the characters in the picture. */
  characters: string[];
}

/**
 * What the agent yields while it works. Text deltas are the chapter prose in
 * order; exactly one terminal event (`done` or `failed`) ends the stream.
 */
export type StoryEvent =
  | {
      type: "status";
      phase: "planning" | "recalling" | "drafting" | "checking" | "revising" | "writing" | "resuming" | "choosing";
    }
  /** An opening was planned: shown to readers, and saved so a restart resumes from the same plan. */
  | { type: "story"; title: string; language: string; cast: BibleCharacter[]; plan: PlannedStory }
  | { type: "tool"; name: string; args: unknown; result: string; noisy?: boolean }
  | { type: "text"; delta: string }
  | { type: "choices"; choices: ChoiceDraft[] }
  | { type: "done"; result: ChapterResult }
  | { type: "failed"; error: ModelError; runs: RunRecord[] };

export interface SummarizeInput {
  story: StorySnapshot;
  /** Chapters to fold into the rolling summary. */
  fold: ChapterSnapshot[];
}

export interface DescribeSceneInput {
  title: string;
  premise: string;
  /** The scene to draw, as the agent or a reader put it. */
  scene: string;
  /** Names of the characters in the picture (their appearance is added by the visual bible). */
  characters: string[];
}

/**
 * A chapter's pre-prose steps (CoT's thought, ReAct's tool turns and begin_writing plan)
 * run ahead of the reader's choice. Opaque: only the agent that made it reads it, once.
 */
export interface ChapterPlan {
  /** The runs so far, as they would be recorded. */
  readonly runs: RunRecord[];
  /** Prompt tokens spent on it (what an unused plan cost). */
  readonly promptTokens: number;
}

/** What `StoryAgent.plan` ended with: a plan, or the runs it spent before it failed or was cancelled. */
export type PlanOutcome = { ok: true; plan: ChapterPlan } | { ok: false; error: ModelError; runs: RunRecord[] };

export interface WriteOptions {
  signal?: AbortSignal;
  /** Pre-prose steps already run for exactly this input (`plan`): only the prose and the parts remain. */
  plan?: ChapterPlan;
  /** A model call waits `delayMs` before another attempt (429, 5xx, a cut stream): readers may be told. */
  onWait?: (delayMs: number, error: ModelError) => void;
}

export interface StoryAgent {
  /** Write one chapter. Never throws: failures end the stream with `failed`. */
  write(input: AgentInput, options?: WriteOptions): AsyncIterable<StoryEvent>;
  /**
   * Run the pre-prose steps of a continue or rewrite chapter now (speculative planning), so
   * that `write` with the plan starts with the prose call. Never throws.
   */
  plan(input: AgentInput, signal?: AbortSignal): Promise<PlanOutcome>;
  /** Ask again for the structured parts of a chapter kept without them. Throws `ModelError`. */
  repairParts(
    input: { story: StorySnapshot; chapterNumber: number; text: string; method: Method },
    signal?: AbortSignal,
  ): Promise<{ parts: ChapterParts; runs: RunRecord[] }>;
  /** Fold chapters into the rolling summary (bounded length). Throws `ModelError`. */
  summarize(input: SummarizeInput, signal?: AbortSignal): Promise<{ summary: string; run: RunRecord }>;
  /**
   * The `illustrate` task: turn a scene into the description of one picture (the image
   * prompt's scene line). Throws `ModelError`; the caller may fall back to the scene.
   */
  describeScene(input: DescribeSceneInput, signal?: AbortSignal): Promise<{ description: string; run: RunRecord }>;
  /**
   * The `talk` task: a character of the story answers a reader, in character and in the
   * story's language, streamed. Never throws: failures end the stream with `failed`.
   */
  talk(input: TalkInput, signal?: AbortSignal): AsyncIterable<TalkEvent>;
}
