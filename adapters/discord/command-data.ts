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
import { RATINGS } from "../../src/story/themes.ts";

/** The commands a story thread offers under `/story`. */
export const STORY_SUBCOMMANDS = [
  "undo",
  "rewrite",
  "branch",
  "recap",
  "note",
  "status",
  "export",
  "retry",
  "end",
  "share",
] as const;

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
  end: "结束",
  genre: "类型",
  theme: "主题",
  config: "设置",
  add: "添加",
  edit: "编辑",
  remove: "删除",
  list: "列表",
  show: "查看",
  set: "修改",
  key: "项目",
  value: "值",
  name: "名称",
  description: "描述",
  rules: "规则",
  rating: "分级",
  art_style: "画风",
  direction: "要求",
  chapter: "章节",
  illustrate: "插图",
  character: "角色",
  what: "内容",
  appearance: "外貌",
  share: "分享",
  remix: "改编",
  code: "分享码",
  mode: "模式",
  talk: "对话",
  message: "消息",
  note: "作者注",
  status: "状态",
  lore: "设定",
  card: "角色卡",
  import: "导入",
  file: "文件",
};

const STRING = 3;
const INTEGER = 4;
const SUB_COMMAND = 1;
const ATTACHMENT = 11;

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

/** A command of a story thread offered as its own slash command, options from its spec. */
function topLevel(name: string) {
  const s = spec(name);
  return { ...names(name), ...describe(s.description), contexts: [0], options: s.options.map(option) };
}

/** Settings `/config set` may change (see commands/settings.ts). */
export const CONFIG_KEYS = [
  "language",
  "illustrations",
  "images-per-chapter",
  "images-per-day",
  "votes",
  "rating",
  "length",
  "quota",
  "channels",
  "sharing",
] as const;

/** Manage Server: the default for moderator commands (Discord lets servers override it; handlers check again). */
const MANAGE_GUILD = "32";

/** `/theme add|edit|remove|list`, from the theme command's options. */
function themeCommand() {
  const s = spec("theme");
  const field = (name: string, required: boolean) => {
    const o = s.options.find((x) => x.name === name);
    if (o === undefined) throw new Error(`theme has no option ${name}`);
    return {
      ...option({ ...o, required }),
      ...(name === "rating" ? { choices: RATINGS.map((r) => ({ name: r, value: r })) } : {}),
    };
  };
  const editable = ["description", "rules", "rating", "art_style"];
  return {
    ...names("theme"),
    ...describe(s.description),
    contexts: [0],
    options: [
      {
        ...names("add"),
        ...describe({ en: "Add a theme", zh: "添加主题" }),
        type: SUB_COMMAND,
        options: [field("name", true), ...editable.map((n) => field(n, false))],
      },
      {
        ...names("edit"),
        ...describe({ en: "Change a theme", zh: "修改主题" }),
        type: SUB_COMMAND,
        options: [field("name", true), ...editable.map((n) => field(n, false))],
      },
      {
        ...names("remove"),
        ...describe({ en: "Remove a theme", zh: "删除主题" }),
        type: SUB_COMMAND,
        options: [field("name", true)],
      },
      { ...names("list"), ...describe({ en: "List the themes", zh: "列出主题" }), type: SUB_COMMAND },
    ],
  };
}

/** `/card import file:<attachment>` and `/card export name:<character>`, from the card command's spec. */
function cardCommand() {
  const s = spec("card");
  const target = s.options.find((o) => o.name === "target");
  if (target === undefined) throw new Error("card has no option target");
  return {
    ...names("card"),
    ...describe(s.description),
    contexts: [0],
    options: [
      {
        ...names("import"),
        ...describe({ en: "Import a character card (JSON or PNG)", zh: "导入角色卡（JSON 或 PNG）" }),
        type: SUB_COMMAND,
        options: [
          {
            ...names("file"),
            ...describe({ en: "The card: a .json or .png file", zh: "角色卡：.json 或 .png 文件" }),
            type: ATTACHMENT,
            required: true,
          },
        ],
      },
      {
        ...names("export"),
        ...describe({ en: "Export a character as a V3 card", zh: "把角色导出为 V3 角色卡" }),
        type: SUB_COMMAND,
        options: [
          {
            ...option({ ...target, name: "name", required: true, maxLength: 80 }),
            ...describe({ en: "The character", zh: "角色" }),
          },
        ],
      },
    ],
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
        {
          ...names("theme"),
          ...describe({ en: "One of this server's themes", zh: "本服务器的主题之一" }),
          type: STRING,
          required: false,
          autocomplete: true,
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
    themeCommand(),
    {
      ...names("config"),
      ...describe({ en: "Show or change this server's story settings", zh: "查看或修改本服务器的故事设置" }),
      contexts: [0],
      default_member_permissions: MANAGE_GUILD,
      options: [
        { ...names("show"), ...describe({ en: "Show the settings", zh: "查看设置" }), type: SUB_COMMAND },
        {
          ...names("set"),
          ...describe({ en: "Change one setting", zh: "修改一项设置" }),
          type: SUB_COMMAND,
          options: [
            {
              ...names("key"),
              ...describe({ en: "What to change", zh: "要修改的项目" }),
              type: STRING,
              required: true,
              choices: CONFIG_KEYS.map((k) => ({ name: k, value: k })),
            },
            {
              ...names("value"),
              ...describe({ en: "The new value", zh: "新的值" }),
              type: STRING,
              required: true,
              max_length: 20,
            },
          ],
        },
      ],
    },
    topLevel("illustrate"),
    topLevel("character"),
    topLevel("remix"),
    topLevel("talk"),
    topLevel("lore"),
    cardCommand(),
    { ...names("help"), ...describe(spec("help").description) },
  ];
}
