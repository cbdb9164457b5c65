import { t } from "../src/i18n/messages.ts";
import { dispatch } from "./dispatch.ts";
import { showState } from "./show-state.ts";
import { hydrate, storyUnderControl } from "./story-context.ts";
import { type CommandContext, type CommandOutcome, defineCommand } from "./types.ts";

export const branch = defineCommand(
  {
    name: "branch",
    description: {
      en: "Continue from chapter N (later chapters stay as a branch)",
      zh: "从第 N 章继续（之后的章节保留为分支）",
    },
    example: "/branch 2",
    options: [
      {
        name: "chapter",
        type: "integer",
        required: true,
        min: 1,
        description: { en: "Chapter number", zh: "章节编号" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = await storyUnderControl(ctx);
    await ctx.stories.branch(storyId, args.chapter);
    await ctx.surface.notice(t(ctx.locale, "branch.done", { number: args.chapter }));
    await showState(ctx, storyId, { text: false });
    return { kind: "done" };
  },
);

/**
 * A branch that continues in another conversation (Discord's new thread, `ctx`): the story
 * moves there from `from`, and back if the branch is refused. The old conversation keeps
 * the chapters it showed.
 */
export async function branchElsewhere(
  ctx: CommandContext,
  from: CommandContext,
  raw: Record<string, unknown>,
  log: (message: string) => void,
): Promise<CommandOutcome> {
  await hydrate(from);
  const storyId = from.session.storyId;
  if (storyId === undefined) {
    await (from.replyPrivately ?? from.surface.notice.bind(from.surface))(t(from.locale, "error.noStory"));
    return { kind: "failed" };
  }
  await ctx.stories.moveConversation(storyId, ctx.conversation);
  ctx.session.storyId = storyId;
  const outcome = await dispatch(branch, raw, ctx, log);
  if (outcome.kind === "failed") {
    await ctx.stories.moveConversation(storyId, from.conversation);
    delete ctx.session.storyId;
    return outcome;
  }
  delete from.session.storyId;
  return outcome;
}
