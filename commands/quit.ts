import { t } from "../src/i18n/messages.ts";
import { defineCommand } from "./types.ts";

export const quit = defineCommand(
  {
    name: "quit",
    description: { en: "Leave (your story is saved)", zh: "退出（故事已保存）" },
    example: "/quit",
    options: [],
    platforms: ["console"],
  } as const,
  async (ctx) => {
    // Pictures still being drawn show up before the goodbye, not after it.
    await ctx.illustrations.settled();
    await ctx.surface.notice(t(ctx.locale, "quit.bye"));
    return { kind: "quit" };
  },
);
