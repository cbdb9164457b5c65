/**
 * What the buttons of an offer do besides picking: vote, suggest a choice of one's own,
 * close the vote, and rate the chapter the offer ends. Hidden commands: readers press them
 * (or answer a prompt or a modal), and they get the same argument checks as typed ones.
 */
import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { LIMITS } from "../src/story/limits.ts";
import { REVISION } from "./play.ts";
import { storyHere } from "./story-context.ts";
import { defineCommand } from "./types.ts";

/** Ids travel in buttons (at most 40 characters, see ./action-codec.ts). */
const STORY = {
  name: "story",
  type: "string",
  required: true,
  maxLength: 40,
  description: { en: "Story id", zh: "故事编号" },
} as const;

/** One member's vote on an open ballot (a later vote replaces theirs). */
export const vote = defineCommand(
  {
    name: "vote",
    hidden: true,
    description: { en: "Vote for a choice", zh: "为选项投票" },
    example: "1",
    options: [
      STORY,
      REVISION,
      { name: "position", type: "integer", required: true, min: 1, description: { en: "Choice", zh: "选项" } },
    ],
  } as const,
  async (ctx, args) => {
    await storyHere(ctx, args.story);
    const tally = await ctx.ballots.vote(args.story, args.revision, args.position, ctx.actor, {
      callerDraws: ctx.drawsRedraws === true,
    });
    const reply = t(ctx.locale, "vote.recorded", { label: tally.labels[args.position - 1] ?? "" });
    return { kind: "done", reply, ...(tally.redraw === undefined ? {} : { redraw: tally.redraw }) };
  },
);

/** A member's own choice joins the ballot; without text, the reader is asked for it. */
export const suggest = defineCommand(
  {
    name: "suggest",
    hidden: true,
    description: { en: "Suggest your own choice", zh: "提出你自己的选项" },
    example: "The ghost speaks",
    options: [
      STORY,
      REVISION,
      {
        name: "text",
        type: "string",
        required: false,
        maxLength: LIMITS.writeIn,
        description: { en: "What should happen", zh: "应该发生什么" },
      },
    ],
  } as const,
  async (ctx, args) => {
    if (args.text === undefined) {
      return { kind: "ask", question: { field: "suggestion", storyId: args.story, revision: args.revision } };
    }
    await storyHere(ctx, args.story);
    await ctx.ballots.writeIn(args.story, args.revision, args.text, ctx.actor);
    return { kind: "done", reply: t(ctx.locale, "vote.added", { label: args.text.trim() }) };
  },
);

/** The starter or a moderator closes the vote now; the leading choice is written. */
export const closeVote = defineCommand(
  {
    name: "close-vote",
    hidden: true,
    description: { en: "Close the vote", zh: "结束投票" },
    example: "",
    options: [STORY, REVISION],
  } as const,
  async (ctx, args) => {
    await storyHere(ctx, args.story);
    const closed = await ctx.ballots.closeEarly(args.story, args.revision, ctx.actor, ctx.moderator, {
      callerDraws: ctx.drawsRedraws === true,
    });
    const reply = t(ctx.locale, "pick.taken", { label: closed.result.label });
    return { kind: "done", reply, ...(closed.redraw === undefined ? {} : { redraw: closed.redraw }) };
  },
);

/**
 * 👍 or 👎 on a finished chapter (a reader's latest rating counts), answered to the reader
 * alone with the chapter's tally. The story service checks the chapter belongs to a story
 * shown in this conversation.
 */
export const rate = defineCommand(
  {
    name: "rate",
    hidden: true,
    description: { en: "Rate a chapter", zh: "给章节评分" },
    example: "",
    options: [
      { name: "chapter", type: "string", required: true, maxLength: 40, description: { en: "Chapter", zh: "章节" } },
      { name: "value", type: "integer", required: true, min: -1, description: { en: "1 or -1", zh: "1 或 -1" } },
    ],
  } as const,
  async (ctx, args) => {
    if (args.value !== 1 && args.value !== -1)
      throw new UserFacingError("error.badInteger", { input: String(args.value) });
    const value = args.value;
    const tally = await ctx.ratings.rate({
      chapterId: args.chapter,
      actor: ctx.actor,
      value,
      conversation: ctx.conversation,
    });
    return { kind: "done", reply: t(ctx.locale, "rating.thanks", tally) };
  },
);
