/**
 * Contract between the story service (src/story) and the story agent (src/agent).
 * The agent is platform-neutral and storage-neutral: it receives a snapshot of the
 * story and yields `StoryEvent`s; the service persists what comes out.
 */
import type { ChatMessage, ModelError, ToolSpec } from "../llm/types.ts";

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
  lore: { keys: string[]; content: string }[];
  /** short | medium | long (the workspace's setting when the story started). */
  chapterLength?: string;
  /** Content rating: general, teen or adult (from the theme or the workspace). */
  rating?: string;
  /** The moderators' theme the story was started with: its rules bind every chapter. */
  theme?: { name: string; description: string; rules: string; rating: string };
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
}

export interface ChoiceDraft {
  /** What the reader sees (<= 80 chars). */
  label: string;
  /** Where this choice takes the story (hidden; keeps choices genuinely different). */
  direction: string;
}

/** One recorded agent run (a FireAct trajectory). */
export interface RunRecord {
  task: "open" | "continue" | "rewrite" | "choices" | "summarize" | "check" | "illustrate";
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
  status: "ok" | "failed";
  error?: string;
  checks: { finishedInFormat?: boolean; continuityOk?: boolean; issues?: string[] };
}

export interface ChapterResult {
  /** open only: the story's title, language, bible and arc. */
  story?: { title: string; language: string; bible: Bible; arc: Arc };
  chapterTitle: string;
  text: string;
  /** One or two sentences, for the rolling summary. */
  summary: string;
  choices: ChoiceDraft[];
  /** Characters and facts introduced by this chapter (merged into the bible). */
  bibleUpdates: { characters: BibleCharacter[]; facts: string[] };
  /** Revised arc, when the agent revised it. */
  arc?: Arc;
  continuity: { ok: boolean; issues: string[] };
  /** Key scenes the agent asked to illustrate (its illustrate tool, or submit_chapter's illustration). */
  illustrations: IllustrationProposal[];
  runs: RunRecord[];
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
  | { type: "status"; phase: "planning" | "recalling" | "drafting" | "checking" | "revising" | "writing" | "choosing" }
  | { type: "story"; title: string; language: string; cast: BibleCharacter[] }
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

export interface StoryAgent {
  /** Write one chapter. Never throws: failures end the stream with `failed`. */
  write(input: AgentInput, signal?: AbortSignal): AsyncIterable<StoryEvent>;
  /** Fold chapters into the rolling summary (bounded length). Throws `ModelError`. */
  summarize(input: SummarizeInput, signal?: AbortSignal): Promise<{ summary: string; run: RunRecord }>;
  /**
   * The `illustrate` task: turn a scene into the description of one picture (the image
   * prompt's scene line). Throws `ModelError`; the caller may fall back to the scene.
   */
  describeScene(input: DescribeSceneInput, signal?: AbortSignal): Promise<{ description: string; run: RunRecord }>;
}
