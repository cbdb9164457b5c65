/**
 * /talk: a reader talks with a character of the story between chapters. The reply streams
 * into the conversation like a chapter, but it is not part of the story: the head, the
 * branch and the canon stay as they are. Each reply is recorded as its own `talk` agent
 * run (a trajectory) with a `talk` reaction on the chapter it followed, which lets the
 * reader's next action cite it (`latestTalk`, read by `writingInputFor`); the reader's
 * 👍/👎 on the reply are `talk-rating` reactions, the run's outcome.
 */
import { randomUUID } from "node:crypto";
import { entryMatches, RegexBudget, splitKeys } from "../agent/lore.ts";
import type { BibleCharacter, StoryAgent, StorySnapshot } from "../agent/types.ts";
import { ModelError } from "../llm/types.ts";
import { StreamRenderer } from "../render/stream-renderer.ts";
import type { Surface } from "../render/surface.ts";
import { ensureCounter, readCounter, tryTakeCounter } from "../store/counters.ts";
import type { Db } from "../store/db.ts";
import { latestRatings } from "../training/score.ts";
import { COUNTER_KEYS } from "./counter-keys.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, type Conversation, conversationKey, upsertUser } from "./identity.ts";
import { LIMITS } from "./limits.ts";
import type { Moderator } from "./moderation.ts";
import { recordReaction } from "./reactions.ts";
import { runData } from "./run-data.ts";
import { buildSnapshot, loadChain, loadStoryWithCanon } from "./snapshot.ts";
import { talkRatingsOf } from "./talk-exchanges.ts";

export interface TalkOptions {
  /** Seconds a reader waits between two /talk messages (0: none). */
  cooldownSeconds: number;
  log?: (message: string) => void;
}

/** Lore entries given to a reply at most. */
const MAX_LORE = 8;

export interface TalkReply {
  /** The `talk` agent run: what the rating buttons name. */
  runId: string;
  character: string;
  reply: string;
}

export class TalkService {
  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly options: TalkOptions,
    private readonly moderator?: Moderator,
  ) {}

  /**
   * A character answers the reader, streamed to `surface`. Refused (nothing recorded, no
   * cooldown taken) for an empty or too long message, a story with no chapter yet, or a
   * name that is not a character of the story; refused during the reader's cooldown.
   */
  async talk(input: {
    storyId: string;
    actor: Actor;
    name: string;
    message: string;
    surface: Surface;
    signal?: AbortSignal;
  }): Promise<TalkReply> {
    const message = input.message.trim();
    if (message === "") throw new UserFacingError("talk.empty");
    if (message.length > LIMITS.talk) {
      throw new UserFacingError("talk.tooLong", { length: message.length, max: LIMITS.talk });
    }
    const story = await loadStoryWithCanon(this.db, input.storyId);
    if (story === null) throw new UserFacingError("error.noStory");
    const chain = await loadChain(this.db, story.id, story.headChapterId);
    const at = chain.filter((c) => c.status === "done").at(-1);
    if (at === undefined) throw new UserFacingError("talk.notYet");
    const snapshot = buildSnapshot(story, chain);
    const character = findCharacter(snapshot.bible.characters, input.name);
    if (character === undefined) {
      const names = snapshot.bible.characters.map((c) => c.name).join(", ");
      throw new UserFacingError(names === "" ? "talk.noCast" : "talk.unknownCharacter", {
        name: input.name.trim(),
        names,
      });
    }
    await this.moderator?.check(message, story.rating);
    const user = await upsertUser(this.db, input.actor);
    const release = await this.takeCooldown(user.id);

    try {
      return await this.reply(
        story.id,
        at.id,
        user.id,
        { ...input, message },
        character,
        loreAbout(story.lore, character.name),
        snapshot,
      );
    } catch (error) {
      // A reply that did not arrive whole costs no cooldown.
      await release();
      throw error;
    }
  }

  /** Stream the reply and record it: the run and the exchange, in one transaction. */
  private async reply(
    storyId: string,
    chapterId: string,
    userId: string,
    input: { message: string; surface: Surface; signal?: AbortSignal },
    character: BibleCharacter,
    lore: { keys: string[]; content: string }[],
    story: StorySnapshot,
  ): Promise<TalkReply> {
    const { message, surface } = input;
    const renderer = new StreamRenderer(surface);
    await surface.typing?.().catch((error: unknown) => this.options.log?.(`talk: typing failed: ${String(error)}`));
    // The speaker's name leads the reply's first text: a reply that never came shows nothing.
    let lead = `${character.name}: `;
    for await (const event of this.agent.talk({ story, character, lore, message }, input.signal)) {
      if (event.type === "text") {
        renderer.push(`${lead}${event.delta}`);
        lead = "";
        continue;
      }
      const runId = randomUUID();
      if (event.type === "failed") {
        await renderer.abort("(…)");
        // The failed run is kept, as every run is.
        await this.db.agentRun.create({
          data: { id: runId, ...runData(storyId, chapterId, event.run) },
          select: { id: true },
        });
        throw event.error;
      }
      await renderer.finish();
      const exchange = { runId, userId, character: character.name, message, reply: event.reply };
      await this.db.$transaction([
        this.db.agentRun.create({
          data: { id: runId, ...runData(storyId, chapterId, event.run) },
          select: { id: true },
        }),
        recordReaction(this.db, chapterId, { kind: "talk", data: exchange }),
      ]);
      return { runId, character: character.name, reply: event.reply };
    }
    throw new ModelError("cut", "the reply ended without a result");
  }

  /**
   * A reader's 👍 (1) or 👎 (-1) on a reply: an append-only `talk-rating` reaction (their
   * latest counts), refused for a run that is not a reply shown in this conversation.
   */
  async rate(input: {
    runId: string;
    actor: Actor;
    value: 1 | -1;
    conversation: Conversation;
  }): Promise<{ up: number; down: number }> {
    const run = await this.db.agentRun.findUnique({
      where: { id: input.runId },
      select: { task: true, chapterId: true, story: { select: { conversationId: true } } },
    });
    if (run === null || run.task !== "talk" || run.chapterId === null) throw new UserFacingError("error.stalePick");
    if (run.story.conversationId !== conversationKey(input.conversation)) {
      throw new UserFacingError("error.notYourStory");
    }
    const user = await upsertUser(this.db, input.actor);
    await recordReaction(this.db, run.chapterId, {
      kind: "talk-rating",
      data: { runId: input.runId, userId: user.id, value: input.value },
    });
    const rows = await this.db.reaction.findMany({
      where: { chapterId: run.chapterId, kind: "talk-rating" },
      orderBy: { createdAt: "asc" },
      select: { kind: true, data: true },
    });
    return latestRatings(talkRatingsOf(rows, input.runId));
  }

  /** Take the reader's cooldown; returns how to give it back (the reply failed). */
  private async takeCooldown(userId: string): Promise<() => Promise<void>> {
    const key = COUNTER_KEYS.talk(userId);
    const cooldownMs = this.options.cooldownSeconds * 1000;
    if (cooldownMs <= 0) return async () => {};
    await ensureCounter(this.db, key);
    const before = await readCounter(this.db, key);
    const now = new Date();
    if (!(await tryTakeCounter(this.db, key, { cooldownMs, now }))) {
      const last = (await readCounter(this.db, key))?.takenAt ?? now;
      const seconds = Math.max(1, Math.ceil((last.getTime() + cooldownMs - now.getTime()) / 1000));
      throw new UserFacingError("talk.cooldown", { seconds });
    }
    return async () => {
      // Only our own take is given back: a later one keeps its time.
      await this.db.counter.updateMany({
        where: { key, takenAt: now },
        data: { takenAt: before?.takenAt ?? new Date(0) },
      });
    };
  }
}

/**
 * The character a reader named: the full name (any case), else the one character whose
 * name has it as a word ("Mara" for "Mara Quinn").
 */
export function findCharacter(characters: BibleCharacter[], name: string): BibleCharacter | undefined {
  const wanted = name.trim().toLowerCase();
  if (wanted === "") return undefined;
  const exact = characters.find((c) => c.name.trim().toLowerCase() === wanted);
  if (exact !== undefined) return exact;
  const partial = characters.filter((c) =>
    c.name
      .toLowerCase()
      .split(/[\s·・.,-]+/u)
      .includes(wanted),
  );
  return partial.length === 1 ? partial[0] : undefined;
}

/** Lore entries about a character: a key names them (a word of the name, or a `/regex/` matching it). */
export function loreAbout(entries: { keys: string; content: string }[], name: string): TalkExchangeLore[] {
  // The lore engine's matching: whole words, and `/regex/` keys checked for safety and
  // time-boxed (a reader's pattern never stalls a reply).
  const budget = new RegexBudget();
  const about = name.slice(0, LIMITS.characterName);
  const out: TalkExchangeLore[] = [];
  for (const entry of entries) {
    const keys = splitKeys(entry.keys);
    if (entryMatches({ keys }, about, budget)) out.push({ keys, content: entry.content });
    if (out.length >= MAX_LORE) break;
  }
  return out;
}

type TalkExchangeLore = { keys: string[]; content: string };
