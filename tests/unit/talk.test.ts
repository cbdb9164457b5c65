/**
 * /talk's pure parts: finding the character a reader named, the lore about them, the
 * rating buttons' codec, the typed arguments, the talk prompt, and the agent's talk run.
 */
import { describe, expect, it } from "vitest";
import {
  DISCORD_CUSTOM_ID_FORMAT,
  decodeAction,
  encodeAction,
  TELEGRAM_CALLBACK_FORMAT,
} from "../../commands/action-codec.ts";
import { talk } from "../../commands/talk.ts";
import { argsFromText } from "../../commands/text-args.ts";
import {
  firstUserMessage,
  TALK_MARKER,
  TALK_REPLY_MAX_CHARS,
  talkUserMessage,
  zeroShotPrompt,
} from "../../src/agent/prompts.ts";
import { createStoryAgent } from "../../src/agent/story-agent.ts";
import type { StorySnapshot, TalkEvent, TalkInput } from "../../src/agent/types.ts";
import { ModelError } from "../../src/llm/types.ts";
import { talkRatingRow } from "../../src/render/offer-layout.ts";
import { findCharacter, loreAbout } from "../../src/story/talk.ts";
import { talkRatingsOf } from "../../src/story/talk-exchanges.ts";
import { latestRatings } from "../../src/training/score.ts";
import { FakeModelClient } from "../fakes/fake-model-client.ts";

const MARA = { name: "Mara Quill", role: "protagonist", appearance: "grey coat" };
const ELIAS = { name: "Elias Wren", role: "the stranger", appearance: "round spectacles", notes: "hides a letter" };

const story: StorySnapshot = {
  premise: "a lighthouse keeper hears a bell",
  genre: "none",
  language: "zh",
  title: "The Bell",
  bible: { characters: [MARA, ELIAS], places: [], facts: ["The bell rang at midnight."] },
  arc: { beats: ["SECRET BEAT: Elias is the bell ringer"], openThreads: [] },
  summary: "",
  summaryUpTo: 0,
  chapters: [{ number: 1, title: "Night", text: "Mara climbed the tower.", summary: "", action: "" }],
  lore: [],
};

describe("findCharacter", () => {
  it("finds the full name in any case, or a unique word of it", () => {
    expect(findCharacter([MARA, ELIAS], "mara quill")).toBe(MARA);
    expect(findCharacter([MARA, ELIAS], "Elias")).toBe(ELIAS);
    expect(findCharacter([MARA, ELIAS], "  wren ")).toBe(ELIAS);
  });

  it("finds nobody for an unknown, empty or ambiguous name", () => {
    expect(findCharacter([MARA, ELIAS], "Tomas")).toBeUndefined();
    expect(findCharacter([MARA, ELIAS], "")).toBeUndefined();
    const twin = { ...MARA, name: "Mara Wren" };
    expect(findCharacter([MARA, twin], "Mara")).toBeUndefined();
  });
});

describe("loreAbout", () => {
  it("keeps the entries whose keys name the character, by word or /regex/", () => {
    const entries = [
      { keys: "Elias, scarf", content: "Elias never takes off the scarf." },
      { keys: "/el+ias/", content: "A regex entry." },
      { keys: "lighthouse", content: "The lighthouse is old." },
      { keys: "/(a+)+$/", content: "A pattern that never matches the name." },
      { keys: "/[bad/", content: "An invalid pattern." },
    ];
    expect(loreAbout(entries, "Elias Wren").map((l) => l.content)).toEqual([
      "Elias never takes off the scarf.",
      "A regex entry.",
    ]);
    expect(loreAbout(entries, "Mara Quill")).toEqual([]);
  });

  it("never tries a catastrophic /regex/ key: the lore engine refuses it (a name of a's would take ages)", () => {
    const entries = [{ keys: "/(a+)+b/", content: "Backtracks forever." }];
    expect(loreAbout(entries, "a".repeat(80))).toEqual([]);
  });
});

describe("rating buttons on a reply", () => {
  const runId = "0f8fad5b-d9cb-469f-a165-70867728950e";

  it("round-trips through Telegram's callback data and Discord's custom id", () => {
    for (const format of [TELEGRAM_CALLBACK_FORMAT, DISCORD_CUSTOM_ID_FORMAT]) {
      for (const value of [1, -1] as const) {
        const data = encodeAction({ kind: "rate-talk", runId, value }, format);
        expect(decodeAction(data, format)).toEqual({ kind: "rate-talk", runId, value });
      }
    }
    expect(encodeAction({ kind: "rate-talk", runId, value: 1 }, TELEGRAM_CALLBACK_FORMAT)).toBe(`tu|${runId}`);
  });

  it("refuses mangled or extended data", () => {
    expect(decodeAction(`tu|${runId}|1`, TELEGRAM_CALLBACK_FORMAT)).toBeUndefined();
    expect(decodeAction("tu|bad id!", TELEGRAM_CALLBACK_FORMAT)).toBeUndefined();
  });

  it("is a 👍/👎 row naming the run", () => {
    expect(talkRatingRow(runId).map((b) => [b.label, b.action])).toEqual([
      ["👍", { kind: "rate-talk", runId, value: 1 }],
      ["👎", { kind: "rate-talk", runId, value: -1 }],
    ]);
  });

  it("counts each reader's latest rating of that reply only", () => {
    const rows = [
      { kind: "talk-rating", data: { runId, userId: "a", value: -1 } },
      { kind: "talk-rating", data: { runId, userId: "a", value: 1 } },
      { kind: "talk-rating", data: { runId: "other", userId: "b", value: -1 } },
      { kind: "rating", data: { userId: "c", value: -1 } },
    ];
    expect(latestRatings(talkRatingsOf(rows, runId))).toEqual({ up: 1, down: 0 });
  });
});

describe("/talk typed", () => {
  it("takes the name before a colon (also a full-width one) and the message after", () => {
    expect(argsFromText(talk.spec, "Mara Quill: do you trust him?")).toEqual({
      name: "Mara Quill",
      message: "do you trust him?",
    });
    expect(argsFromText(talk.spec, "林月：你信他吗？")).toEqual({ name: "林月", message: "你信他吗？" });
    expect(argsFromText(talk.spec, "Elias hello there")).toEqual({ name: "Elias", message: "hello there" });
  });
});

describe("talk prompt", () => {
  const input: TalkInput = {
    story,
    character: ELIAS,
    lore: [{ keys: ["Elias"], content: "Elias never takes off the scarf." }],
    message: "What is in the letter?",
  };

  it("carries the character, their lore, the reader's words and the story's language", () => {
    const text = talkUserMessage(input, "## Story bible\n- Mara Quill");
    expect(text).toContain("Character: Elias Wren");
    expect(text).toContain("Notes: hides a letter");
    expect(text).toContain("Elias never takes off the scarf.");
    expect(text).toContain("Reader says: What is in the letter?");
    expect(text).toContain("Answer as Elias Wren in Chinese (zh).");
  });

  it("has a zero-shot prompt for training examples", () => {
    expect(zeroShotPrompt("talk", "cot")?.split("\n")[0]).toBe("Inkloom: talk");
  });

  it("marks a reader's exchange in a continue chapter's prompt as not canon", () => {
    const text = firstUserMessage(
      {
        task: "continue",
        story,
        chapterNumber: 2,
        memory: "",
        action: "Ask Elias for the letter",
        talk: { character: "Elias Wren", message: "What is in the letter?", reply: "Nothing for you." },
      },
      "write",
    );
    expect(text).toContain(`## ${TALK_MARKER} (not canon)`);
    expect(text).toContain("Elias Wren: Nothing for you.");
    expect(text.indexOf(TALK_MARKER)).toBeLessThan(text.indexOf("Reader's action: Ask Elias"));
  });
});

async function collect(events: AsyncIterable<TalkEvent>): Promise<TalkEvent[]> {
  const out: TalkEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe("StoryAgent.talk", () => {
  const input: TalkInput = { story, character: ELIAS, lore: [], message: "Who rang the bell?" };

  it("streams the reply and records a talk run without the hidden arc", async () => {
    const model = new FakeModelClient([{ text: "I did not ring it. Ask the sea.", chunkSize: 5 }]);
    const events = await collect(createStoryAgent(model).talk(input));
    const deltas = events.filter((e) => e.type === "text");
    expect(deltas.length).toBeGreaterThan(1);
    const done = events.at(-1);
    expect(done).toMatchObject({ type: "done", reply: "I did not ring it. Ask the sea." });
    if (done?.type !== "done") throw new Error("no reply");
    expect(done.run).toMatchObject({ task: "talk", method: "cot", status: "ok", checks: { finishedInFormat: true } });
    expect(done.run.messages.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(model.calls[0]?.request.task).toBe("talk");
    const prompt = JSON.stringify(model.calls[0]?.request.messages);
    expect(prompt).toContain("Mara climbed the tower.");
    expect(prompt).toContain("The bell rang at midnight.");
    expect(prompt).not.toContain("SECRET BEAT");
  });

  it("cuts a reply that runs past the limit", async () => {
    const model = new FakeModelClient([{ text: "la ".repeat(TALK_REPLY_MAX_CHARS), chunkSize: 50 }]);
    const events = await collect(createStoryAgent(model).talk(input));
    const shown = events.map((e) => (e.type === "text" ? e.delta : "")).join("");
    expect(shown.length).toBe(TALK_REPLY_MAX_CHARS);
  });

  it("ends with failed (and a failed run) when the model fails", async () => {
    const model = new FakeModelClient([{ error: new ModelError("server", "down") }]);
    const events = await collect(createStoryAgent(model).talk(input));
    expect(events.at(-1)).toMatchObject({ type: "failed", run: { task: "talk", status: "failed" } });
  });
});
