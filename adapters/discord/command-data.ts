/**
 * Discord application commands, rendered from the command specs in commands/
 * (no command is written twice): `/start`, `/story <subcommand>` for the story
 * commands, and `/help`. Names and descriptions in English and Chinese.
 */
import type { RESTPutAPIApplicationCommandsJSONBody } from "discord.js";
import { findCommand } from "../../commands/index.ts";
import type { CommandSpec, OptionSpec } from "../../commands/types.ts";
import { GENRES } from "../../src/agent/types.ts";
import { t } from "../../src/i18n/messages.ts";

/** The commands a story thread offers under `/story`. */
export const STORY_SUBCOMMANDS = ["undo", "rewrite", "branch", "recap", "export", "retry"] as const;

/** Chinese names (Discord allows any lower-case letters in names). */
const ZH_NAMES: Record<string, string> = {
  start: "开始",
  story: "故事",
  help: "帮助",
  undo: "撤销",
  rewrite: "重写",
  branch: "分支",
  recap: "回顾",
  export: "导出",
  retry: "重试",
  genre: "类型",
  direction: "要求",
  chapter: "章节",
};

const STRING = 3;
const INTEGER = 4;
const SUB_COMMAND = 1;

function spec(name: string): CommandSpec {
  const command = findCommand(name, "discord");
  if (command === undefined) throw new Error(`no command ${name} for Discord`);
  return command.spec;
}

function names(name: string) {
  const zh = ZH_NAMES[name];
  return { name, ...(zh === undefined ? {} : { name_localizations: { "zh-CN": zh, "zh-TW": zh } }) };
}

function describe(d: { en: string; zh: string }) {
  return { description: d.en.slice(0, 100), description_localizations: { "zh-CN": d.zh.slice(0, 100) } };
}

function option(o: OptionSpec) {
  return {
    ...names(o.name),
    ...describe(o.description),
    type: o.type === "integer" ? INTEGER : STRING,
    required: o.required,
    ...(o.maxLength === undefined ? {} : { max_length: o.maxLength }),
    ...(o.min === undefined ? {} : { min_value: o.min }),
  };
}

export function discordCommands(): RESTPutAPIApplicationCommandsJSONBody {
  const start = spec("start");
  return [
    {
      ...names("start"),
      ...describe(start.description),
      // Slash commands need a guild: stories live in server threads.
      contexts: [0],
      options: [
        {
          ...names("genre"),
          ...describe({ en: "Genre of the story", zh: "故事类型" }),
          type: STRING,
          required: false,
          choices: GENRES.map((g) => ({
            name: t("en", `genre.${g}`),
            name_localizations: { "zh-CN": t("zh", `genre.${g}`) },
            value: g,
          })),
        },
      ],
    },
    {
      ...names("story"),
      ...describe({ en: "Steer the story of this thread", zh: "掌控本帖的故事" }),
      contexts: [0],
      options: STORY_SUBCOMMANDS.map((name) => {
        const s = spec(name);
        return { ...names(name), ...describe(s.description), type: SUB_COMMAND, options: s.options.map(option) };
      }),
    },
    { ...names("help"), ...describe(spec("help").description) },
  ];
}
