import { t } from "../src/i18n/messages.ts";
import { splitForLimit } from "../src/render/split.ts";
import type { CommandContext } from "./types.ts";

/**
 * Show where the story stands: optionally the head chapter's text, then its
 * choices, or the retry hint when the head chapter failed.
 */
export async function showState(ctx: CommandContext, storyId: string, show: { text: boolean }): Promise<void> {
  const state = await ctx.queries.state(storyId);
  const head = state.head;
  if (head === null) return;
  if (head.status === "failed") {
    await ctx.surface.notice(t(ctx.locale, "chapter.unfinished", { number: head.number }));
    return;
  }
  if (show.text && head.status === "done") {
    await ctx.surface.notice(
      head.title
        ? t(ctx.locale, "chapter.heading", { number: head.number, title: head.title })
        : t(ctx.locale, "chapter.headingUntitled", { number: head.number }),
    );
    for (const part of splitForLimit(head.text, ctx.surface.limits.maxMessageLength)) await ctx.surface.post(part);
  }
  if (state.choices.length > 0 && !(await ctx.queries.offerChoicesAgain(storyId))) {
    await ctx.surface.offerChoices({
      storyId,
      revision: state.revision,
      ...(state.head === null ? {} : { chapterId: state.head.id }),
      choices: state.choices,
      allowWriteIn: true,
      mode: "pick",
    });
  }
}
