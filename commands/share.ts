import { t } from "../src/i18n/messages.ts";
import { UserFacingError } from "../src/story/errors.ts";
import { SHARE_CODE_LENGTH } from "../src/story/sharing.ts";
import { showState } from "./show-state.ts";
import { currentStory, withinQuota } from "./story-context.ts";
import { type CommandContext, defineCommand } from "./types.ts";

/** How the platform spells a command in what the reader reads. */
function label(ctx: CommandContext, name: string): string {
  return ctx.commandLabel?.(name) ?? `/${name}`;
}

export const share = defineCommand(
  {
    name: "share",
    description: {
      en: "Share this story: a code others remix it by (off: stop sharing)",
      zh: "分享这个故事：别人可用分享码改编（off：停止分享）",
    },
    example: "/share off",
    options: [
      {
        name: "mode",
        type: "string",
        required: false,
        maxLength: 10,
        description: { en: "off: stop sharing", zh: "off：停止分享" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const storyId = currentStory(ctx);
    const words = { share: label(ctx, "share"), remix: label(ctx, "remix") };
    if (args.mode !== undefined) {
      if (args.mode.trim().toLowerCase() !== "off") throw new UserFacingError("share.badMode", words);
      await ctx.stories.unshare(storyId, ctx.actor);
      await ctx.surface.notice(t(ctx.locale, "share.revoked"));
      return { kind: "done" };
    }
    const { platform, workspaceId } = ctx.conversation;
    if (!(await ctx.settings.get(platform, workspaceId)).sharing) throw new UserFacingError("share.off");
    const code = await ctx.stories.share(storyId, ctx.actor);
    const title = (await ctx.queries.state(storyId)).title || t(ctx.locale, "untitled");
    await ctx.surface.notice(t(ctx.locale, "share.code", { title, code, ...words }));
    const link = ctx.shareOffer?.link?.(code);
    if (link !== undefined) await ctx.surface.notice(t(ctx.locale, "share.link", { link }));
    if (ctx.shareOffer?.button === true && ctx.surface.ask !== undefined) {
      await ctx.surface.ask({
        text: t(ctx.locale, "share.buttonPrompt", { title }),
        rows: [[{ action: { kind: "remix", code }, label: t(ctx.locale, "share.button"), tone: "choice" }]],
        reply: false,
      });
    }
    return { kind: "done" };
  },
);

export const remix = defineCommand(
  {
    name: "remix",
    description: {
      en: "Start your own version of a shared story (its code; a chapter to take its chapters up to)",
      zh: "改编一个被分享的故事（分享码；可加章节编号带上到该章为止的章节）",
    },
    example: "/remix abcd2345efgh6789 3",
    splitText: true,
    options: [
      {
        name: "code",
        type: "string",
        required: true,
        // Room for a pasted link; the code itself is SHARE_CODE_LENGTH characters.
        maxLength: SHARE_CODE_LENGTH + 100,
        description: { en: "The share code", zh: "分享码" },
      },
      {
        name: "chapter",
        type: "integer",
        required: false,
        min: 1,
        description: { en: "Take its chapters up to this one", zh: "带上到这一章为止的章节" },
      },
    ],
  } as const,
  async (ctx, args) => {
    const original = await ctx.stories.findShared(args.code);
    const { platform, workspaceId } = ctx.conversation;
    if (!(await ctx.settings.get(platform, workspaceId)).sharing) throw new UserFacingError("share.off");
    if (!(await ctx.settings.get(original.workspace.platform, original.workspace.externalId)).sharing) {
      throw new UserFacingError("share.originOff");
    }
    const quota = args.chapter === undefined ? await withinQuota(ctx) : undefined;
    const created = await ctx.stories.remix(
      original,
      { actor: ctx.actor, conversation: ctx.conversation, ageRestricted: ctx.ageRestricted },
      args.chapter,
      quota,
    );
    ctx.session.storyId = created.storyId;
    const title = original.title || t(ctx.locale, "untitled");
    await ctx.surface.notice(
      created.chapter === undefined
        ? t(ctx.locale, "remix.started", { title })
        : t(ctx.locale, "remix.startedAt", { title, chapter: created.chapter }),
    );
    if (created.ticket !== undefined) return { kind: "writing", ticket: created.ticket };
    await showState(ctx, created.storyId, { text: true });
    return { kind: "done" };
  },
);
