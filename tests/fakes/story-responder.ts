/**
 * A deterministic "story model" for the HTTP fake server (end-to-end tests, benchmark).
 * It answers each call of the story agent plausibly and in format.
 *
 * How it tells the calls apart (markers documented in src/agent/prompts.ts):
 * - `tool_choice` forcing `plan_story` -> a valid plan; forcing `submit_chapter` -> title,
 *   summary and 3 distinct choices (rotated by chapter number so sets differ).
 * - `response_format` json_schema named `continuity_report` -> `{ ok: true, issues: [] }`.
 * - `response_format` json_schema named `moderation_verdict` -> allowed, unless the text
 *   mentions "forbidden" (a refusal with a reason).
 * - `tools` offered with `tool_choice` auto (ReAct): `recall` with a keyword of the
 *   reader's action on the first turn; `begin_writing` once a tool result came back.
 * - System prompt first line `Inkloom: summarize` -> a short summary.
 * - Otherwise the first line of the last user message, `Step: <step>`:
 *   `thought` -> a short plan; `draft` -> full prose (non-streamed); `write` / `revise`
 *   -> 2-4 paragraphs streamed in 16-character chunks; anything else -> short text.
 * - Context lines read from user messages: `Scenario: `, `Reader's action: `,
 *   `Rewrite direction: `, `Chapter number: `.
 * The prose quotes the latest action or rewrite direction and names the chapter number,
 * so tests can assert the reader's input reached the chapter.
 */

import { keywords } from "../../src/agent/memory.ts";
import {
  CONTINUITY_REPORT_NAME,
  continuityReportSchema,
  type PlanStory,
  planStorySchema,
  type SubmitChapter,
  submitChapterSchema,
  TOOL_NAMES,
} from "../../src/agent/schemas.ts";
import { MODERATION_VERDICT } from "../../src/story/moderation.ts";
import { PAIRWISE_VERDICT } from "../../src/training/eval.ts";
import type { FakeReply, FakeRequest, Responder } from "./fake-openai-types.ts";

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

function toolChoiceName(body: { tool_choice?: unknown }): string | undefined {
  const choice = body.tool_choice as { function?: { name?: string } } | undefined;
  return typeof choice === "object" && choice !== null ? choice.function?.name : undefined;
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

function chapter(n: number, zh: boolean, action: string | undefined): SubmitChapter {
  const pool = zh ? CHOICES_ZH : CHOICES_EN;
  const choices = [0, 1, 2].map((i) => {
    const [label, direction] = pool[(n + i * 2) % pool.length] ?? pool[0];
    return { label, direction };
  });
  const value: SubmitChapter = {
    chapter_title: zh ? `第${n}章` : `Chapter ${n}: The Rain`,
    summary: zh
      ? `第${n}章：${action ? `读者选择了“${action}”，` : ""}故事继续向前。`
      : `In chapter ${n}, ${action ? `after "${action}", ` : ""}the story moved on.`,
    choices,
    new_characters: [],
    new_facts: [],
    illustration: zh
      ? { scene: `林月在雨夜的街灯下停下脚步（第${n}章）。`, characters: [] }
      : {
          scene: `Mara in her grey coat watches the harbour lights while Elias waits under the stopped clock (chapter ${n}).`,
          characters: ["Mara", "Elias"],
        },
  };
  return submitChapterSchema.parse(value);
}

function prose(n: number, zh: boolean, action: string | undefined, direction: string | undefined): string {
  if (zh) {
    return [
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
    lead,
    "Mara pulled her grey coat tighter and watched the harbour lights tremble on the water. Somewhere behind her a door closed softly.",
    "Elias was waiting under the stopped clock, his spectacles fogged, holding something he did not want to give her.",
  ].join("\n\n");
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
    const forced = toolChoiceName(body);

    if (forced === TOOL_NAMES.planStory) {
      const scenario = lastLine(messages, "Scenario:") ?? text(messages[messages.length - 1]);
      return { kind: "tool_calls", calls: [{ name: TOOL_NAMES.planStory, arguments: { ...plan(scenario, zh) } }] };
    }
    if (forced === TOOL_NAMES.submitChapter) {
      return {
        kind: "tool_calls",
        calls: [{ name: TOOL_NAMES.submitChapter, arguments: { ...chapter(n, zh, action ?? direction) } }],
      };
    }
    if (body.response_format?.json_schema?.name === MODERATION_VERDICT) {
      // A moderation model that refuses anything mentioning "forbidden" (for tests).
      const refused = /forbidden/i.test(userText);
      return { kind: "json", value: { allowed: !refused, reason: refused ? "it breaks the server's rules" : "" } };
    }
    if (body.response_format?.json_schema?.name === PAIRWISE_VERDICT) {
      // A judge that reads the texts, not their positions: the longer chapter wins.
      const shown = text(messages[messages.length - 1]);
      const [, one = "", two = ""] = shown.split(/^# Chapter [12]$/m);
      const a = one.trim().length;
      const b = two.trim().length;
      return { kind: "json", value: { winner: a === b ? "tie" : a > b ? "1" : "2", reason: "the fuller chapter" } };
    }
    if (body.response_format?.json_schema?.name === CONTINUITY_REPORT_NAME) {
      return { kind: "json", value: continuityReportSchema.parse({ ok: true, issues: [] }) };
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
    const step = text([...messages].reverse().find((m) => m.role === "user")).split("\n")[0] ?? "";
    switch (step) {
      case "Step: thought":
        return {
          kind: "text",
          text: zh ? `计划：第${n}章写出选择的后果。` : `Plan: chapter ${n} shows what the choice leads to.`,
        };
      case "Step: draft":
        return { kind: "text", text: prose(n, zh, action, direction) };
      case "Step: write":
      case "Step: revise":
        return { kind: "text", text: prose(n, zh, action, direction), chunkSize: 16 };
      default:
        return { kind: "text", text: zh ? "好的。" : "OK." };
    }
  };
}
