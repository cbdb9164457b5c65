/**
 * The Telegram bot: decodes updates (messages, commands, button presses, replies to
 * prompts) into reader actions for the core (commands/actions.ts) and answers button
 * presses with the core's reply. No story logic lives here. Handlers return
 * at once (telegraf waits for each batch of updates): the work for a chat runs
 * on that chat's own chain, in order, and chapters are written by jobs.
 */

import { type Context, Telegraf } from "telegraf";
import type { CallbackQuery, Chat, Message, Update, User } from "telegraf/types";
import { handleAction, type ReaderAction } from "../../commands/actions.ts";
import { COMMANDS } from "../../commands/index.ts";
import { MemorySessionStore, type SessionStore } from "../../commands/session-store.ts";
import { availableOn, type CommandContext, commandServices, type IncomingFile } from "../../commands/types.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import type { Actor, Conversation } from "../../src/story/identity.ts";
import { REMIX_PAYLOAD_PREFIX } from "../../src/story/sharing.ts";
import type { BotDeps } from "../bot-deps.ts";
import { readAtMost } from "../shared/download.ts";
import { RedisSessionStore } from "../shared/redis-session-store.ts";
import { type CallbackAction, decodeCallback } from "./callback-data.ts";
import { ChatAdmins } from "./chat-admins.ts";
import type { TelegramOutbox } from "./outbox.ts";
import { telegramRedisPrefix } from "./redis-budget.ts";
import { type TelegramShared, telegramAudiences, telegramOutboxFor, telegramSurfaceFor } from "./surfaces.ts";
import { ratedChapter, type TelegramSurface } from "./telegram-surface.ts";
import { RedisUpdateGate, type Turn } from "./update-gate.ts";

export interface TelegramOptions {
  token: string;
  apiRoot: string;
  webhook?: { url: string; port: number; secret?: string };
  /**
   * Redis shared with the bot's other processes (REDIS_URL): flood limits taken together,
   * and updates de-duplicated and kept in order per chat across fronts.
   */
  shared?: TelegramShared;
}

/** Where the update middleware leaves an update's turn for the handler that queues it. */
interface GateState {
  turn?: Turn;
}

export type TelegramDeps = BotDeps;

export class TelegramAdapter {
  readonly bot: Telegraf;
  private readonly outbox: TelegramOutbox;
  /** With Redis: each update once, each chat's updates in order, across fronts. */
  private readonly gate: RedisUpdateGate | undefined;
  /** Each chat's session (the core reads and writes it). */
  private readonly sessions: SessionStore;
  private readonly chains = new Map<number, Promise<void>>();
  /** Chat administrators: a group's moderators. */
  private readonly admins: ChatAdmins;
  /** Rating presses being answered (they run outside the chats' queues). */
  private readonly presses = new Set<Promise<void>>();

  constructor(
    private readonly options: TelegramOptions,
    private readonly deps: TelegramDeps,
  ) {
    this.bot = new Telegraf(options.token, { telegram: { apiRoot: options.apiRoot } });
    this.outbox = telegramOutboxFor(options.token, deps.log, options.shared);
    this.admins = new ChatAdmins(this.bot.telegram, deps.log);
    const shared = options.shared;
    // Fronts sharing the bot share sessions: a question one asked, another hears answered.
    this.sessions =
      shared === undefined
        ? new MemorySessionStore()
        : new RedisSessionStore(shared.redis, shared.prefix ?? telegramRedisPrefix(options.token));
    this.gate =
      shared === undefined
        ? undefined
        : new RedisUpdateGate(shared.redis, {
            prefix: shared.prefix ?? telegramRedisPrefix(options.token),
            log: deps.log,
          });
    deps.audiences.platform("telegram", telegramAudiences(this.bot.telegram, this.outbox, deps.settings, deps.log));
    // First, before any handler: drop an update another front took, and take its chat's turn.
    this.bot.use((ctx, next) => this.admit(ctx, next));
    this.bot.on("message", (ctx) => this.enqueue(ctx, () => this.onMessage(ctx.message)));
    this.bot.on("callback_query", (ctx) => {
      const chat = ctx.chat;
      if (chat === undefined) return ctx.answerCbQuery();
      const query = ctx.callbackQuery;
      const action = decodeCallback("data" in query ? query.data : undefined);
      // A rating touches no chat state: it is answered at once, not after the chat's queue.
      if (action?.kind === "rate" || action?.kind === "rate-talk") this.track(this.onCallback(query, chat, action));
      else this.enqueue(ctx, () => this.onCallback(query, chat, action));
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

  /** Readiness: the Bot API answers with this bot's token. */
  async ready(): Promise<void> {
    await this.bot.telegram.getMe();
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

  /**
   * With Redis, before the update is answered: an update another front (or an earlier
   * delivery) took is dropped, and the others take their chat's turn, in the order
   * Telegram sends them. An update no handler queues still passes its turn, in order.
   */
  private async admit(ctx: Context, next: () => Promise<void>): Promise<void> {
    if (this.gate === undefined) return next();
    const chat = ctx.chat;
    const turn = await this.gate.admit(ctx.update.update_id, chat?.id);
    if (turn === "duplicate") return;
    const state = ctx.state as GateState;
    if (turn !== undefined) state.turn = turn;
    try {
      await next();
    } finally {
      // Also when a handler threw: a turn never passed would hold the chat on every front.
      if (state.turn !== undefined && chat !== undefined) this.enqueue(ctx, async () => {});
    }
  }

  /**
   * Run `work` for the update's chat after everything already queued for it here and,
   * with Redis, after the chat's earlier updates on every front; never block telegraf.
   */
  private enqueue(ctx: Context, work: () => Promise<void>): void {
    const chat = ctx.chat;
    if (chat === undefined) return;
    const state = ctx.state as GateState;
    const turn = state.turn;
    delete state.turn;
    const inTurn =
      turn === undefined
        ? work
        : async () => {
            await turn.ready();
            try {
              await work();
            } finally {
              await turn.done();
            }
          };
    const previous = this.chains.get(chat.id) ?? Promise.resolve();
    const next = previous
      .then(inTurn)
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
    const private_ = chat.type === "private";
    // A document or photo captioned with a command (/card import) is that command, with the file.
    const caption = "caption" in message ? message.caption : undefined;
    const text = "text" in message ? message.text : caption?.startsWith("/") ? caption : undefined;
    if (text === undefined) {
      // Stickers, photos, voice: only text moves a story.
      if (private_) await ctx.surface.notice(t(ctx.locale, "error.onlyText"));
      return;
    }
    const replyTo = "reply_to_message" in message ? message.reply_to_message?.message_id : undefined;
    const action = this.decodeText(text, private_, replyTo);
    if (action === undefined) return;
    if (action.kind === "command") {
      const reply = "reply_to_message" in message ? message.reply_to_message : undefined;
      const file = this.fileOf(message) ?? (reply === undefined ? undefined : this.fileOf(reply));
      if (file !== undefined) action.file = file;
    }
    await handleAction(action, ctx, this.deps.log);
    await this.sessions.save(String(chat.id), ctx.session);
  }

  /**
   * The document (or the largest size of a photo) a message carries, downloaded only when
   * the command reads it: getFile, then the file URL, cut off past the size asked for.
   */
  private fileOf(message: Message): IncomingFile | undefined {
    const document = "document" in message ? message.document : undefined;
    const photo = "photo" in message ? message.photo.at(-1) : undefined;
    const found =
      document !== undefined
        ? { id: document.file_id, name: document.file_name ?? "document", size: document.file_size }
        : photo !== undefined
          ? { id: photo.file_id, name: "photo.jpg", size: photo.file_size }
          : undefined;
    if (found === undefined) return undefined;
    const telegram = this.bot.telegram;
    return {
      name: found.name,
      ...(found.size === undefined ? {} : { size: found.size }),
      async read(maxBytes) {
        const link = await telegram.getFileLink(found.id);
        if (link.protocol !== "http:" && link.protocol !== "https:")
          throw new Error(`telegram file at ${link.protocol}`);
        return readAtMost(link, maxBytes);
      },
    };
  }

  /** A message as a reader action: a command (ours only, in groups), or text. */
  private decodeText(text: string, private_: boolean, replyTo: number | undefined): ReaderAction | undefined {
    if (!text.startsWith("/")) {
      return {
        kind: "text",
        text,
        addressed: private_,
        ...(replyTo === undefined ? {} : { replyTo: String(replyTo) }),
      };
    }
    const space = text.search(/\s/);
    const head = space < 0 ? text.slice(1) : text.slice(1, space);
    const [name = "", addressee] = head.split("@");
    const me = this.bot.botInfo?.username.toLowerCase();
    // Groups carry other bots' commands too: answer only ours.
    if (addressee !== undefined && addressee.toLowerCase() !== me) return undefined;
    const rest = space < 0 ? "" : text.slice(space + 1);
    return { kind: "command", name, text: rest, addressed: private_ || addressee !== undefined };
  }

  /** Answer a button press: a short toast, or an alert the reader must dismiss. */
  private answerQuery(query: CallbackQuery, text?: string, alert = false): Promise<void> {
    return this.bot.telegram
      .answerCbQuery(query.id, text?.slice(0, 200), { show_alert: alert })
      .then(() => undefined)
      .catch((error: unknown) => this.deps.log(`telegram answerCallbackQuery: ${String(error)}`));
  }

  /** A button press, handled by the core and answered with its toast or alert. */
  private async onCallback(query: CallbackQuery, chat: Chat, action: CallbackAction | undefined): Promise<void> {
    const ctx = await this.context(chat, query.from);
    if (action === undefined) {
      await this.answerQuery(query, t(ctx.locale, "error.stalePick"), true);
      return;
    }
    const message = query.message;
    const result = await handleAction(
      {
        kind: "press",
        action,
        ...(message === undefined
          ? {}
          : {
              message: {
                ref: { id: String(message.message_id) },
                ...optional("chapterId", ratedChapter("reply_markup" in message ? message.reply_markup : undefined)),
              },
            }),
      },
      ctx,
      this.deps.log,
    );
    await this.sessions.save(String(chat.id), ctx.session);
    await this.answerQuery(query, result.reply, result.alert);
  }

  private async context(chat: Chat, from: User, requestId?: string): Promise<CommandContext> {
    const conversation = conversationOf(chat);
    const settings = await this.deps.settings.get("telegram", String(chat.id));
    const locale: Locale = settings.locale;
    const session = await this.sessions.load(String(chat.id));
    const username = this.bot.botInfo?.username;
    return {
      actor: actorOf(from),
      // A private chat's reader moderates it; a group's moderators are its admins.
      moderator: chat.type === "private" || (await this.admins.isAdmin(chat.id, from.id)),
      privateChat: chat.type === "private",
      conversation,
      locale,
      surface: this.surface(chat.id, locale),
      session,
      ...commandServices(this.deps),
      ...(requestId === undefined ? {} : { requestId }),
      // Telegram has no age-restricted chats: adult themes stay off.
      ageRestricted: false,
      ...(username === undefined ? {} : { shareOffer: { link: (code: string) => remixLink(username, code) } }),
    };
  }

  /** A chat's surface: built from its id, the Telegram client and the outbox alone. */
  private surface(chatId: number, locale: Locale): TelegramSurface {
    return telegramSurfaceFor(this.bot.telegram, this.outbox, `telegram:${chatId}`, locale, this.deps.log);
  }
}

/** The deep link that starts a remix of a shared story in a private chat with the bot. */
export function remixLink(botUsername: string, code: string): string {
  return `https://t.me/${botUsername}?start=${REMIX_PAYLOAD_PREFIX}${code}`;
}

function conversationOf(chat: Chat): Conversation {
  return { platform: "telegram", workspaceId: String(chat.id), id: String(chat.id) };
}

function actorOf(from: User): Actor {
  return { platform: "telegram", id: String(from.id), name: from.first_name };
}

export type { Update };

/** `{ [key]: value }` when there is a value. */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
