/** Every command, once. Adapters look commands up here. */
import { branch } from "./branch.ts";
import { card } from "./card.ts";
import { character } from "./character.ts";
import { end } from "./end.ts";
import { exportStory } from "./export.ts";
import { makeHelp } from "./help.ts";
import { illustrate } from "./illustrate.ts";
import { lore } from "./lore.ts";
import { note } from "./note.ts";
import { closeVote, rate, suggest, vote } from "./offer-actions.ts";
import { act, choose } from "./play.ts";
import { quit } from "./quit.ts";
import { recap } from "./recap.ts";
import { retry } from "./retry.ts";
import { rewrite } from "./rewrite.ts";
import { settings } from "./settings.ts";
import { remix, share } from "./share.ts";
import { start } from "./start.ts";
import { status } from "./status.ts";
import { stories } from "./stories.ts";
import { rateTalk, talk } from "./talk.ts";
import { theme } from "./theme.ts";
import { availableOn, type Command, type CommandSpec } from "./types.ts";
import { undo } from "./undo.ts";

const help = makeHelp(() => COMMANDS);

// Each command keeps its precise argument types; the registry only needs the common shape.
export const COMMANDS: readonly Command<CommandSpec>[] = [
  start,
  stories,
  undo,
  rewrite,
  branch,
  retry,
  end,
  recap,
  note,
  status,
  exportStory,
  illustrate,
  character,
  share,
  remix,
  talk,
  lore,
  card,
  settings,
  theme,
  help,
  quit,
  choose,
  act,
  vote,
  suggest,
  closeVote,
  rate,
  rateTalk,
] as unknown as readonly Command<CommandSpec>[];

/** The command by name, if it is offered on this platform. */
export function findCommand(name: string, platform?: string): Command<CommandSpec> | undefined {
  const command = COMMANDS.find((c) => c.spec.name === name.toLowerCase());
  return command === undefined || (platform !== undefined && !availableOn(command.spec, platform))
    ? undefined
    : command;
}
