/**
 * /talk <name>: <message> — a character of the story answers, in character; and the
 * hidden 👍/👎 on that reply (`rate-talk`). The reply is no part of the story: nothing
 * about the story's head changes, and only the reader's next action may cite it.
 */
import { t } from "../src/i18n/messages.ts";
import { talkRatingRow } from "../src/render/offer-layout.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { LIMITS } from "../src/story/limits.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

export const talk = defineCommand(
  {
    name: "talk",
    description: {
      en: "Talk to a character of the story (not part of the story)",
      zh: "和故事里的角色说话（不计入故事正文）",
    },
    example: "/talk Mara: do you trust the ferryman?",
    splitText: true,
    options: [
      {
        name: "name",
        type: "string",
        required: true,
        maxLength: LIMITS.characterName,
        description: { en: "The character", zh: "角色" },
      },
      {
        name: "message",
        type: "string",
        required: true,
        maxLength: LIMITS.talk,
        description: { en: "What you say to them", zh: "你要对角色说的话" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = currentStory(ctx);
    const reply = await ctx.talks.talk({
      storyId,
      actor: ctx.actor,
      name: args.name,
      message: args.message,
      surface: ctx.surface,
    });
    // Rated where buttons can be pressed; the terminal has none.
    if (ctx.surface.answers?.buttons === true && ctx.surface.ask !== undefined) {
      await ctx.surface.ask({
        text: t(ctx.locale, "talk.rate", { name: reply.character }),
        rows: [talkRatingRow(reply.runId)],
        reply: false,
      });
    }
    return { kind: "done" };
  },
);

/** 👍 or 👎 on a /talk reply (a reader's latest counts), answered to the reader alone. */
export const rateTalk = defineCommand(
  {
    name: "rate-talk",
    hidden: true,
    description: { en: "Rate a character's reply", zh: "给角色的回答评分" },
    example: "",
    options: [
      { name: "run", type: "string", required: true, maxLength: 40, description: { en: "Reply", zh: "回答" } },
      { name: "value", type: "integer", required: true, min: -1, description: { en: "1 or -1", zh: "1 或 -1" } },
    ],
  } as const,
  async (ctx, args) => {
    if (args.value !== 1 && args.value !== -1)
      throw new UserFacingError("error.badInteger", { input: String(args.value) });
    const tally = await ctx.talks.rate({
      runId: args.run,
      actor: ctx.actor,
      value: args.value,
      conversation: ctx.conversation,
    });
    return { kind: "done", reply: t(ctx.locale, "talk.thanks", tally) };
  },
);
