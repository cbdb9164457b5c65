/**
 * A deterministic "story model" for the HTTP fake server (end-to-end tests, benchmark).
 * It answers each call of the story agent plausibly and in format.
 *
 * How it tells the calls apart (markers documented in src/agent/prompts.ts):
 * - A structured output wanted by name, from a forced `tool_choice` (or `"required"` with
 *   such a tool), a `response_format` json_schema name, or the json_text strategy's user
 *   message `JSON_TEXT_MARKER + name` (the last one, unless a later user message starts a new
 *   `Step:`; repair turns keep it). Answered as `{ kind: "structured", name, value }`, which
 *   the server renders as the request asked (tool call, JSON content or JSON text):
 *   - `plan_story` -> a valid plan; `submit_chapter` -> title, summary and 3 distinct choices
 *     (rotated by chapter number so sets differ), and a story state that moves with the
 *     chapter number (Elias's relationship +15 a chapter, a milestone per chapter, the arc
 *     20% further); `offer_choices` -> `{ choices }`, the same 3;
 *   - `continuity_report` -> `{ ok: true, issues: [] }`;
 *   - `moderation_verdict` -> allowed, unless the text mentions "forbidden" (a refusal with a reason);
 *   - `pairwise_verdict` -> the longer of the two chapters wins.
 *   Optional fields left out (submit_chapter's `arc`) are sent as `null` when the request
 *   is strict or its schema lists them in `required` (strict schemas make them nullable).
 * - `tools` offered with `tool_choice` auto (ReAct): `recall` with a keyword of the
 *   reader's action on the first turn; `begin_writing` once a tool result came back.
 * - System prompt first line `Inkloom: summarize` -> a short summary.
 * - System prompt first line `Inkloom: talk` -> the character's in-character reply, streamed
 *   in 16-character chunks, quoting `Reader says: ` and naming `Character: ` (in Chinese when
 *   the story is), so tests can assert the reader's words reached the reply.
 * - Otherwise the first line of the last user message, `Step: <step>`:
 *   `thought` -> a short plan; `draft` -> full prose (non-streamed); `write` / `revise`
 *   -> 2-4 paragraphs streamed in 16-character chunks; `continue` (CONTINUE_MARKER) -> the
 *   rest of the chapter's prose after the partial text in the assistant turn before it
 *   (or a closing paragraph if that text is not a prefix of it), streamed the same way;
 *   anything else -> short text.
 * - Context lines read from user messages: `Scenario: `, `Reader's action: `,
 *   `Rewrite direction: `, `Author's note: `, `Chapter number: `.
 * The prose quotes the latest action or rewrite direction and names the chapter number,
 * and follows an author's note with a line quoting it, so tests can assert the reader's
 * input reached the chapter.
 */

import { keywords } from "../../src/agent/memory.ts";
import { AUTHOR_NOTE_LABEL, CONTINUE_MARKER, JSON_TEXT_MARKER } from "../../src/agent/prompts.ts";
import {
  CONTINUITY_REPORT_NAME,
  continuityReportSchema,
  type PlanStory,
  planStorySchema,
  TOOL_NAMES,
} from "../../src/agent/schemas.ts";
import { MODERATION_VERDICT } from "../../src/story/moderation.ts";
import { PAIRWISE_VERDICT } from "../../src/training/eval.ts";
import type { FakeReply, FakeRequest, Responder } from "./fake-openai-types.ts";

/** The fallback structured output of a chapter's choices alone (TOOL_NAMES.offerChoices in the agent). */
const OFFER_CHOICES = "offer_choices";

interface Message {
  role: string;
  content?: unknown;
}

const CJK = /[\u3400-\u4dbf\u4e00-\u9fff]/;

function text(m: Message | undefined): string {
  return typeof m?.content === "string" ? m.content : "";
}

/** The last value of a `Label: value` line across the user messages. */
function lastLine(messages: Message[], label: string): string | undefined {
  let found: string | undefined;
  for (const m of messages) {
    if (m.role !== "user") continue;
    for (const line of text(m).split("\n")) if (line.startsWith(label)) found = line.slice(label.length).trim();
  }
  return found;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function toolChoiceName(body: { tool_choice?: unknown }): string | undefined {
  const choice = body.tool_choice;
  if (!isRecord(choice) || !isRecord(choice.function)) return undefined;
  return typeof choice.function.name === "string" ? choice.function.name : undefined;
}

/** The structured outputs this responder can answer, by name. */
const STRUCTURED: ReadonlySet<string> = new Set([
  TOOL_NAMES.planStory,
  TOOL_NAMES.submitChapter,
  OFFER_CHOICES,
  CONTINUITY_REPORT_NAME,
  MODERATION_VERDICT,
  PAIRWISE_VERDICT,
]);

/** Keys a structured value may leave out (sent as null when the request wants every key). */
const OPTIONAL_KEYS: Record<string, readonly string[]> = { [TOOL_NAMES.submitChapter]: ["arc", "illustration"] };

interface Wanted {
  name: string;
  /** The JSON schema the request gives for it, when found. */
  schema: unknown;
  /** `strict: true` on the tool or response format. */
  strict: boolean;
}

interface ToolEntry {
  function?: { name?: unknown; parameters?: unknown; strict?: unknown };
}

/** Which structured output the request asks for, and with which schema; undefined for none. */
function wantedStructure(
  // biome-ignore lint/suspicious/noExplicitAny: the request body is arbitrary JSON
  body: any,
  messages: Message[],
): Wanted | undefined {
  const tools: ToolEntry[] = Array.isArray(body.tools) ? body.tools : [];
  const fromTool = (name: string): Wanted => {
    const fn = tools.find((t) => t.function?.name === name)?.function;
    return { name, schema: fn?.parameters, strict: fn?.strict === true };
  };
  const forced = toolChoiceName(body);
  if (forced !== undefined && STRUCTURED.has(forced)) return fromTool(forced);
  if (body.tool_choice === "required") {
    const name = tools.map((t) => t.function?.name).find((n) => typeof n === "string" && STRUCTURED.has(n));
    if (typeof name === "string") return fromTool(name);
  }
  const format = body.response_format?.json_schema;
  if (typeof format?.name === "string" && STRUCTURED.has(format.name)) {
    return { name: format.name, schema: format.schema, strict: format.strict === true };
  }
  // The json_text strategy: the last user message with the marker, unless a new step began after it.
  let asked: string | undefined;
  for (const m of messages) {
    if (m.role !== "user") continue;
    const content = text(m);
    if (content.includes(JSON_TEXT_MARKER)) asked = content;
    else if (content.startsWith("Step: ")) asked = undefined;
  }
  if (asked === undefined) return undefined;
  const after = asked.slice(asked.lastIndexOf(JSON_TEXT_MARKER) + JSON_TEXT_MARKER.length);
  const name = after.split("\n")[0]?.trim() ?? "";
  if (!STRUCTURED.has(name)) return undefined;
  return { name, schema: schemaInText(after), strict: false };
}

/** The first line of `text` that parses as a JSON object (the json_text request's schema). */
function schemaInText(text: string): unknown {
  for (const line of text.split("\n")) {
    if (!line.trimStart().startsWith("{")) continue;
    try {
      return JSON.parse(line);
    } catch {
      // Not the schema line; keep looking.
    }
  }
  return undefined;
}

/**
 * `value` with every optional key it lacks set to null when the request wants every key:
 * strict, its schema lists the key in `required`, or no schema was found.
 */
function withNulls(value: Record<string, unknown>, wanted: Wanted): Record<string, unknown> {
  const out = { ...value };
  const required = isRecord(wanted.schema) && Array.isArray(wanted.schema.required) ? wanted.schema.required : [];
  for (const key of OPTIONAL_KEYS[wanted.name] ?? []) {
    if (key in out) continue;
    if (wanted.strict || wanted.schema === undefined || required.includes(key)) out[key] = null;
  }
  return out;
}

function titleFrom(scenario: string, zh: boolean): string {
  if (zh) {
    const han = [...scenario].filter((c) => CJK.test(c)).join("");
    return han.slice(0, 8) || "无题";
  }
  const words = scenario
    .replace(/[^\p{L}\p{N}\s'-]/gu, "")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 5);
  const title = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
  return (title || "Untitled").slice(0, 60);
}

function plan(scenario: string, zh: boolean): PlanStory {
  const value: PlanStory = zh
    ? {
        title: titleFrom(scenario, true),
        language: "zh",
        logline: `${scenario.slice(0, 60)}`,
        characters: [
          { name: "林月", role: "主角", appearance: "黑色短发，灰色长衫，左手戴一枚银戒" },
          { name: "沈默", role: "神秘的灵媒", appearance: "高瘦，圆框眼镜，深蓝长袍" },
        ],
        places: [{ name: "外滩旅馆", description: "大理石大堂，一座停摆的钟" }],
        facts: ["故事开始于一个雨夜。"],
        arc: { beats: ["相遇", "秘密浮现", "抉择"], open_threads: ["沈默隐瞒了什么？"] },
      }
    : {
        title: titleFrom(scenario, false),
        language: "en",
        logline: scenario.slice(0, 200) || "A story begins.",
        characters: [
          { name: "Mara Quill", role: "protagonist", appearance: "short black hair, grey coat, silver ring" },
          { name: "Elias Wren", role: "the stranger", appearance: "tall, round spectacles, dark blue scarf" },
        ],
        places: [{ name: "The Harbour Hotel", description: "marble lobby with a stopped clock" }],
        facts: ["The story begins on a rainy night."],
        arc: { beats: ["The meeting", "The secret surfaces", "The choice"], open_threads: ["What is Elias hiding?"] },
      };
  return planStorySchema.parse(value);
}

const CHOICES_EN = [
  ["Follow the stranger into the rain", "a chase through the old town that reveals the stranger's hideout"],
  ["Open the sealed letter", "the letter's secret changes who can be trusted"],
  ["Go back to the hotel", "a quiet scene where an old friend returns with bad news"],
  ["Ask the porter what he saw", "a witness with a grudge points to the wrong suspect"],
  ["Climb to the clock tower", "a high vantage point and a dangerous discovery"],
  ["Burn the evidence", "safety now at the price of a lasting enemy"],
] as const;

const CHOICES_ZH = [
  ["跟着陌生人走进雨里", "穿过老城的追逐，找到陌生人的藏身处"],
  ["拆开那封封好的信", "信里的秘密改变了谁值得信任"],
  ["回到旅馆", "安静的一幕，老朋友带来坏消息"],
  ["问门房看到了什么", "一个心怀怨恨的证人指向错误的嫌疑人"],
  ["爬上钟楼", "高处的视野和一个危险的发现"],
  ["烧掉证据", "暂时安全，却结下长久的仇敌"],
] as const;

interface Choice {
  label: string;
  direction: string;
}

/** A chapter's structured parts, without the optional `arc` (withNulls adds null where wanted). */
interface Chapter {
  chapter_title: string;
  summary: string;
  choices: Choice[];
  new_characters: { name: string; role: string; appearance: string }[];
  new_facts: string[];
  illustration: { scene: string; characters: string[] };
  state: {
    relationships: { name: string; value: number; standing: string }[];
    milestones: string[];
    arc_progress: number;
  };
}

/** The story state chapter `n` leaves: warmer with the stranger each chapter, cooler with the porter. */
function stateAfter(n: number, zh: boolean): Chapter["state"] {
  const warmth = Math.min(100, 15 * n);
  return zh
    ? {
        relationships: [
          { name: "沈默", value: warmth, standing: `第${n}章后，林月开始信任他` },
          ...(n >= 2 ? [{ name: "门房", value: Math.max(-100, -10 * n), standing: "他在隐瞒什么" }] : []),
        ],
        milestones: [`第${n}章的转折`],
        arc_progress: Math.min(100, 20 * n),
      }
    : {
        relationships: [
          { name: "Elias Wren", value: warmth, standing: `after chapter ${n}, Mara begins to trust him` },
          ...(n >= 2
            ? [{ name: "The Porter", value: Math.max(-100, -10 * n), standing: "he is hiding something" }]
            : []),
        ],
        milestones: [`Turning point of chapter ${n}`],
        arc_progress: Math.min(100, 20 * n),
      };
}

/** Three distinct choices, rotated by chapter number so consecutive sets differ. */
function choicesFor(n: number, zh: boolean): Choice[] {
  const pool = zh ? CHOICES_ZH : CHOICES_EN;
  return [0, 1, 2].map((i) => {
    const [label, direction] = pool[(n + i * 2) % pool.length] ?? pool[0];
    return { label, direction };
  });
}

function chapter(n: number, zh: boolean, action: string | undefined): Chapter {
  const choices = choicesFor(n, zh);
  return {
    chapter_title: zh ? `第${n}章` : `Chapter ${n}: The Rain`,
    summary: zh
      ? `第${n}章：${action ? `读者选择了“${action}”，` : ""}故事继续向前。`
      : `In chapter ${n}, ${action ? `after "${action}", ` : ""}the story moved on.`,
    choices,
    new_characters: [],
    new_facts: [],
    state: stateAfter(n, zh),
    illustration: zh
      ? { scene: `林月在雨夜的街灯下停下脚步（第${n}章）。`, characters: [] }
      : {
          scene: `Mara in her grey coat watches the harbour lights while Elias waits under the stopped clock (chapter ${n}).`,
          characters: ["Mara", "Elias"],
        },
  };
}

function prose(
  n: number,
  zh: boolean,
  action: string | undefined,
  direction: string | undefined,
  note?: string,
): string {
  const noted =
    note === undefined ? [] : [zh ? `（遵循作者注：“${note}”）` : `(Following the author's note: "${note}".)`];
  if (zh) {
    return [
      ...noted,
      `第${n}章。${direction ? `按照“${direction}”的方向，` : ""}${action ? `读者选择了“${action}”。` : "雨夜开始了。"}`,
      "雨水顺着屋檐落下，街灯在水面上碎成一片一片的光。林月停下脚步，听见远处的钟声。",
      "她知道，今晚之后，一切都会不同。",
    ].join("\n\n");
  }
  const lead = direction
    ? `Chapter ${n}, rewritten as asked: "${direction}".`
    : action
      ? `Chapter ${n}. Because the reader chose "${action}", the night turned.`
      : `Chapter ${n}. The rain began before anyone noticed.`;
  return [
    ...noted,
    lead,
    "Mara pulled her grey coat tighter and watched the harbour lights tremble on the water. Somewhere behind her a door closed softly.",
    "Elias was waiting under the stopped clock, his spectacles fogged, holding something he did not want to give her.",
  ].join("\n\n");
}

/** What a resumed chapter adds when the partial text is not a prefix of its prose. */
function closing(zh: boolean): string {
  return zh
    ? "\n\n钟声又响了一次，仿佛从未停过。林月没有回头。"
    : "\n\nAbove them the stopped clock ticked once, as if it had never stopped, and neither of them moved.";
}

/** The rest of the chapter after `partial`: its deterministic prose sliced after it, or a closing paragraph. */
function remainder(full: string, partial: string, zh: boolean): string {
  if (partial !== "" && full.startsWith(partial) && full.length > partial.length) return full.slice(partial.length);
  return closing(zh);
}

/** A deterministic responder answering every call of the story agent in format. */
export function storyResponder(options: { language?: "en" | "zh" } = {}): Responder {
  return (req: FakeRequest): FakeReply => {
    // biome-ignore lint/suspicious/noExplicitAny: the request body is arbitrary JSON
    const body: any = req.body ?? {};
    const messages: Message[] = Array.isArray(body.messages) ? body.messages : [];
    const userText = messages
      .filter((m) => m.role === "user")
      .map(text)
      .join("\n");
    const zh = options.language === "zh" && CJK.test(userText);
    const n = Number.parseInt(lastLine(messages, "Chapter number:") ?? "1", 10) || 1;
    const action = lastLine(messages, "Reader's action:");
    const direction = lastLine(messages, "Rewrite direction:");
    const note = lastLine(messages, AUTHOR_NOTE_LABEL.trim());
    const wanted = wantedStructure(body, messages);
    if (wanted !== undefined) {
      const structured = (value: unknown): FakeReply => ({ kind: "structured", name: wanted.name, value });
      switch (wanted.name) {
        case TOOL_NAMES.planStory: {
          const scenario = lastLine(messages, "Scenario:") ?? text(messages[messages.length - 1]);
          return structured({ ...plan(scenario, zh) });
        }
        case TOOL_NAMES.submitChapter:
          return structured(withNulls({ ...chapter(n, zh, action ?? direction) }, wanted));
        case OFFER_CHOICES:
          return structured({ choices: choicesFor(n, zh) });
        case MODERATION_VERDICT: {
          // A moderation model that refuses anything mentioning "forbidden" (for tests).
          const refused = /forbidden/i.test(userText);
          return structured({ allowed: !refused, reason: refused ? "it breaks the server's rules" : "" });
        }
        case PAIRWISE_VERDICT: {
          // A judge that reads the texts, not their positions: the longer chapter wins.
          const shownIn = [...messages].reverse().find((m) => m.role === "user" && /^# Chapter [12]$/m.test(text(m)));
          const shown = text(shownIn ?? messages[messages.length - 1]).split(JSON_TEXT_MARKER)[0] ?? "";
          const [, one = "", two = ""] = shown.split(/^# Chapter [12]$/m);
          const a = one.trim().length;
          const b = two.trim().length;
          return structured({ winner: a === b ? "tie" : a > b ? "1" : "2", reason: "the fuller chapter" });
        }
        default:
          return structured(continuityReportSchema.parse({ ok: true, issues: [] }));
      }
    }
    if (Array.isArray(body.tools) && body.tools.length > 0) {
      const last = messages[messages.length - 1];
      if (last?.role === "tool") {
        return {
          kind: "tool_calls",
          content: zh ? "够了，开始写。" : "I know enough to write.",
          calls: [
            {
              name: TOOL_NAMES.beginWriting,
              arguments: { plan: zh ? "写出选择的后果。" : "Write what the choice leads to." },
            },
          ],
        };
      }
      const query = keywords(action ?? direction ?? "")[0] ?? (zh ? "雨夜" : "rain");
      return {
        kind: "tool_calls",
        content: zh ? "先回忆之前发生的事。" : "What happened before?",
        calls: [{ name: TOOL_NAMES.recall, arguments: { query } }],
      };
    }
    if (text(messages[0]).split("\n")[0] === "Inkloom: illustrate") {
      // Keeps the scene's words (tests find them in the image prompt), adds a picture's framing.
      return {
        kind: "text",
        text: `${lastLine(messages, "Scene:") ?? "A quiet scene"}, wide shot, soft evening light`,
      };
    }
    if (text(messages[0]).split("\n")[0] === "Inkloom: summarize") {
      const range = (lastLine(messages, "New chapters") ?? "").replace(/:$/, "");
      return {
        kind: "text",
        text: zh ? `摘要：故事推进到了新的章节${range}。` : `Summary: the story moved through chapters ${range}.`,
      };
    }
    if (text(messages[0]).split("\n")[0] === "Inkloom: talk") {
      const who = lastLine(messages, "Character:") ?? "";
      const said = lastLine(messages, "Reader says:") ?? "";
      const reply = zh
        ? `（${who}想了想。）你问“${said}”？我只能说，雨停之前，什么都别相信。`
        : `*${who} considers you for a moment.* You ask "${said}"? All I can tell you is this: trust nothing until the rain stops.`;
      return { kind: "text", text: reply, chunkSize: 16 };
    }
    const lastUser = messages.findLastIndex((m) => m.role === "user");
    const step = text(messages[lastUser]).split("\n")[0] ?? "";
    switch (step) {
      case CONTINUE_MARKER: {
        // The partial prose is the assistant turn before the resumption request.
        const partial = text(messages.slice(0, lastUser).findLast((m) => m.role === "assistant"));
        return { kind: "text", text: remainder(prose(n, zh, action, direction, note), partial, zh), chunkSize: 16 };
      }
      case "Step: thought":
        return {
          kind: "text",
          text: zh ? `计划：第${n}章写出选择的后果。` : `Plan: chapter ${n} shows what the choice leads to.`,
        };
      case "Step: draft":
        return { kind: "text", text: prose(n, zh, action, direction, note) };
      case "Step: write":
      case "Step: revise":
        return { kind: "text", text: prose(n, zh, action, direction, note), chunkSize: 16 };
      default:
        return { kind: "text", text: zh ? "好的。" : "OK." };
    }
  };
}
