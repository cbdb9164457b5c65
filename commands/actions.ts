/**
 * Every reader action, handled once. An adapter decodes a platform event (a slash
 * command, typed text, a button press, a modal or a reply prompt's answer) into one
 * `ReaderAction` and calls `handleAction`; it then only draws the result. The same checks
 * apply whichever way an action comes in, because every action runs a command through
 * `dispatch` (argument limits, actor, owner, moderator, quota, stale revision).
 *
 * /start's conversation (genre, then scenario) lives here too: the question asked is kept
 * in the conversation's `Session`, and the next text or button answers it.
 */
import { GENRES } from "../src/agent/types.ts";
import { type MessageId, t } from "../src/i18n/messages.ts";
import { genreRows, themeRows } from "../src/render/offer-layout.ts";
import type { MessageRef, OfferRedraw, Prompt } from "../src/render/surface.ts";
import { LIMITS } from "../src/story/limits.ts";
import { REMIX_PAYLOAD_PREFIX } from "../src/story/sharing.ts";
import type { ButtonAction } from "./action-codec.ts";
import { describeError, dispatch, isReported } from "./dispatch.ts";
import { findCommand } from "./index.ts";
import { closeVote, rate, suggest, vote } from "./offer-actions.ts";
import { act, choose } from "./play.ts";
import { retry } from "./retry.ts";
import { remix } from "./share.ts";
import { answerGenreQuestion, parseGenre, start, themesOffered } from "./start.ts";
import { actorKey, hydrate, storyHere } from "./story-context.ts";
import { rateTalk } from "./talk.ts";
import { argsFromText } from "./text-args.ts";
import type { Command, CommandContext, CommandOutcome, CommandSpec, IncomingFile, Question } from "./types.ts";

export type ReaderAction =
  /**
   * A command: typed (`text`, the rest of the line after `/name`) or from a platform's
   * options (`raw`). `addressed`: the bot was spoken to (a private chat, `/name@bot`), so an
   * unknown command is answered rather than ignored.
   */
  | {
      kind: "command";
      name: string;
      text?: string;
      raw?: Record<string, unknown>;
      addressed: boolean;
      /** A file sent with the command (a caption's attachment, or the message it replies to). */
      file?: IncomingFile;
    }
  /**
   * Typed text. `addressed`: free text plays the story here (a private chat, the terminal);
   * elsewhere it only answers a question. `replyTo`: the message it replies to.
   */
  | { kind: "text"; text: string; replyTo?: string; addressed: boolean }
  /**
   * A button, or a modal's submit (`text`: its field). `message`: the message pressed, with
   * the chapter its rating buttons rate, so a pick can close the offer and keep them.
   */
  | { kind: "press"; action: ButtonAction; text?: string; message?: { ref: MessageRef; chapterId?: string } };

export interface ActionResult {
  outcome: CommandOutcome;
  /** A short answer for the actor alone (a toast, an ephemeral reply). */
  reply?: string;
  /** `reply` reports a refusal: show it so it must be read (Telegram's alert). */
  alert?: boolean;
  /**
   * The pressed offer's new look (a vote's counts, a closed vote's result), returned when
   * the context `drawsRedraws`: the adapter draws it in its answer, or on the surface when
   * that answer fails. It confirms the press better than `reply` does.
   */
  redraw?: OfferRedraw;
}

/** Suggestion prompts remembered per conversation: older ones belong to closed ballots. */
const MAX_REPLY_PROMPTS = 20;

type Log = (message: string) => void;

/** Handle one reader action; what the reader must see has been drawn, or is in `reply`. */
export async function handleAction(action: ReaderAction, ctx: CommandContext, log: Log): Promise<ActionResult> {
  await hydrate(ctx);
  switch (action.kind) {
    case "command":
      return { outcome: await onCommand(action, ctx, log) };
    case "text":
      return { outcome: await onText(action, ctx, log) };
    case "press":
      return onPress(action, ctx, log);
  }
}

async function onCommand(
  action: Extract<ReaderAction, { kind: "command" }>,
  ctx: CommandContext,
  log: Log,
): Promise<CommandOutcome> {
  delete ctx.session.ask;
  const command = findCommand(action.name, ctx.conversation.platform);
  if (command === undefined || command.spec.hidden) {
    if (action.addressed) await ctx.surface.notice(t(ctx.locale, "error.unknownCommand", { name: action.name }));
    return { kind: "done" };
  }
  if (action.file !== undefined) ctx.attachment = action.file;
  let raw = action.raw ?? argsFromText(command.spec, action.text ?? "");
  if (
    command === (start as unknown) &&
    action.raw === undefined &&
    typeof raw.scenario === "string" &&
    raw.scenario.startsWith(REMIX_PAYLOAD_PREFIX) &&
    !raw.scenario.includes(" ")
  ) {
    // A remix deep link (t.me/bot?start=remix-<code>): make the reader's version here.
    return run(remix, { code: raw.scenario }, ctx, log);
  }
  if (command === (start as unknown) && action.raw === undefined && typeof raw.scenario === "string") {
    // One word naming a genre (a deep link, t.me/bot?start=horror) picks it; anything else is the scenario.
    const genre = parseGenre(raw.scenario);
    if (genre !== undefined && !raw.scenario.includes(" ")) raw = { genre };
  }
  return run(command, raw, ctx, log);
}

async function onText(
  action: Extract<ReaderAction, { kind: "text" }>,
  ctx: CommandContext,
  log: Log,
): Promise<CommandOutcome> {
  const { session, locale } = ctx;
  const text = action.text.trim();
  const ballot = action.replyTo === undefined ? undefined : session.replies?.get(action.replyTo);
  if (ballot !== undefined) {
    const result = await runPrivately(suggest, { story: ballot.storyId, revision: ballot.revision, text }, ctx, log);
    if (result.reply !== undefined) await ctx.surface.notice(result.reply);
    return result.outcome;
  }
  const ask = session.ask;
  if (ask?.field === "genre" && action.addressed) {
    // Typed instead of pressing a button: a genre, a theme offered here, or the scenario itself.
    const answer = answerGenreQuestion(text, await themesOffered(ctx));
    if ("badNumber" in answer) {
      await ctx.surface.notice(t(locale, "start.badGenre", { input: text, max: answer.max }));
      return { kind: "failed" };
    }
    if ("theme" in answer) {
      return follow(ctx, { kind: "ask", question: { field: "scenario", genre: "none", theme: answer.theme.name } });
    }
    return run(start, answer, ctx, log);
  }
  if (ask?.field === "scenario" && (action.addressed || action.replyTo === ask.messageId || ask.by === ctx.actor.id)) {
    if (text === "") {
      await ctx.surface.notice(t(locale, "error.emptyScenario"));
      return { kind: "failed" };
    }
    return run(
      start,
      { genre: ask.genre, scenario: text, ...(ask.theme === undefined ? {} : { theme: ask.theme }) },
      ctx,
      log,
    );
  }
  if (!action.addressed || text === "") return { kind: "done" };
  if (action.text.length > LIMITS.scenario) {
    await ctx.surface.notice(t(locale, "error.messageTooLong", { length: action.text.length, max: LIMITS.scenario }));
    return { kind: "failed" };
  }
  const storyId = session.storyId;
  if (storyId === undefined) {
    await ctx.surface.notice(t(locale, "error.noStory"));
    return { kind: "failed" };
  }
  // The revision shown now: the story service refuses what no longer applies (no choices open, say).
  const { revision } = await ctx.queries.state(storyId);
  // A number picks a choice; anything else is the reader's own action.
  if (/^\d+$/.test(text)) return run(choose, { position: text, revision }, ctx, log);
  return run(act, { text, revision }, ctx, log);
}

async function onPress(
  press: Extract<ReaderAction, { kind: "press" }>,
  ctx: CommandContext,
  log: Log,
): Promise<ActionResult> {
  const { action } = press;
  switch (action.kind) {
    case "genre":
      if (ctx.session.ask?.field !== "genre") return refused(ctx, "error.stalePick");
      return { outcome: await follow(ctx, { kind: "ask", question: { field: "scenario", genre: action.genre } }) };
    case "theme": {
      if (ctx.session.ask?.field !== "genre") return refused(ctx, "error.stalePick");
      // Checked against the themes offered here now: removed since, or another chat's, it is stale.
      const theme = (await themesOffered(ctx)).find((th) => th.id === action.themeId);
      if (theme === undefined) return refused(ctx, "error.stalePick");
      return {
        outcome: await follow(ctx, { kind: "ask", question: { field: "scenario", genre: "none", theme: theme.name } }),
      };
    }
    case "rate":
      return runPrivately(rate, { chapter: action.chapterId, value: action.value }, ctx, log);
    case "rate-talk":
      return runPrivately(rateTalk, { run: action.runId, value: action.value }, ctx, log);
    case "vote":
      return runPrivately(
        vote,
        { story: action.storyId, revision: action.revision, position: action.position },
        ctx,
        log,
      );
    case "close":
      return runPrivately(closeVote, { story: action.storyId, revision: action.revision }, ctx, log);
    case "suggest":
    case "suggestion":
      return runPrivately(
        suggest,
        { story: action.storyId, revision: action.revision, ...(press.text === undefined ? {} : { text: press.text }) },
        ctx,
        log,
      );
    case "remix":
      // Started here: an adapter that opens a new conversation for it passes that one's context.
      return { outcome: await run(remix, { code: action.code }, ctx, log) };
    case "pick":
    case "retry":
      break;
  }
  // Picks and retries play the story the button belongs to.
  let owner: string;
  try {
    owner = (await storyHere(ctx, action.storyId)).ownerId;
  } catch (error) {
    if (!isReported(error)) log(`${ctx.conversation.platform} button ${action.kind}: ${String(error)}`);
    return {
      outcome: { kind: "failed" },
      reply: describeError(error, ctx.locale, ctx.conversation.platform),
      alert: true,
    };
  }
  ctx.session.storyId = action.storyId;
  if (action.kind === "retry") return runPrivately(retry, {}, ctx, log);
  if (owner !== actorKey(ctx)) return refused(ctx, "error.notYourStory");
  const result = await runPrivately(choose, { position: action.position, revision: action.revision }, ctx, log);
  const { outcome } = result;
  if (outcome.kind === "writing" && press.message !== undefined) {
    // The pressed offer shows the choice taken; its rating buttons stay.
    const label = outcome.ticket.action ?? "";
    const { chapterId } = press.message;
    await ctx.surface
      .closeChoices(
        press.message.ref,
        {
          storyId: action.storyId,
          revision: action.revision,
          choices: [label],
          allowWriteIn: true,
          mode: "pick",
          ...(chapterId === undefined ? {} : { chapterId }),
        },
        { chosen: 1, label },
      )
      .catch((e: unknown) => log(`${ctx.conversation.platform}: picked offer not closed: ${String(e)}`));
  }
  return result;
}

function refused(ctx: CommandContext, id: MessageId): ActionResult {
  return { outcome: { kind: "failed" }, reply: t(ctx.locale, id), alert: true };
}

/** Run a command and follow up on its outcome (ask what it still needs). */
async function run<S extends CommandSpec>(
  command: Command<S>,
  raw: Record<string, unknown>,
  ctx: CommandContext,
  log: Log,
): Promise<CommandOutcome> {
  return follow(ctx, await dispatch(command as unknown as Command<CommandSpec>, raw, ctx, log));
}

/** A pressed button's command: its refusal goes to the presser alone, as an alert. */
async function runPrivately<S extends CommandSpec>(
  command: Command<S>,
  raw: Record<string, unknown>,
  ctx: CommandContext,
  log: Log,
): Promise<ActionResult> {
  let refusal: string | undefined;
  const privately: CommandContext = {
    ...ctx,
    replyPrivately: async (text) => {
      refusal = text;
    },
  };
  const outcome = await run(command, raw, privately, log);
  if (refusal !== undefined) return { outcome, reply: refusal, alert: true };
  if (outcome.kind !== "done") return { outcome };
  return {
    outcome,
    ...(outcome.reply === undefined ? {} : { reply: outcome.reply }),
    ...(outcome.redraw === undefined ? {} : { redraw: outcome.redraw }),
  };
}

/** Ask what the outcome still needs, or end the question it answered. */
async function follow(ctx: CommandContext, outcome: CommandOutcome): Promise<CommandOutcome> {
  // A refused answer (a scenario too long, say) is asked for again.
  if (outcome.kind === "failed") return outcome;
  if (outcome.kind !== "ask") {
    delete ctx.session.ask;
    return outcome;
  }
  const { question } = outcome;
  const prompt = promptFor(ctx, question, question.field === "genre" ? await themesOffered(ctx) : []);
  let ref: MessageRef | undefined;
  if (ctx.surface.ask !== undefined) ref = await ctx.surface.ask(prompt);
  else await ctx.surface.notice(prompt.text);
  if (question.field === "suggestion") {
    if (ref !== undefined) remember(ctx, ref.id, question);
    return outcome;
  }
  ctx.session.ask = { ...question, by: ctx.actor.id, ...(ref === undefined ? {} : { messageId: ref.id }) };
  return outcome;
}

function remember(ctx: CommandContext, promptId: string, ballot: { storyId: string; revision: number }): void {
  const replies = ctx.session.replies ?? new Map<string, { storyId: string; revision: number }>();
  ctx.session.replies = replies;
  replies.set(promptId, { storyId: ballot.storyId, revision: ballot.revision });
  for (const key of replies.keys()) {
    if (replies.size <= MAX_REPLY_PROMPTS) break;
    replies.delete(key);
  }
}

/** A question in the surface's way of answering: buttons or a typed list, a reply or a line. */
function promptFor(ctx: CommandContext, question: Question, themes: readonly { id: string; name: string }[]): Prompt {
  const { locale } = ctx;
  const ways = ctx.surface.answers ?? { buttons: false, replies: false };
  switch (question.field) {
    case "genre": {
      if (ways.buttons) {
        const text = t(locale, themes.length === 0 ? "start.genreButtons" : "start.genreOrThemeButtons");
        return { text, rows: [...genreRows(locale), ...themeRows(themes, locale)], reply: false };
      }
      const list = GENRES.map((g, i) => `${i + 1}) ${t(locale, `genre.${g}`)}`).join("  ");
      const themeList = themes.map((th, i) => `${GENRES.length + i + 1}) ${th.name}`).join("  ");
      return {
        text:
          themes.length === 0
            ? t(locale, "start.askGenre", { list })
            : t(locale, "start.askGenreOrTheme", { list, themes: themeList }),
        rows: [],
        reply: false,
      };
    }
    case "scenario": {
      const text = ways.replies ? t(locale, "start.scenarioReply") : t(locale, "start.askScenario");
      const themed =
        question.theme === undefined ? text : `${t(locale, "start.themePicked", { name: question.theme })} ${text}`;
      return { text: themed, rows: [], reply: ways.replies };
    }
    case "suggestion":
      return { text: t(locale, "vote.suggestPrompt", { max: LIMITS.writeIn }), rows: [], reply: true };
  }
}
