import { t } from "../src/i18n/messages.ts";
import { availableOn, type Command, type CommandSpec, defineCommand } from "./types.ts";

/** /help lists every visible command; built from the registry so it never drifts. */
export function makeHelp(all: () => readonly Command<CommandSpec>[]) {
  return defineCommand(
    {
      name: "help",
      description: { en: "List the commands", zh: "列出全部命令" },
      example: "/help",
      options: [],
    } as const,
    async (ctx) => {
      const lines = [t(ctx.locale, "help.heading")];
      for (const { spec } of all()) {
        if (spec.hidden || !availableOn(spec, ctx.conversation.platform)) continue;
        const options = spec.options.map((o) => (o.required ? ` <${o.name}>` : ` [${o.name}]`)).join("");
        const label = ctx.commandLabel?.(spec.name) ?? `/${spec.name}`;
        lines.push(`  ${label}${options} — ${spec.description[ctx.locale]}`);
      }
      lines.push(t(ctx.locale, "help.play"));
      await ctx.surface.notice(lines.join("\n"));
      return { kind: "done" };
    },
  );
}
