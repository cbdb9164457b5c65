/**
 * The Telegram bot: turns updates into command invocations and button presses
 * into choices, votes and retries. No story logic lives here. Handlers return
 * at once (telegraf waits for each batch of updates): the work for a chat runs
 * on that chat's own chain, in order, and chapters are written by jobs.
 */
import { Telegraf } from "telegraf";
import type { CallbackQuery, Chat, Message, Update, User } from "telegraf/types";
import { describeError, dispatch, isReported, validateArgs } from "../../commands/dispatch.ts";
import { COMMANDS, findCommand } from "../../commands/index.ts";
import { act, choose } from "../../commands/play.ts";
import { retry } from "../../commands/retry.ts";
import { answerGenreQuestion, parseGenre, start } from "../../commands/start.ts";
import { argsFromText } from "../../commands/text-args.ts";
import { availableOn, type CommandContext, type CommandOutcome, type Session } from "../../commands/types.ts";
import { GENRES, type Genre } from "../../src/agent/types.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import type { Audience } from "../../src/story/chapter-writer.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { LIMITS } from "../../src/story/limits.ts";
import type { Actor, Conversation } from "../../src/story/story-service.ts";
import type { BotDeps } from "../bot-deps.ts";
import { type CallbackAction, decodeCallback, encodeCallback } from "./callback-data.ts";
import { chatKindOf, TelegramOutbox } from "./outbox.ts";
import { telegramChatId, telegramSurfaceFor } from "./surfaces.ts";
import { ratedChapter, type TelegramSurface } from "./telegram-surface.ts";

export interface TelegramOptions {
  token: string;
  apiRoot: string;
  webhook?: { url: string; port: number; secret?: string };
}

export type TelegramDeps = BotDeps;

interface ChatState {
  session: Session;
  hydrated: boolean;
  /** /start is waiting for a genre or a scenario from `by`. */
  ask?: { field: "genre" } | { field: "scenario"; genre: Genre; by: number; promptId?: number } | undefined;
  /** Reply prompts for write-ins: prompt message id -> ballot. */
  suggestions: Map<number, { storyId: string; revision: number }>;
}

const ADMIN_CACHE_MS = 60_000;
const MAX_SUGGESTION_PROMPTS = 20;

export class TelegramAdapter {
  readonly bot: Telegraf;
  private readonly outbox: TelegramOutbox;
  private readonly chats = new Map<number, ChatState>();
  private readonly chains = new Map<number, Promise<void>>();
  private readonly admins = new Map<string, { admin: boolean; at: number }>();
  /** Rating presses being answered (they run outside the chats' queues). */
  private readonly presses = new Set<Promise<void>>();

  constructor(
    private readonly options: TelegramOptions,
    private readonly deps: TelegramDeps,
  ) {
    this.bot = new Telegraf(options.token, { telegram: { apiRoot: options.apiRoot } });
    this.outbox = new TelegramOutbox({
      onBlocked: (chatId) => deps.log(`telegram chat ${chatId} blocked the bot: its stories pause`),
    });
    deps.audiences.platform("telegram", (conversationId) => this.audience(conversationId));
    this.bot.on("message", (ctx) => this.enqueue(ctx.chat, () => this.onMessage(ctx.message)));
    this.bot.on("callback_query", (ctx) => {
      const chat = ctx.chat;
      if (chat === undefined) return ctx.answerCbQuery();
      const query = ctx.callbackQuery;
      const action = decodeCallback("data" in query ? query.data : undefined);
      if (action?.kind === "rate") {
        // A rating touches no chat state: it is answered at once, not after the chat's queue.
        this.track(this.onRate(query, chat, action));
        return undefined;
      }
      this.enqueue(chat, () => this.onCallback(query, chat));
      return undefined;
    });
    this.bot.catch((error) => deps.log(`telegram update failed: ${String(error)}`));
  }

  /** Register the commands (English and Chinese) and start receiving updates. */
  async start(): Promise<void> {
    for (const locale of ["en", "zh"] as const) {
      const commands = COMMANDS.filter((c) => !c.spec.hidden && availableOn(c.spec, "telegram")).map((c) => ({
        command: c.spec.name,
        description: c.spec.description[locale].slice(0, 256),
      }));
      await this.bot.telegram.setMyCommands(commands, locale === "en" ? {} : { language_code: locale });
    }
    const { webhook } = this.options;
    if (webhook !== undefined) {
      // Resolves once Telegram accepted the webhook; updates then arrive by POST.
      const url = new URL(webhook.url);
      await this.bot.launch({
        webhook: {
          domain: url.host,
          path: url.pathname,
          port: webhook.port,
          ...(webhook.secret === undefined ? {} : { secretToken: webhook.secret }),
        },
      });
      return;
    }
    // Polling: launch() only settles when polling stops; it calls back once getMe worked.
    await new Promise<void>((resolve, reject) => {
      let started = false;
      this.bot
        .launch(() => {
          started = true;
          resolve();
        })
        .catch((error: unknown) => {
          if (started) this.deps.log(`telegram polling stopped: ${String(error)}`);
          else reject(error);
        });
    });
  }

  async stop(): Promise<void> {
    try {
      this.bot.stop("shutdown");
    } catch (error) {
      // Not running (launch failed): nothing to stop.
      this.deps.log(`telegram: nothing to stop: ${String(error)}`);
    }
    await Promise.allSettled([...this.chains.values(), ...this.presses]);
    await this.outbox.close();
  }

  /** Keep a press that runs outside the chats' queues until it is answered (stop() waits for it). */
  private track(work: Promise<void>): void {
    const press = work.catch((error: unknown) => this.deps.log(`telegram rating: ${String(error)}`));
    this.presses.add(press);
    void press.finally(() => this.presses.delete(press));
  }

  /** Run `work` after everything already queued for this chat; never block telegraf. */
  private enqueue(chat: Chat, work: () => Promise<void>): void {
    const previous = this.chains.get(chat.id) ?? Promise.resolve();
    const next = previous
      .then(work)
      .catch((error: unknown) => this.deps.log(`telegram chat ${chat.id}: ${String(error)}`));
    this.chains.set(chat.id, next);
    void next.finally(() => {
      if (this.chains.get(chat.id) === next) this.chains.delete(chat.id);
    });
  }

  private async onMessage(message: Message): Promise<void> {
    const { chat } = message;
    const from = message.from;
    if (from === undefined || from.is_bot) return;
    const ctx = await this.context(chat, from, `${chat.id}:${message.message_id}`);
    const state = await this.state(chat.id, ctx.conversation);
    const text = "text" in message ? message.text : undefined;
    if (text === undefined) {
      // Stickers, photos, voice: only text moves a story.
      if (chat.type === "private") await ctx.surface.notice(t(ctx.locale, "error.onlyText"));
      return;
    }
    if (text.length > LIMITS.scenario) {
      await ctx.surface.notice(t(ctx.locale, "error.messageTooLong", { length: text.length, max: LIMITS.scenario }));
      return;
    }
    const replyTo = "reply_to_message" in message ? message.reply_to_message?.message_id : undefined;
    if (text.startsWith("/")) {
      state.ask = undefined;
      await this.onCommand(text, ctx, state);
      return;
    }
    if (replyTo !== undefined && state.suggestions.has(replyTo)) {
      const ballot = state.suggestions.get(replyTo);
      if (ballot !== undefined) await this.writeIn(ctx, ballot, text);
      return;
    }
    const ask = state.ask;
    if (ask?.field === "genre" && chat.type === "private") {
      // Typed instead of pressing a genre button: the same reading as everywhere.
      const answer = answerGenreQuestion(text);
      if ("badNumber" in answer) {
        await ctx.surface.notice(t(ctx.locale, "start.badGenre", { input: text, max: GENRES.length }));
        return;
      }
      await this.finish(ctx, state, await dispatch(start, answer, ctx, this.deps.log));
      return;
    }
    if (ask?.field === "scenario" && (chat.type === "private" || replyTo === ask.promptId || ask.by === from.id)) {
      await this.finish(ctx, state, await dispatch(start, { genre: ask.genre, scenario: text }, ctx, this.deps.log));
      return;
    }
    if (chat.type !== "private") return;
    const storyId = state.session.storyId;
    if (storyId === undefined) {
      await ctx.surface.notice(t(ctx.locale, "error.noStory"));
      return;
    }
    const { revision } = await this.deps.stories.state(storyId);
    await this.finish(ctx, state, await dispatch(act, { text, revision }, ctx, this.deps.log));
  }

  private async onCommand(text: string, ctx: CommandContext, state: ChatState): Promise<void> {
    const [head = "", ...rest] = text.slice(1).split(/\s+/);
    const [name = "", addressee] = head.split("@");
    const me = this.bot.botInfo?.username.toLowerCase();
    // Groups carry other bots' commands too: answer only ours.
    if (addressee !== undefined && addressee.toLowerCase() !== me) return;
    const command = findCommand(name, "telegram");
    if (command === undefined || command.spec.hidden) {
      const private_ = ctx.conversation.id === ctx.actor.id;
      if (private_ || addressee !== undefined) {
        await ctx.surface.notice(t(ctx.locale, "error.unknownCommand", { name }));
      }
      return;
    }
    let raw = argsFromText(command.spec, rest.join(" "));
    if (command.spec.name === "start" && typeof raw.scenario === "string") {
      // A deep link (t.me/bot?start=horror) names a genre; anything else is the scenario.
      const genre = parseGenre(raw.scenario);
      if (genre !== undefined && !raw.scenario.includes(" ")) raw = { genre };
    }
    await this.finish(ctx, state, await dispatch(command, raw, ctx, this.deps.log));
  }

  /** Follow up on a command: ask for what it still needs. */
  private async finish(ctx: CommandContext, state: ChatState, outcome: CommandOutcome): Promise<void> {
    // Buttons and a reply prompt: Telegram's own, beyond the Surface port.
    const surface = this.surface(Number(ctx.conversation.id), ctx.locale);
    if (outcome.kind === "failed") return;
    if (outcome.kind !== "ask") {
      state.ask = undefined;
      return;
    }
    if (outcome.field === "genre") {
      state.ask = { field: "genre" };
      const rows = GENRES.map((g) => [
        { text: t(ctx.locale, `genre.${g}`), callback_data: encodeCallback({ kind: "genre", genre: g }) },
      ]);
      await surface.sendButtons(t(ctx.locale, "start.genreButtons"), rows);
      return;
    }
    const by = Number(ctx.actor.id);
    const promptId = await surface.askForReply(t(ctx.locale, "start.scenarioReply"));
    state.ask = { field: "scenario", genre: outcome.genre ?? "none", by, promptId };
  }

  /** Answer a button press: a short toast, or an alert the reader must dismiss. */
  private answerQuery(query: CallbackQuery, text?: string, alert = false): Promise<void> {
    return this.bot.telegram
      .answerCbQuery(query.id, text?.slice(0, 200), { show_alert: alert })
      .then(() => undefined)
      .catch((error: unknown) => this.deps.log(`telegram answerCallbackQuery: ${String(error)}`));
  }

  /**
   * 👍 or 👎 on a finished chapter: recorded (a reader's latest rating counts) and answered
   * privately with the chapter's tally. The message is not edited: no live counts to keep
   * within the chat's edit budget. Only the chapter id travels; the database checks it
   * belongs to a story shown in this chat.
   */
  private async onRate(query: CallbackQuery, chat: Chat, action: RateAction): Promise<void> {
    let locale: Locale = "en";
    try {
      locale = (await this.deps.settings.get("telegram", String(chat.id))).locale;
      await this.answerQuery(query, await this.rate(action, conversationOf(chat), actorOf(query.from), locale));
    } catch (error) {
      await this.answerQuery(query, describeError(error, locale, "telegram"), true);
      if (!(error instanceof UserFacingError)) this.deps.log(`telegram button rate: ${String(error)}`);
    }
  }

  private async rate(action: RateAction, conversation: Conversation, actor: Actor, locale: Locale): Promise<string> {
    const { chapterId, value } = action;
    const tally = await this.deps.stories.rate({ chapterId, actor, value, conversation });
    return t(locale, "rating.thanks", tally);
  }

  private async onCallback(query: CallbackQuery, chat: Chat): Promise<void> {
    const answer = (text?: string, alert = false) => this.answerQuery(query, text, alert);
    const action = decodeCallback("data" in query ? query.data : undefined);
    const ctx = await this.context(chat, query.from);
    if (action === undefined) {
      await answer(t(ctx.locale, "error.stalePick"), true);
      return;
    }
    const state = await this.state(chat.id, ctx.conversation);
    try {
      const reply = await this.press(action, ctx, state, query);
      await answer(reply);
    } catch (error) {
      await answer(describeError(error, ctx.locale, "telegram"), true);
      if (!(error instanceof UserFacingError)) this.deps.log(`telegram button ${action.kind}: ${String(error)}`);
    }
  }

  /** Carry out a button press; returns the short confirmation to show, if any. Throws for an alert. */
  private async press(
    action: CallbackAction,
    ctx: CommandContext,
    state: ChatState,
    query: CallbackQuery,
  ): Promise<string | undefined> {
    if (action.kind === "rate") return this.rate(action, ctx.conversation, ctx.actor, ctx.locale);
    if (action.kind === "genre") {
      if (state.ask?.field !== "genre") throw new UserFacingError("error.stalePick");
      await this.finish(ctx, state, { kind: "ask", field: "scenario", genre: action.genre });
      return undefined;
    }
    const where = await this.deps.stories.whereIs(action.storyId);
    if (where === undefined || where.conversationId !== `telegram:${ctx.conversation.id}`) {
      throw new UserFacingError("error.notYourStory");
    }
    state.session.storyId = action.storyId;
    switch (action.kind) {
      case "pick": {
        if (where.ownerId !== `telegram:${ctx.actor.id}`) throw new UserFacingError("error.notYourStory");
        // The same command as a typed number: the reader's quota and request are counted.
        const outcome = await choose.run(
          ctx,
          validateArgs(choose.spec, { position: action.position, revision: action.revision }),
        );
        if (outcome.kind !== "writing") return undefined;
        const { ticket } = outcome;
        const message = query.message;
        if (message !== undefined) {
          const label = ticket.action ?? "";
          // The rating row of the chapter the choice ends stays on the message.
          const chapterId = ratedChapter("reply_markup" in message ? message.reply_markup : undefined);
          await ctx.surface
            .closeChoices(
              { id: String(message.message_id) },
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
            .catch((e: unknown) => this.deps.log(`telegram: picked offer not closed: ${String(e)}`));
        }
        return undefined;
      }
      case "vote": {
        const tally = await this.deps.ballots.vote(action.storyId, action.revision, action.position, ctx.actor);
        return t(ctx.locale, "vote.recorded", { label: tally.labels[action.position - 1] ?? "" });
      }
      case "close":
        await this.deps.ballots.closeEarly(action.storyId, action.revision, ctx.actor, ctx.moderator);
        return undefined;
      case "suggest": {
        const promptId = await this.surface(Number(ctx.conversation.id), ctx.locale).askForReply(
          t(ctx.locale, "vote.suggestPrompt", { max: LIMITS.writeIn }),
        );
        state.suggestions.set(promptId, { storyId: action.storyId, revision: action.revision });
        // Only recent prompts matter: older ones belong to closed ballots.
        for (const key of state.suggestions.keys()) {
          if (state.suggestions.size <= MAX_SUGGESTION_PROMPTS) break;
          state.suggestions.delete(key);
        }
        return undefined;
      }
      case "retry":
        // The same command as /retry, with the same answer.
        await retry.run(ctx, validateArgs(retry.spec, {}));
        return undefined;
    }
  }

  private async writeIn(ctx: CommandContext, ballot: { storyId: string; revision: number }, text: string) {
    try {
      await this.deps.ballots.writeIn(ballot.storyId, ballot.revision, text, ctx.actor);
      await ctx.surface.notice(t(ctx.locale, "vote.added", { label: text.trim() }));
    } catch (error) {
      if (!isReported(error)) this.deps.log(`telegram write-in: ${String(error)}`);
      await ctx.surface.notice(describeError(error, ctx.locale, "telegram"));
    }
  }

  private async context(chat: Chat, from: User, requestId?: string): Promise<CommandContext> {
    const conversation = conversationOf(chat);
    const settings = await this.deps.settings.get("telegram", String(chat.id));
    const locale: Locale = settings.locale;
    const actor = actorOf(from);
    const state = await this.state(chat.id, conversation);
    return {
      actor,
      moderator: chat.type === "private" || (await this.isAdmin(chat.id, from.id)),
      conversation,
      locale,
      surface: this.surface(chat.id, locale),
      session: state.session,
      stories: this.deps.stories,
      settings: this.deps.settings,
      themes: this.deps.themes,
      illustrations: this.deps.illustrations,
      ...(requestId === undefined ? {} : { requestId }),
      // Telegram has no age-restricted chats: adult themes stay off.
      ageRestricted: false,
    };
  }

  private async state(chatId: number, conversation: Conversation): Promise<ChatState> {
    let state = this.chats.get(chatId);
    if (state === undefined) {
      state = { session: {}, hydrated: false, suggestions: new Map() };
      this.chats.set(chatId, state);
    }
    if (!state.hydrated) {
      // After a restart the chat's story is the one it played last.
      state.hydrated = true;
      const storyId = await this.deps.stories.latestIn(conversation);
      if (storyId !== undefined && state.session.storyId === undefined) state.session.storyId = storyId;
    }
    return state;
  }

  /** A chat's surface: built from its id, the Telegram client and the outbox alone. */
  private surface(chatId: number, locale: Locale): TelegramSurface {
    return telegramSurfaceFor(this.bot.telegram, this.outbox, `telegram:${chatId}`, locale, this.deps.log);
  }

  private async audience(conversationId: string): Promise<Audience | undefined> {
    const chatId = telegramChatId(conversationId);
    if (chatId === undefined) return undefined;
    const settings = await this.deps.settings.get("telegram", String(chatId));
    return {
      surface: telegramSurfaceFor(this.bot.telegram, this.outbox, conversationId, settings.locale, this.deps.log),
      locale: settings.locale,
      ...(chatKindOf(chatId) === "group" ? { voting: { windowSeconds: settings.voteSeconds } } : {}),
    };
  }

  private async isAdmin(chatId: number, userId: number): Promise<boolean> {
    const key = `${chatId}:${userId}`;
    const cached = this.admins.get(key);
    if (cached !== undefined && Date.now() - cached.at < ADMIN_CACHE_MS) return cached.admin;
    const member = await this.bot.telegram.getChatMember(chatId, userId).catch((e: unknown) => {
      // Not an admin as far as we can tell: the action is refused, and the cause logged.
      this.deps.log(`telegram: admin check failed for chat ${chatId}: ${String(e)}`);
      return undefined;
    });
    const admin = member?.status === "creator" || member?.status === "administrator";
    this.admins.set(key, { admin, at: Date.now() });
    return admin;
  }
}

type RateAction = Extract<CallbackAction, { kind: "rate" }>;

function conversationOf(chat: Chat): Conversation {
  return { platform: "telegram", workspaceId: String(chat.id), id: String(chat.id) };
}

function actorOf(from: User): Actor {
  return { platform: "telegram", id: String(from.id), name: from.first_name };
}

export type { Update };
