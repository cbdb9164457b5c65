/**
 * Every prompt of the story agent, in one place, each with a version recorded in
 * `RunRecord.promptVersion`. Change the text -> bump the version.
 *
 * Markers (relied on by tests/fakes/story-responder.ts and useful in trajectories):
 * - The system prompt's first line is `Inkloom: <task>.<method>` (writing runs) or
 *   `Inkloom: choices` / `Inkloom: check` / `Inkloom: summarize`.
 * - Every user message of a writing run starts with `Step: <step>` where step is one of
 *   `open` (plan the story), `react` (tool loop), `thought` (plan the chapter),
 *   `draft` (non-streamed draft), `write` (the streamed prose), `revise` (streamed
 *   revision after a failed critique).
 * - Context lines the responder reads: `Scenario: ...`, `Reader's action: ...`,
 *   `Rewrite direction: ...`, `Author's note: ...`, `Chapter number: N`, `Language: xx`.
 * - A talk run's system prompt starts `Inkloom: talk`; its user message carries
 *   `Character: <name>` and `Reader says: <message>`. A continue chapter after a reader's
 *   /talk carries `TALK_MARKER` and the exchange, marked as not canon.
 *
 * A prompted route gets the rules and one short exemplar of its method; a fine-tuned
 * route (FireAct) gets a short fixed zero-shot system prompt: no exemplars and no tool
 * descriptions beyond the tool specs.
 */
import type { ChapterSnapshot, Method, StorySnapshot, TalkExchange, TalkInput, WritingTask } from "./types.ts";

export const PROMPT_VERSION = 3;

export type Step = "open" | "react" | "thought" | "draft" | "write" | "revise";

export function promptVersion(name: string, fineTuned: boolean): string {
  return `${name}${fineTuned ? ".ft" : ""}@${PROMPT_VERSION}`;
}

export function languageName(tag: string): string {
  if (tag.trim() === "") return "";
  try {
    const name = new Intl.DisplayNames(["en"], { type: "language" }).of(tag);
    return name && name !== tag ? `${name} (${tag})` : tag;
  } catch {
    return tag;
  }
}

const RULES = [
  "Write only the consequences of the reader's chosen action. Never decide, say or do the reader's next move for them; end the chapter at a point where the reader has a real decision to make.",
  "Stay true to the story bible and the chapters so far: names, appearances, places and canon facts never change by accident.",
  "Never repeat earlier passages, images, phrases or situations; every chapter moves the story somewhere new.",
  "Steer quietly toward the next beat of the hidden arc and keep open threads alive; never reveal the arc itself.",
  "Prose only: no headings, no chapter number line, no list of choices, no notes to the reader.",
];

const METHOD_GUIDE: Record<Method, string> = {
  cot: "First think through the chapter as a short plan (what happens, in which order, how it ends), then write it.",
  react:
    "Before writing, gather what you need with the tools: recall earlier passages, look up characters, places and lore; call illustrate for a key scene worth a picture. Think in one or two sentences before each tool call. When you know enough, call begin_writing with a short plan. Use few steps.",
  reflexion:
    "Plan the chapter, write a draft, then a continuity check critiques the draft; if it finds problems, rewrite the chapter fixing every one of them.",
};

const EXEMPLARS: Record<Method, string> = {
  cot: [
    "Example (another story):",
    "Reader's action: Open the sealed letter.",
    "Plan: Ada breaks the wax; the letter is in her own handwriting, dated next winter. It warns her not to trust the ferryman. The ferryman knocks as she reads. End on the knock.",
  ].join("\n"),
  react: [
    "Example (another story):",
    "Thought: The reader wants to return to the mill; what happened there before?",
    'Action: recall({"query":"mill fire"})',
    "Observation: (Chapter 3) The mill burned the night Tomas vanished; only the millstone survived.",
    "Thought: Enough to write: the visit should echo the fire.",
    'Action: begin_writing({"plan":"Ada finds fresh soot on the millstone; someone has been here. End when footsteps come up the stairs."})',
  ].join("\n"),
  reflexion: [
    "Example (another story):",
    "Plan: Ada confronts the ferryman on the pier.",
    "Critique: the draft gives the ferryman green eyes (the bible says grey) and repeats the fog image from chapter 2.",
    "Revision: grey eyes; the scene opens with rain on the river instead of fog.",
  ].join("\n"),
};

const TASK_LINE: Record<WritingTask, string> = {
  open: "Open a new interactive story from the reader's scenario: plan it with plan_story, then write chapter 1.",
  continue: "Write the next chapter of an interactive story, following the reader's action.",
  rewrite: "Rewrite a chapter of an interactive story following the reader's direction.",
};

/** System prompt of a writing run (open/continue/rewrite) for a method and route. */
export function writingSystemPrompt(
  task: WritingTask,
  method: Method,
  fineTuned: boolean,
): { content: string; version: string } {
  const marker = `Inkloom: ${task}.${method}`;
  const version = promptVersion(`${task}.${method}`, fineTuned);
  if (fineTuned) {
    return { content: `${marker}\nYou are Inkloom, an interactive fiction writer. ${TASK_LINE[task]}`, version };
  }
  const content = [
    marker,
    "You are Inkloom, a novelist who co-writes interactive web novels with readers.",
    TASK_LINE[task],
    "Rules:",
    ...RULES.map((r, i) => `${i + 1}. ${r}`),
    `Method: ${METHOD_GUIDE[method]}`,
    EXEMPLARS[method],
  ].join("\n");
  return { content, version };
}

/** The moderators' theme: its rules are binding, whatever the reader asks. */
/** Target words per chapter for each length setting. */
const CHAPTER_WORDS: Record<string, number> = { short: 300, medium: 600, long: 1000 };

function themeLines(story: StorySnapshot): string[] {
  const theme = story.theme;
  const rating = theme?.rating ?? story.rating;
  const words = CHAPTER_WORDS[story.chapterLength ?? ""];
  const ratingLine = [
    ...(rating === undefined || rating === "" ? [] : [`Content rating: ${rating}`]),
    ...(words === undefined ? [] : [`Chapter length: about ${words} words`]),
  ];
  if (theme === undefined) return ratingLine;
  return [
    `Theme: ${theme.name}${theme.description ? ` — ${theme.description}` : ""}`,
    ...ratingLine,
    ...(theme.rules ? [`Theme rules (binding; never break them): ${theme.rules}`] : []),
  ];
}

function storyHeader(story: StorySnapshot): string[] {
  const lines: string[] = [...themeLines(story)];
  if (story.title) lines.push(`Title: ${story.title}`);
  if (story.language) lines.push(`Language: ${story.language}`);
  if (story.genre !== "none") lines.push(`Genre: ${story.genre}`);
  if (story.premise) lines.push(`Premise: ${story.premise}`);
  return lines;
}

export interface WritingContext {
  task: WritingTask;
  story: StorySnapshot;
  chapterNumber: number;
  memory: string;
  action?: string;
  direction?: string;
  replacing?: ChapterSnapshot;
  talk?: TalkExchange;
  /** The readers' standing direction (/note). */
  authorNote?: string;
}

/** Heads the reader's latest /talk exchange in a continue chapter's prompt. */
export const TALK_MARKER = "Reader's conversation with a character before this action";

/** The exchange, marked: not canon, only what the reader may cite in their action. */
function talkLines(talk: TalkExchange): string[] {
  return [
    "",
    `## ${TALK_MARKER} (not canon)`,
    "It happened outside the story. Nothing in it is true in the story unless the reader's action builds on it; use it only as far as the action cites it.",
    `Reader to ${talk.character}: ${talk.message}`,
    `${talk.character}: ${talk.reply}`,
  ];
}

/**
 * An opening whose story already has a cast and a world (a remix of a shared story): the
 * plan keeps them, each character with the looks fixed for its pictures.
 */
function givenCanon(story: StorySnapshot): string[] {
  const { characters, places, facts } = story.bible;
  if (characters.length === 0 && places.length === 0 && facts.length === 0) return [];
  return [
    "The story's cast and world are already set: keep them in your plan (same names, same looks).",
    ...characters.map((c) => `- ${c.name}${c.role ? ` (${c.role})` : ""}${c.appearance ? `: ${c.appearance}` : ""}`),
    ...places.map((p) => `- Place: ${p.name}${p.description ? `: ${p.description}` : ""}`),
    ...facts.map((f) => `- Fact: ${f}`),
  ];
}

/** Label of the author's note line (the fake story model reads it). */
export const AUTHOR_NOTE_LABEL = "Author's note: ";

/** The author's note as one prompt line ("" when there is none). */
function noteLine(note: string | undefined): string {
  const text = note?.replace(/\s+/g, " ").trim() ?? "";
  return text === ""
    ? ""
    : `${AUTHOR_NOTE_LABEL}${text}\n(The readers' standing direction for the coming chapters: follow it in tone, pace and focus, within the theme's rules; it never overrides the reader's action.)`;
}

/** The context lines shared by every first user message of a writing run. */
function contextBlock(ctx: WritingContext): string {
  const lines =
    ctx.task === "open"
      ? [
          `Scenario: ${ctx.story.premise}`,
          ...(ctx.story.genre !== "none" ? [`Genre: ${ctx.story.genre}`] : []),
          ...themeLines(ctx.story),
          ...givenCanon(ctx.story),
        ]
      : storyHeader(ctx.story);
  if (ctx.memory.trim() !== "") lines.push("", ctx.memory, "");
  lines.push(`Chapter number: ${ctx.chapterNumber}`);
  if (ctx.talk) lines.push(...talkLines(ctx.talk), "");
  if (ctx.action) lines.push(`Reader's action: ${ctx.action}`);
  if (ctx.direction) lines.push(`Rewrite direction: ${ctx.direction}`);
  const note = noteLine(ctx.authorNote);
  if (note !== "") lines.push(note);
  if (ctx.replacing) {
    lines.push(
      "",
      `## Chapter being rewritten (${ctx.replacing.number}: ${ctx.replacing.title})`,
      ctx.replacing.text,
      "Keep what the direction does not ask to change; do not copy sentences verbatim.",
    );
  }
  return lines.join("\n");
}

/** First user message: the whole context and what this first step asks for. */
export function firstUserMessage(ctx: WritingContext, step: Step): string {
  const ask: Record<Step, string> = {
    open: "Plan the story now: call plan_story. Write in the scenario's language.",
    react: `Gather what you need for chapter ${ctx.chapterNumber}, then call begin_writing with your plan.`,
    thought: `Think through chapter ${ctx.chapterNumber} as a short plan in plain text (5 sentences at most). Do not write the chapter yet.`,
    draft: `Write a draft of chapter ${ctx.chapterNumber}.`,
    write: `Write chapter ${ctx.chapterNumber}.`,
    revise: `Revise chapter ${ctx.chapterNumber}.`,
  };
  return `Step: ${step}\n${contextBlock(ctx)}\n\n${ask[step]}`;
}

/** A later user message in the same writing conversation. */
export function stepMessage(step: Step, ctx: WritingContext, language: string, extra?: string): string {
  const lang = languageName(language) || "the scenario's language";
  const n = ctx.chapterNumber;
  const action = ctx.action ? `\nReader's action: ${ctx.action}` : "";
  const direction = ctx.direction ? `\nRewrite direction: ${ctx.direction}` : "";
  const note = noteLine(ctx.authorNote);
  const head = `Step: ${step}\nChapter number: ${n}${action}${direction}${note === "" ? "" : `\n${note}`}`;
  switch (step) {
    case "thought":
      return `${head}\nNow think through chapter ${n} as a short plan in plain text (5 sentences at most). Do not write the chapter yet.`;
    case "draft":
      return `${head}${extra ? `\n${extra}` : ""}\nWrite a full draft of chapter ${n} in ${lang}, following your plan. Prose only.`;
    case "write":
      return `${head}${extra ? `\n${extra}` : ""}\nWrite chapter ${n} now in ${lang}, following your plan: about 500-900 words of prose, no headings, no choices.`;
    case "revise":
      return `${head}\nA continuity check of your draft found these problems:\n${extra ?? ""}\nRewrite chapter ${n} in ${lang} fixing every one of them. Prose only.`;
    default:
      return `${head}\n${extra ?? ""}`;
  }
}

/** Lore entries the planning step brought up, given with the writing step. */
export function planLoreNote(lines: string[]): string {
  return `Lore your plan brings up:\n${lines.join("\n")}`;
}

/** Tool result sent after a validated plan_story call (keeps the conversation well-formed). */
export const PLAN_ACCEPTED = "Plan recorded.";
export const BEGIN_WRITING_ACK = "Plan accepted. Write the chapter when asked.";
export const STEP_LIMIT_NOTE = "Step limit reached: stop gathering and write with what you have.";

/** Repair turn after invalid structured output. */
export function repairMessage(what: string, error: string): string {
  return `Your ${what} was invalid:\n${error}\nCall it again with corrected arguments.`;
}

/**
 * Start of the user turn that asks for JSON in plain text (the `json_text` structured
 * output strategy, for endpoints that honour neither a forced tool call nor a
 * `json_schema` response format). Followed by the name, e.g. `... for submit_chapter`.
 */
export const JSON_TEXT_MARKER = "Answer format: one JSON object for ";

/** The json_text strategy's request: the name, the schema, and nothing but JSON back. */
export function jsonTextRequest(name: string, schema: Record<string, unknown>): string {
  return `${JSON_TEXT_MARKER}${name}\nReply with only that JSON object (no prose, no code fence), matching this JSON schema:\n${JSON.stringify(schema)}`;
}

/** Repair turn for the json_text and json_schema strategies. */
export function jsonRepairMessage(name: string, error: string): string {
  return `Your ${name} JSON was invalid:\n${error}\nReply again with only the corrected JSON object.`;
}

/**
 * First line of the user turn that resumes prose cut off mid-stream (a dropped
 * connection, a restart): the partial prose is the assistant turn before it.
 */
export const CONTINUE_MARKER = "Step: continue";

export function continueMessage(chapterNumber: number): string {
  return `${CONTINUE_MARKER}\nChapter number: ${chapterNumber}\nYour text above was cut off. Continue chapter ${chapterNumber} exactly where it stops, mid-sentence if need be: do not repeat anything already written, no preamble.`;
}

/** Asked after an empty answer to the prose request (a weak model ending at once). */
export function emptyChapterMessage(chapterNumber: number): string {
  return `Your answer was empty. Write chapter ${chapterNumber} now: the prose itself, at its full length, no preamble.`;
}

// ----- choices -----

export function choicesPrompt(fineTuned: boolean): { content: string; version: string } {
  const version = promptVersion("choices", fineTuned);
  if (fineTuned) return { content: "Inkloom: choices\nSubmit the chapter's structured parts.", version };
  return {
    content: [
      "Inkloom: choices",
      "You read a chapter of an interactive story and submit its structured parts with submit_chapter.",
      "- chapter_title: short, in the story's language.",
      "- summary: one or two sentences of what happened, for the story's memory.",
      "- choices: 2 to 4 things the reader could do next, each label under 80 characters, in the story's language. Each must lead somewhere genuinely different (direction says where, privately); never two variants of the same move, never a choice set used before.",
      "- new_characters and new_facts: only what this chapter introduced.",
      "- arc: the revised hidden arc, only if the chapter diverged from it.",
      "- illustration: the chapter's key scene (what a single picture would show, and who is in it), only when it is worth a picture; always for chapter 1.",
      "- state: the story state after this chapter, from the state before it: relationships between the protagonist and each main character who changed (value -100 hostile .. 100 devoted, and a one-line standing), milestones reached in this chapter (short, only real turning points), and arc_progress (0-100, how far the hidden arc has come).",
      "Example choice set: [Follow the ferryman -> learn who sent the letter] [Burn the letter -> the future stops writing back] [Show the letter to Tomas -> test his loyalty].",
    ].join("\n"),
    version,
  };
}

export function choicesUserMessage(
  story: StorySnapshot,
  chapterNumber: number,
  text: string,
  /** The hidden arc (so choices can serve open threads). */
  memory: string,
  language: string,
): string {
  const lines = [...storyHeader(story), `Language: ${language}`, `Chapter number: ${chapterNumber}`];
  if (memory.trim() !== "") lines.push("", memory);
  lines.push("", `## Chapter ${chapterNumber}`, text, "", "Call submit_chapter now.");
  return lines.join("\n");
}

// ----- continuity check -----

export function checkPrompt(fineTuned: boolean): { content: string; version: string } {
  const version = promptVersion("check", fineTuned);
  if (fineTuned) return { content: "Inkloom: check\nReport continuity problems as JSON.", version };
  return {
    content: [
      "Inkloom: check",
      "You are a continuity editor. Compare the draft chapter with the story bible and the recent chapters.",
      "Flag (1) contradictions of names, appearances, places, canon facts or earlier events; (2) passages, phrases or situations that repeat earlier chapters; (3) the draft deciding the reader's next move for them.",
      'Answer with JSON {"ok": boolean, "issues": string[]}: ok is true only when there are no issues; each issue is one short, specific sentence.',
    ].join("\n"),
    version,
  };
}

export function checkUserMessage(memory: string, chapterNumber: number, draft: string): string {
  return `${memory}\n\n## Draft of chapter ${chapterNumber}\n${draft}\n\nReport continuity issues as JSON.`;
}

// ----- summarize -----

export const SUMMARY_MAX_WORDS = 250;
/** Defensive bound if the model overshoots (CJK text has no words; count characters). */
export const SUMMARY_MAX_CHARS = 1800;

export function summarizePrompt(fineTuned: boolean): { content: string; version: string } {
  const version = promptVersion("summarize", fineTuned);
  if (fineTuned) return { content: "Inkloom: summarize\nFold the chapters into the summary.", version };
  return {
    content: [
      "Inkloom: summarize",
      "You keep the rolling summary of a long interactive story.",
      `Rewrite the summary so it also covers the new chapters. At most ${SUMMARY_MAX_WORDS} words (or ${Math.round(SUMMARY_MAX_CHARS / 3)} characters for Chinese or Japanese). Keep what later chapters need: who is where, what each character wants, promises, secrets, unresolved threads. Drop scenery and dialogue. Write in the story's language. Plain text only.`,
    ].join("\n"),
    version,
  };
}

export function summarizeUserMessage(story: StorySnapshot, fold: ChapterSnapshot[]): string {
  const first = fold[0]?.number ?? story.summaryUpTo + 1;
  const last = fold[fold.length - 1]?.number ?? story.summaryUpTo;
  const lines = [...storyHeader(story), ""];
  lines.push(
    story.summary.trim() === ""
      ? "Current summary: (none yet)"
      : `Current summary (chapters 1-${story.summaryUpTo}):\n${story.summary}`,
  );
  lines.push("", `New chapters ${first}-${last}:`);
  for (const c of fold) {
    const body = c.summary.trim() !== "" ? c.summary : c.text.slice(0, 1200);
    lines.push(`- Chapter ${c.number} (${c.title}): ${body}`);
  }
  lines.push("", `Write the new summary covering chapters 1-${last}.`);
  return lines.join("\n");
}

// ----- illustrate -----

/** Longest picture description kept (the image prompt adds the cast and the art style). */
export const SCENE_DESCRIPTION_MAX_CHARS = 600;

export function illustratePrompt(fineTuned: boolean): { content: string; version: string } {
  const version = promptVersion("illustrate", fineTuned);
  if (fineTuned) return { content: "Inkloom: illustrate\nDescribe the picture.", version };
  return {
    content: [
      "Inkloom: illustrate",
      "You turn a key scene of an interactive story into the description of one picture.",
      "One paragraph, under 80 words, in English: what is visible (setting, action, composition, light, mood). Name the characters, but never describe how they look (their fixed appearance is added for you). No dialogue, no sounds, no text or letters in the picture.",
      "Example: Scene: Ada confronts the ferryman on the pier at night. -> Ada and the ferryman face each other at the end of a wet wooden pier, a lantern between them throwing long shadows; black river, fog rolling in behind, low camera angle, tense and cold.",
    ].join("\n"),
    version,
  };
}

export function illustrateUserMessage(input: {
  title: string;
  premise: string;
  scene: string;
  characters: string[];
}): string {
  const lines = [`Story: ${input.title || "(untitled)"}`, `Premise: ${input.premise}`];
  if (input.characters.length > 0) lines.push(`Characters in the picture: ${input.characters.join(", ")}`);
  lines.push(`Scene: ${input.scene}`, "", "Describe the picture.");
  return lines.join("\n");
}

// ----- talk -----

/** Longest in-character reply kept, in characters (about 200 words). */
export const TALK_REPLY_MAX_CHARS = 1500;

export function talkPrompt(fineTuned: boolean): { content: string; version: string } {
  const version = promptVersion("talk", fineTuned);
  if (fineTuned) return { content: "Inkloom: talk\nAnswer the reader in character.", version };
  return {
    content: [
      "Inkloom: talk",
      "You are a character of an interactive story, talking with one of its readers between chapters.",
      "Answer in character: your voice, your knowledge, your feelings as of the latest chapter. Stay true to the story bible and to what has happened; never invent events as if they were canon and never reveal what you could not know or the story's hidden plans.",
      "Answer in the story's language, in the first person, 1-3 short paragraphs (under 150 words). Spoken words and small gestures only: no narration of other characters, no choices, no notes to the reader.",
      "If the reader asks for something the story's content rating or theme rules forbid, decline in character.",
      "Example: Reader says: Do you trust the ferryman? -> *She turns the ring on her finger.* Trust him? I trust the river more, and the river has drowned better men than me.",
    ].join("\n"),
    version,
  };
}

export function talkUserMessage(input: TalkInput, memory: string): string {
  const { story, character } = input;
  const lines = [...storyHeader(story)];
  if (memory.trim() !== "") lines.push("", memory);
  if (input.lore.length > 0) {
    lines.push("", `## Lore about ${character.name}`, ...input.lore.map((l) => `- ${l.keys.join(", ")}: ${l.content}`));
  }
  const notes = character.notes ? ` Notes: ${character.notes}` : "";
  lines.push(
    "",
    `Character: ${character.name}`,
    `Role: ${character.role}. Appearance: ${character.appearance}.${notes}`,
    `Reader says: ${input.message}`,
    "",
    `Answer as ${character.name}${story.language ? ` in ${languageName(story.language)}` : " in the story's language"}.`,
  );
  return lines.join("\n");
}

/**
 * The short fixed system prompt a fine-tuned route gets for a recorded run's task: what
 * training examples carry instead of the prompted (few-shot) one. Undefined for a task
 * this agent does not prompt (moderation).
 */
export function zeroShotPrompt(task: string, method: Method): string | undefined {
  switch (task) {
    case "open":
    case "continue":
    case "rewrite":
      return writingSystemPrompt(task, method, true).content;
    case "choices":
      return choicesPrompt(true).content;
    case "check":
      return checkPrompt(true).content;
    case "summarize":
      return summarizePrompt(true).content;
    case "illustrate":
      return illustratePrompt(true).content;
    case "talk":
      return talkPrompt(true).content;
    default:
      return undefined;
  }
}
