/**
 * A fake Telegram Bot API server over real HTTP, so the real `telegraf` client (and
 * everything above it) runs unchanged in tests and benches:
 * `new Telegraf(server.token, { telegram: { apiRoot: server.apiRoot } })`.
 *
 * It speaks the Bot API wire format (JSON, urlencoded and multipart bodies; `{ok, result}` /
 * `{ok:false, error_code, description, parameters}` with the matching HTTP status), long-polls
 * `getUpdates` for real, can deliver updates to a webhook by POST, and validates what Telegram
 * validates (text length in UTF-16 units, HTML well-formedness, callback_data bytes, identical
 * edits). With `enforceLimits` it answers 429 like Telegram's flood control:
 * per chat 1 message call/s, per group 20/min, 30/s for the whole bot. Message calls are
 * sendMessage, sendDocument, sendPhoto and the editMessage* methods; sendChatAction,
 * answerCallbackQuery, getUpdates and sendMessageDraft do not count (drafts are an ephemeral
 * preview whose limits Telegram does not publish; counting them would make streaming tests
 * measure the fake's guess instead of the bot).
 *
 * Test options: `privacyMode` (groups see only commands, replies to the bot and mentions) and
 * `clock` (a manual clock for flood-limit tests).
 *
 * Known differences from Telegram: a second concurrent getUpdates is refused with 409 (Telegram
 * terminates the older one); webhook updates are delivered one at a time, in order; MarkdownV2
 * is checked for unescaped reserved characters and unclosed entities only. Files a user sends
 * (`sendDocument`) can be fetched as Telegram serves them: `getFile` gives a `file_path` (refused
 * over the Bot API's 20 MB download limit), and `GET /file/bot<token>/<file_path>` gives the bytes.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";

// ---------------------------------------------------------------------------------------------
// Bot API shapes (the subset the fake produces)

export type ChatKind = "private" | "group" | "supergroup";

export interface FakeChat {
  id: number;
  type: ChatKind;
  title?: string;
  username?: string;
  first_name?: string;
}

export interface FakeUser {
  id: number;
  is_bot: false;
  first_name: string;
  username?: string;
  language_code?: string;
}

export interface BotUser {
  id: number;
  is_bot: true;
  first_name: string;
  username: string;
  can_join_groups: boolean;
  can_read_all_group_messages: boolean;
  supports_inline_queries: boolean;
}

export interface TgEntity {
  type: string;
  offset: number;
  length: number;
  url?: string;
  language?: string;
  custom_emoji_id?: string;
}

export interface InlineButton {
  text: string;
  callback_data?: string;
  url?: string;
  [key: string]: unknown;
}

export interface ReplyMarkup {
  inline_keyboard?: InlineButton[][];
  force_reply?: true;
  input_field_placeholder?: string;
  selective?: boolean;
  keyboard?: unknown;
  remove_keyboard?: true;
}

export interface TgFile {
  file_id: string;
  file_unique_id: string;
  file_name?: string;
  file_size: number;
  mime_type?: string;
}

export interface TgPhotoSize {
  file_id: string;
  file_unique_id: string;
  width: number;
  height: number;
  file_size: number;
}

export interface TgMessage {
  message_id: number;
  date: number;
  chat: FakeChat;
  from?: FakeUser | BotUser;
  text?: string;
  entities?: TgEntity[];
  caption?: string;
  caption_entities?: TgEntity[];
  reply_markup?: { inline_keyboard: InlineButton[][] };
  reply_to_message?: TgMessage;
  edit_date?: number;
  document?: TgFile;
  photo?: TgPhotoSize[];
  sticker?: Record<string, unknown>;
}

export interface TgCallbackQuery {
  id: string;
  from: FakeUser;
  message: TgMessage;
  chat_instance: string;
  data: string;
}

export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  callback_query?: TgCallbackQuery;
}

/** A file the bot uploaded (or re-sent by file_id). */
export interface UploadedFile {
  file_id: string;
  file_name: string;
  bytes: Buffer;
  mime_type?: string;
}

/** One message the bot sent, as the test sees it now. */
export interface BotMessageRecord {
  message_id: number;
  /** Current visible text (after HTML/Markdown parsing); "" for media messages. */
  text: string;
  /** Current text as the bot sent it (with markup), when a parse_mode was used. */
  source?: string;
  entities?: TgEntity[];
  caption?: string;
  /** Current markup: inline keyboard, or the force_reply / keyboard the message was sent with. */
  reply_markup?: ReplyMarkup;
  parse_mode?: string;
  reply_to_message_id?: number;
  deleted: boolean;
  /** Number of successful edits (text, caption or markup). */
  edits: number;
  /** Every visible text (or caption) the message had, oldest first; last = current. */
  history: string[];
  document?: UploadedFile;
  photo?: UploadedFile;
  date: number;
}

export interface DraftRecord {
  draft_id: number;
  text: string;
  at: number;
}

export interface CallRecord {
  method: string;
  params: Record<string, unknown>;
  /** When the request arrived (the `clock` option, default Date.now). */
  at: number;
  chatId?: number;
  /** HTTP status; 0 while the call is in flight (held getUpdates), 499 if the client aborted it. */
  status: number;
  description?: string;
  /** "webhook-reply" when the call came back in a webhook response body. */
  via?: "http" | "webhook-reply";
}

export interface CallbackAnswer {
  text?: string;
  show_alert?: boolean;
  url?: string;
}

export interface InjectedError {
  error_code: number;
  description: string;
  retry_after?: number;
}

export interface FakeTelegramOptions {
  token?: string;
  enforceLimits?: boolean;
  port?: number;
  /** Telegram's group privacy mode: in groups the bot sees only commands, replies to it and mentions. Default false. */
  privacyMode?: boolean;
  /** Clock for flood limits and call timestamps (ms), e.g. a manual clock to test the per-minute limit. Default Date.now. */
  clock?: () => number;
}

// ---------------------------------------------------------------------------------------------

const BOT_USERNAME = "inkloom_test_bot";
const DEFAULT_TOKEN = "7000000001:AAFakeInkloomTestTokenForTheFakeServer";
const MAX_TEXT = 4096;
const MAX_CAPTION = 1024;
const CHAT_ACTIONS = new Set([
  "typing",
  "upload_photo",
  "record_video",
  "upload_video",
  "record_voice",
  "upload_voice",
  "upload_document",
  "choose_sticker",
  "find_location",
  "record_video_note",
  "upload_video_note",
]);
/** Methods that count against flood limits. */
const MESSAGE_METHODS = new Set([
  "sendMessage",
  "sendDocument",
  "sendPhoto",
  "editMessageText",
  "editMessageReplyMarkup",
  "editMessageCaption",
]);
/** Params sent as JSON strings in urlencoded/multipart bodies. */
const JSON_PARAMS = new Set([
  "reply_markup",
  "reply_parameters",
  "entities",
  "caption_entities",
  "commands",
  "scope",
  "allowed_updates",
  "link_preview_options",
]);

/** Params that arrive as "true"/"false" strings in urlencoded/multipart bodies. */
const BOOLEAN_PARAMS = new Set([
  "disable_notification",
  "protect_content",
  "allow_sending_without_reply",
  "show_alert",
  "drop_pending_updates",
  "has_spoiler",
  "disable_content_type_detection",
  "disable_web_page_preview",
  "allow_paid_broadcast",
]);

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly retryAfter?: number,
  ) {
    super(`${code}: ${description}`);
  }
}

const bad = (what: string) => new ApiError(400, `Bad Request: ${what}`);

type Params = Record<string, unknown>;
type Files = Map<string, { filename: string; bytes: Buffer; contentType?: string }>;
type Handler = (p: Params, files: Files, ctx: CallContext) => unknown;
interface CallContext {
  at: number;
  signal: AbortSignal | undefined;
  method: string;
}

interface StoredMessage {
  message: TgMessage;
  fromBot: boolean;
  deleted: boolean;
  edits: number;
  history: string[];
  source?: string;
  parseMode?: string;
  markup?: ReplyMarkup;
  document?: UploadedFile;
  photo?: UploadedFile;
}

interface ChatState {
  chat: FakeChat;
  nextMessageId: number;
  messages: Map<number, StoredMessage>;
  admins: number[];
  /** The group's creator (status `creator`), if set. */
  owner?: number;
  blocked: boolean;
  left: boolean;
  drafts: DraftRecord[];
  actions: string[];
  sendTimes: number[];
}

interface Webhook {
  url: string;
  secretToken?: string;
  maxConnections: number;
  allowedUpdates?: string[];
  lastErrorDate?: number;
  lastErrorMessage?: string;
}

interface PendingCallback {
  resolve: (answer: CallbackAnswer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class FakeTelegramServer {
  /** Every Bot API call, in arrival order. */
  readonly calls: CallRecord[] = [];
  /** How many 429s the fake answered (flood limits and injected ones). */
  rateLimited = 0;
  enforceLimits: boolean;
  privacyMode: boolean;
  readonly bot: BotUser;
  readonly #clock: () => number;

  readonly #chats = new Map<number, ChatState>();
  readonly #users = new Map<number, FakeUser>();
  readonly #pending: TgUpdate[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #failures = new Map<string, InjectedError[]>();
  readonly #callbacks = new Map<string, PendingCallback>();
  readonly #commands = new Map<string, { command: string; description: string }[]>();
  readonly #files = new Map<string, UploadedFile>();
  /** getFile's file_path -> the file it names. */
  readonly #filePaths = new Map<string, UploadedFile>();
  /** Downloads served from /file/bot<token>/..., for tests to count. */
  readonly downloads: string[] = [];
  readonly #timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  readonly #webhookRequests = new Set<ReturnType<typeof httpRequest>>();
  readonly #globalSendTimes: number[] = [];
  readonly #methods: Map<string, { name: string; handler: Handler }>;
  #poller: { wake: () => void } | undefined;
  #allowedUpdates: string[] | undefined;
  #webhook: Webhook | undefined;
  #pumping = false;
  #closed = false;
  #nextUpdateId = 500_000_001;
  #nextUserId = 100_001;
  #nextGroupId = 1;
  #nextCallbackId = 1;
  #nextFileId = 1;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:PORT`, for telegraf's `telegram.apiRoot`. */
    readonly apiRoot: string,
    readonly token: string,
    options: FakeTelegramOptions,
  ) {
    this.enforceLimits = options.enforceLimits ?? false;
    this.privacyMode = options.privacyMode ?? false;
    this.#clock = options.clock ?? Date.now;
    const botId = Number(token.split(":")[0]);
    this.bot = {
      id: Number.isSafeInteger(botId) && botId > 0 ? botId : 7_000_000_001,
      is_bot: true,
      first_name: "Inkloom",
      username: BOT_USERNAME,
      can_join_groups: true,
      can_read_all_group_messages: !this.privacyMode,
      supports_inline_queries: false,
    };
    this.#methods = this.#buildMethods();
  }

  /** Listen on 127.0.0.1 (`port` 0, the default, picks a free one). */
  static async start(options: FakeTelegramOptions = {}): Promise<FakeTelegramServer> {
    let instance: FakeTelegramServer | undefined;
    const server = createServer((req, res) => {
      if (!instance) {
        res.destroy();
        return;
      }
      instance.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) reply(res, 500, { ok: false, error_code: 500, description: String(err) });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    instance = new FakeTelegramServer(server, `http://127.0.0.1:${port}`, options.token ?? DEFAULT_TOKEN, options);
    const sockets = instance.#sockets;
    server.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    return instance;
  }

  /** Release held getUpdates (empty result), stop webhook delivery, reject unanswered clicks, stop listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller?.wake();
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.resolve();
    }
    this.#timers.clear();
    for (const req of this.#webhookRequests) req.destroy();
    for (const [id, cb] of this.#callbacks) {
      clearTimeout(cb.timer);
      cb.reject(new Error(`callback query ${id} not answered: server closed`));
    }
    this.#callbacks.clear();
    // Let released long polls flush their answers before sockets go.
    await new Promise((resolve) => setImmediate(resolve));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  // -------------------------------------------------------------------------------------------
  // Test driver: world

  /** A new user (positive ids). */
  user(opts: { first_name?: string; username?: string; language_code?: string; id?: number } = {}): FakeUser {
    const id = opts.id ?? this.#nextUserId++;
    const user: FakeUser = { id, is_bot: false, first_name: opts.first_name ?? `Reader${id}` };
    if (opts.username !== undefined) user.username = opts.username;
    if (opts.language_code !== undefined) user.language_code = opts.language_code;
    this.#users.set(id, user);
    return user;
  }

  /**
   * A new chat. A private chat has the id of its user (`opts.user`, or a new one); groups get
   * negative ids (supergroups -100…).
   */
  chat(kind: ChatKind, opts: { title?: string; user?: FakeUser; username?: string } = {}): FakeChat {
    let chat: FakeChat;
    if (kind === "private") {
      const user = opts.user ?? this.user();
      this.#users.set(user.id, user);
      chat = { id: user.id, type: "private", first_name: user.first_name };
      if (user.username !== undefined) chat.username = user.username;
    } else {
      const n = this.#nextGroupId++;
      const id = kind === "supergroup" ? -1_000_000_000_000 - n : -4_000_000_000 - n;
      chat = { id, type: kind, title: opts.title ?? `Story group ${n}` };
      if (opts.username !== undefined) chat.username = opts.username;
    }
    this.#chats.set(chat.id, {
      chat,
      nextMessageId: 1,
      messages: new Map(),
      admins: [],
      blocked: false,
      left: false,
      drafts: [],
      actions: [],
      sendTimes: [],
    });
    return chat;
  }

  /** Administrators of a chat (getChatMember / getChatAdministrators); include `server.bot.id` to make the bot admin. */
  setAdmins(chatId: number, userIds: number[]): void {
    this.#state(chatId).admins = [...userIds];
  }

  /**
   * The group's creator: getChatMember answers `creator` for them, and getChatAdministrators
   * lists them first, as the Bot API does.
   */
  setOwner(chatId: number, userId: number): void {
    const state = this.#state(chatId);
    if (state.chat.type === "private") throw new Error("a private chat has no owner");
    state.owner = userId;
  }

  /** Later calls to this chat fail with 403 (blocked by the user; kicked, for groups). */
  blockBot(chatId: number): void {
    this.#state(chatId).blocked = true;
  }

  unblockBot(chatId: number): void {
    const state = this.#state(chatId);
    state.blocked = false;
    state.left = false;
  }

  // -------------------------------------------------------------------------------------------
  // Test driver: incoming updates

  /** A user writes `text` (a leading `/cmd` or `/cmd@bot` gets a bot_command entity). */
  sendText(chat: FakeChat | number, from: FakeUser, text: string, opts: { replyTo?: number } = {}): TgUpdate {
    const entities: TgEntity[] = [];
    const command = /^\/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,})?/.exec(text);
    if (command) entities.push({ type: "bot_command", offset: 0, length: command[0].length });
    for (const m of text.matchAll(/(^|[^\w@])(@[A-Za-z0-9_]{5,32})/g)) {
      entities.push({ type: "mention", offset: (m.index ?? 0) + (m[1]?.length ?? 0), length: m[2]?.length ?? 0 });
    }
    const visible =
      !!command ||
      text.toLowerCase().includes(`@${BOT_USERNAME}`) ||
      (opts.replyTo !== undefined && this.#isBotMessage(chat, opts.replyTo));
    return this.#incoming(chat, from, { text, ...(entities.length > 0 ? { entities } : {}) }, opts.replyTo, visible);
  }

  /** A user sends a sticker (a message without text). */
  sendSticker(chat: FakeChat | number, from: FakeUser, opts: { replyTo?: number } = {}): TgUpdate {
    const sticker = {
      file_id: `sticker-${this.#nextFileId}`,
      file_unique_id: `stk${this.#nextFileId++}`,
      type: "regular",
      width: 512,
      height: 512,
      is_animated: false,
      is_video: false,
      emoji: "🙂",
    };
    return this.#incoming(chat, from, { sticker }, opts.replyTo, this.#replyVisible(chat, opts.replyTo));
  }

  /**
   * A user sends a file as a document, optionally captioned (a caption starting with `/cmd`
   * gets a bot_command entity, as Telegram marks it) or replying to a message.
   */
  sendDocument(
    chat: FakeChat | number,
    from: FakeUser,
    file: { name: string; content: Buffer; mimeType?: string },
    opts: { replyTo?: number; caption?: string } = {},
  ): TgUpdate {
    const stored: UploadedFile = {
      file_id: `user-doc-${this.#nextFileId++}`,
      file_name: file.name,
      bytes: file.content,
    };
    if (file.mimeType !== undefined) stored.mime_type = file.mimeType;
    this.#files.set(stored.file_id, stored);
    const document: TgFile = {
      file_id: stored.file_id,
      file_unique_id: `u${stored.file_id}`,
      file_name: file.name,
      file_size: file.content.byteLength,
    };
    if (file.mimeType !== undefined) document.mime_type = file.mimeType;
    const content: Partial<TgMessage> = { document };
    const command = opts.caption === undefined ? null : /^\/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,})?/.exec(opts.caption);
    if (opts.caption !== undefined) content.caption = opts.caption;
    if (command) content.caption_entities = [{ type: "bot_command", offset: 0, length: command[0].length }];
    return this.#incoming(chat, from, content, opts.replyTo, !!command || this.#replyVisible(chat, opts.replyTo));
  }

  /** A user sends a photo (a message without text; optional caption). */
  sendPhoto(chat: FakeChat | number, from: FakeUser, opts: { replyTo?: number; caption?: string } = {}): TgUpdate {
    const n = this.#nextFileId++;
    const photo: TgPhotoSize[] = [
      { file_id: `user-photo-${n}-s`, file_unique_id: `ph${n}s`, width: 90, height: 90, file_size: 1200 },
      { file_id: `user-photo-${n}`, file_unique_id: `ph${n}`, width: 800, height: 800, file_size: 48000 },
    ];
    const content: Partial<TgMessage> = { photo };
    if (opts.caption !== undefined) content.caption = opts.caption;
    return this.#incoming(chat, from, content, opts.replyTo, this.#replyVisible(chat, opts.replyTo));
  }

  /**
   * A user clicks an inline button: enqueues a callback_query carrying the message as it is now,
   * and resolves with the bot's answerCallbackQuery (rejects after `timeoutMs` unanswered).
   * Throws if the message has no button with that data, unless `allowStale`.
   */
  clickButton(
    chat: FakeChat | number,
    from: FakeUser,
    messageId: number,
    data: string,
    opts: { timeoutMs?: number; allowStale?: boolean } = {},
  ): Promise<CallbackAnswer> {
    const state = this.#state(chatIdOf(chat));
    const stored = state.messages.get(messageId);
    if (!stored || stored.deleted) throw new Error(`clickButton: no message ${messageId} in chat ${state.chat.id}`);
    const hasButton = stored.message.reply_markup?.inline_keyboard.some((row) =>
      row.some((b) => b.callback_data === data),
    );
    if (!hasButton && !opts.allowStale) {
      throw new Error(`clickButton: message ${messageId} has no button with callback_data ${JSON.stringify(data)}`);
    }
    const id = `${this.bot.id}${String(this.#nextCallbackId++).padStart(6, "0")}`;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const promise = new Promise<CallbackAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#callbacks.delete(id);
        reject(new Error(`callback query ${id} (${data}) was not answered within ${timeoutMs}ms`));
      }, timeoutMs);
      this.#callbacks.set(id, { resolve, reject, timer });
    });
    // A fire-and-forget click must not become an unhandled rejection; awaiting callers still see it.
    promise.catch(() => {});
    this.#enqueue({
      update_id: this.#nextUpdateId++,
      callback_query: {
        id,
        from,
        message: structuredClone(stored.message),
        chat_instance: String(BigInt(state.chat.id) * 7919n + 104729n),
        data,
      },
    });
    return promise;
  }

  /** Updates not yet confirmed by getUpdates (or delivered to the webhook). */
  get pendingUpdates(): number {
    return this.#pending.length;
  }

  // -------------------------------------------------------------------------------------------
  // Test driver: inspection

  /** The bot's messages in a chat, in order, deleted ones included (`deleted: true`). */
  messages(chatId: number): BotMessageRecord[] {
    const state = this.#chats.get(chatId);
    if (!state) return [];
    const out: BotMessageRecord[] = [];
    for (const s of state.messages.values()) {
      if (!s.fromBot) continue;
      const m = s.message;
      const rec: BotMessageRecord = {
        message_id: m.message_id,
        text: m.text ?? "",
        deleted: s.deleted,
        edits: s.edits,
        history: [...s.history],
        date: m.date,
      };
      if (s.source !== undefined) rec.source = s.source;
      const entities = m.entities ?? m.caption_entities;
      if (entities) rec.entities = structuredClone(entities);
      if (m.caption !== undefined) rec.caption = m.caption;
      if (s.markup) rec.reply_markup = structuredClone(s.markup);
      if (s.parseMode !== undefined) rec.parse_mode = s.parseMode;
      if (m.reply_to_message) rec.reply_to_message_id = m.reply_to_message.message_id;
      if (s.document) rec.document = s.document;
      if (s.photo) rec.photo = s.photo;
      out.push(rec);
    }
    return out;
  }

  /** sendMessageDraft calls accepted for a chat, oldest first. */
  drafts(chatId: number): DraftRecord[] {
    return [...(this.#chats.get(chatId)?.drafts ?? [])];
  }

  /** sendChatAction actions accepted for a chat, oldest first. */
  chatActions(chatId: number): string[] {
    return [...(this.#chats.get(chatId)?.actions ?? [])];
  }

  /** Commands stored by setMyCommands for a scope (default `{type:"default"}`) and language ("" = none). */
  commands(
    scope: Record<string, unknown> = { type: "default" },
    languageCode = "",
  ): { command: string; description: string }[] {
    return structuredClone(this.#commands.get(commandKey(scope, languageCode)) ?? []);
  }

  /** The current webhook URL, or undefined in polling mode. */
  get webhookUrl(): string | undefined {
    return this.#webhook?.url;
  }

  /** Resolves with `check()`'s first truthy value (polled every 10 ms); rejects after `timeoutMs`. */
  waitFor<T>(check: () => T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
    const started = Date.now();
    return new Promise<T>((resolve, reject) => {
      const tick = () => {
        let value: T | undefined | null | false;
        try {
          value = check();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (value) {
          resolve(value);
          return;
        }
        if (Date.now() - started >= timeoutMs) {
          reject(new Error(`waitFor: condition not met within ${timeoutMs}ms`));
          return;
        }
        setTimeout(tick, 10);
      };
      tick();
    });
  }

  /** The next call of `method` fails with this error (queued: several calls fail in order). */
  failNext(method: string, error: InjectedError): void {
    const key = method.toLowerCase();
    const queue = this.#failures.get(key) ?? [];
    queue.push(error);
    this.#failures.set(key, queue);
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = this.#clock();
    const url = new URL(req.url ?? "/", "http://fake");
    const download = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (download && req.method === "GET") {
      const file = this.#filePaths.get(decodeURIComponent(download[2] ?? ""));
      if (decodeURIComponent(download[1] ?? "") !== this.token || !file) {
        reply(res, 404, { ok: false, error_code: 404, description: "Not Found" });
        return;
      }
      this.downloads.push(file.file_id);
      res.writeHead(200, { "content-type": file.mime_type ?? "application/octet-stream" });
      res.end(file.bytes);
      return;
    }
    const match = /^\/bot([^/]+)(?:\/test)?\/([^/]+)\/?$/.exec(url.pathname);
    if (!match) {
      reply(res, 404, { ok: false, error_code: 404, description: "Not Found" });
      return;
    }
    if (decodeURIComponent(match[1] ?? "") !== this.token) {
      reply(res, 401, { ok: false, error_code: 401, description: "Unauthorized" });
      return;
    }
    let params: Params;
    let files: Files;
    try {
      ({ params, files } = await parseBody(req));
    } catch (err) {
      reply(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${(err as Error).message}` });
      return;
    }
    for (const [key, value] of url.searchParams) if (!(key in params)) params[key] = value;
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    const { status, body } = await this.#dispatch(match[2] ?? "", params, files, at, controller.signal, "http");
    if (res.destroyed || res.writableEnded) return;
    reply(res, status, body);
  }

  async #dispatch(
    rawMethod: string,
    rawParams: Params,
    files: Files,
    at: number,
    signal: AbortSignal | undefined,
    via: "http" | "webhook-reply",
  ): Promise<{ status: number; body: unknown }> {
    const params = normalizeParams(rawParams);
    const entry = this.#methods.get(rawMethod.toLowerCase());
    const record: CallRecord = {
      method: entry?.name ?? rawMethod,
      params: describeParams(params, files),
      at,
      status: 0,
      via,
    };
    const chatId = typeof params.chat_id === "number" ? params.chat_id : undefined;
    if (chatId !== undefined) record.chatId = chatId;
    this.calls.push(record);
    const finish = (status: number, body: unknown) => {
      if (signal?.aborted) {
        // The client went away (e.g. telegraf aborting its long poll on stop): nobody got an answer.
        record.status = 499;
        record.description = "client closed request";
        return { status, body };
      }
      record.status = status;
      if (status !== 200) record.description = (body as { description?: string }).description ?? "";
      if (status === 429) this.rateLimited++;
      return { status, body };
    };
    if (!entry) return finish(404, { ok: false, error_code: 404, description: "Not Found: method not found" });
    const injected = this.#failures.get(entry.name.toLowerCase())?.shift();
    if (injected)
      return finish(injected.error_code, errorBody(injected.error_code, injected.description, injected.retry_after));
    try {
      const result = await entry.handler(params, files, { at, signal, method: entry.name });
      return finish(200, { ok: true, result });
    } catch (err) {
      if (err instanceof ApiError) return finish(err.code, errorBody(err.code, err.description, err.retryAfter));
      return finish(500, { ok: false, error_code: 500, description: `Internal Server Error: ${String(err)}` });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Bot API methods

  #buildMethods(): Map<string, { name: string; handler: Handler }> {
    const handlers: Record<string, Handler> = {
      getMe: () => this.bot,
      logOut: () => true,
      close: () => true,
      getUpdates: (p, _f, ctx) => this.#getUpdates(p, ctx),
      setWebhook: (p) => this.#setWebhook(p),
      deleteWebhook: (p) => {
        this.#webhook = undefined;
        if (p.drop_pending_updates === true) this.#pending.length = 0;
        return true;
      },
      getWebhookInfo: () => {
        const hook = this.#webhook;
        const info: Record<string, unknown> = {
          url: hook?.url ?? "",
          has_custom_certificate: false,
          pending_update_count: this.#pending.length,
        };
        if (hook) {
          info.max_connections = hook.maxConnections;
          if (hook.allowedUpdates) info.allowed_updates = hook.allowedUpdates;
          if (hook.lastErrorDate !== undefined) info.last_error_date = hook.lastErrorDate;
          if (hook.lastErrorMessage !== undefined) info.last_error_message = hook.lastErrorMessage;
        }
        return info;
      },
      setMyCommands: (p) => {
        const commands = p.commands;
        if (!Array.isArray(commands)) throw bad('parameter "commands" is required');
        if (commands.length > 100) throw bad("too many commands");
        const clean = commands.map((c: unknown) => {
          const { command, description } = (c ?? {}) as { command?: unknown; description?: unknown };
          if (typeof command !== "string" || !/^[a-z0-9_]{1,32}$/.test(command)) throw bad("BOT_COMMAND_INVALID");
          if (typeof description !== "string" || description.length < 1 || description.length > 256) {
            throw bad("BOT_COMMAND_DESCRIPTION_INVALID");
          }
          return { command, description };
        });
        this.#commands.set(this.#commandKeyOf(p), clean);
        return true;
      },
      getMyCommands: (p) => structuredClone(this.#commands.get(this.#commandKeyOf(p)) ?? []),
      deleteMyCommands: (p) => {
        this.#commands.delete(this.#commandKeyOf(p));
        return true;
      },
      sendMessage: (p, _f, ctx) => this.#sendMessage(p, ctx),
      editMessageText: (p, _f, ctx) => this.#editMessageText(p, ctx),
      editMessageCaption: (p, _f, ctx) => this.#editMessageCaption(p, ctx),
      editMessageReplyMarkup: (p, _f, ctx) => this.#editMessageReplyMarkup(p, ctx),
      deleteMessage: (p) => this.#deleteMessage(p),
      answerCallbackQuery: (p) => this.#answerCallbackQuery(p),
      sendDocument: (p, f, ctx) => this.#sendFile("document", p, f, ctx),
      sendPhoto: (p, f, ctx) => this.#sendFile("photo", p, f, ctx),
      sendChatAction: (p) => {
        const state = this.#target(p);
        const action = p.action;
        if (typeof action !== "string" || !CHAT_ACTIONS.has(action)) throw bad("wrong parameter action in request");
        state.actions.push(action);
        return true;
      },
      sendMessageDraft: (p) => this.#sendMessageDraft(p),
      getFile: (p) => {
        const id = optString(p.file_id);
        if (id === undefined) throw bad('parameter "file_id" is required');
        const file = this.#files.get(id);
        if (!file) throw bad("invalid file_id");
        if (file.bytes.byteLength > 20 * 1024 * 1024) throw bad("file is too big");
        const ext = /\.[A-Za-z0-9]{1,8}$/.exec(file.file_name)?.[0] ?? "";
        const path = `documents/file_${id}${ext}`;
        this.#filePaths.set(path, file);
        return { file_id: id, file_unique_id: `u${id}`, file_size: file.bytes.byteLength, file_path: path };
      },
      getChat: (p) => {
        const state = this.#target(p);
        return { ...state.chat, accent_color_id: 0, max_reaction_count: 11, accepted_gift_types: {} };
      },
      getChatMember: (p) => {
        const state = this.#target(p);
        const userId = toInt(p.user_id);
        if (userId === undefined) throw bad('parameter "user_id" is required');
        return this.#member(state, userId);
      },
      getChatAdministrators: (p) => {
        const state = this.#target(p);
        if (state.chat.type === "private") throw bad("there are no administrators in the private chat");
        const ids = state.owner === undefined ? state.admins : [state.owner, ...state.admins];
        return [...new Set(ids)].map((id) => this.#member(state, id));
      },
      getChatMemberCount: (p) => {
        const state = this.#target(p);
        return state.chat.type === "private" ? 2 : Math.max(2, state.admins.length + 1);
      },
      leaveChat: (p) => {
        const state = this.#target(p);
        if (state.chat.type === "private") throw bad("chat member status can't be changed in private chats");
        state.left = true;
        return true;
      },
    };
    return new Map(Object.entries(handlers).map(([name, handler]) => [name.toLowerCase(), { name, handler }]));
  }

  async #getUpdates(p: Params, ctx: CallContext): Promise<TgUpdate[]> {
    if (this.#webhook) {
      throw new ApiError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      );
    }
    const offset = toInt(p.offset) ?? 0;
    if (offset > 0) {
      while (this.#pending.length > 0 && (this.#pending[0]?.update_id ?? 0) < offset) this.#pending.shift();
    } else if (offset < 0) {
      this.#pending.splice(0, Math.max(0, this.#pending.length + offset));
    }
    if (Array.isArray(p.allowed_updates)) {
      this.#allowedUpdates = p.allowed_updates.length > 0 ? p.allowed_updates.map(String) : undefined;
    }
    this.#dropDisallowed(this.#allowedUpdates);
    const limit = Math.min(100, Math.max(1, toInt(p.limit) ?? 100));
    const timeout = Math.max(0, toInt(p.timeout) ?? 0);
    if (this.#poller) {
      // An aborted long poll may not have been noticed yet: give its close event a moment.
      await this.#sleep(25);
      if (this.#poller) {
        throw new ApiError(
          409,
          "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        );
      }
    }
    if (this.#pending.length === 0 && timeout > 0 && !this.#closed && !ctx.signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          ctx.signal?.removeEventListener("abort", done);
          if (this.#poller === poller) this.#poller = undefined;
          resolve();
        };
        const poller = { wake: done };
        const timer = setTimeout(done, timeout * 1000);
        ctx.signal?.addEventListener("abort", done);
        this.#poller = poller;
      });
      this.#dropDisallowed(this.#allowedUpdates);
    }
    return structuredClone(this.#pending.slice(0, limit));
  }

  #setWebhook(p: Params): true {
    const url = typeof p.url === "string" ? p.url : "";
    if (p.drop_pending_updates === true) this.#pending.length = 0;
    if (url === "") {
      this.#webhook = undefined;
      return true;
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw bad("invalid webhook URL specified");
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:")
      throw bad("bad webhook: HTTPS url must be provided for webhook");
    const secret = p.secret_token;
    if (secret !== undefined && (typeof secret !== "string" || !/^[A-Za-z0-9_-]{1,256}$/.test(secret))) {
      throw bad("secret token contains unallowed characters");
    }
    const hook: Webhook = { url, maxConnections: toInt(p.max_connections) ?? 40 };
    if (typeof secret === "string") hook.secretToken = secret;
    if (Array.isArray(p.allowed_updates) && p.allowed_updates.length > 0)
      hook.allowedUpdates = p.allowed_updates.map(String);
    this.#webhook = hook;
    if (this.#poller) this.#poller.wake();
    void this.#pump();
    return true;
  }

  #sendMessage(p: Params, ctx: CallContext): TgMessage {
    const state = this.#target(p);
    const parseMode = optString(p.parse_mode);
    const source = requireString(p.text, "text");
    const { text, entities } = parseText(source, parseMode, p.entities);
    if (text.trim().length === 0) throw bad("message text is empty");
    if (text.length > MAX_TEXT) throw bad("message is too long");
    const markup = validateMarkup(p.reply_markup, false);
    const replyTo = this.#replyTarget(state, p);
    this.#spend(state, ctx);
    const message = this.#newBotMessage(state, { text, ...(entities.length > 0 ? { entities } : {}) }, markup, replyTo);
    const stored = this.#store(state, message, markup);
    stored.history.push(text);
    if (parseMode !== undefined) {
      stored.source = source;
      stored.parseMode = parseMode;
    }
    return structuredClone(message);
  }

  #editMessageText(p: Params, ctx: CallContext): TgMessage {
    const { state, stored } = this.#editTarget(p);
    if (stored.message.text === undefined) throw bad("there is no text in the message to edit");
    const parseMode = optString(p.parse_mode);
    const source = requireString(p.text, "text");
    const { text, entities } = parseText(source, parseMode, p.entities);
    if (text.trim().length === 0) throw bad("message text is empty");
    if (text.length > MAX_TEXT) throw bad("MESSAGE_TOO_LONG");
    const markup = validateMarkup(p.reply_markup, true);
    const keyboard = markup?.inline_keyboard ? { inline_keyboard: markup.inline_keyboard } : undefined;
    const m = stored.message;
    if (m.text === text && sameJson(m.entities ?? [], entities) && sameJson(m.reply_markup ?? null, keyboard ?? null)) {
      throw bad(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
      );
    }
    this.#spend(state, ctx);
    m.text = text;
    if (entities.length > 0) m.entities = entities;
    else delete m.entities;
    this.#applyKeyboard(stored, keyboard);
    if (parseMode !== undefined) {
      stored.source = source;
      stored.parseMode = parseMode;
    } else {
      delete stored.source;
      delete stored.parseMode;
    }
    this.#edited(stored, text);
    return structuredClone(m);
  }

  #editMessageCaption(p: Params, ctx: CallContext): TgMessage {
    const { state, stored } = this.#editTarget(p);
    if (!stored.document && !stored.photo) throw bad("there is no caption in the message to edit");
    const parseMode = optString(p.parse_mode);
    const { text, entities } = parseText(optString(p.caption) ?? "", parseMode, p.caption_entities);
    if (text.length > MAX_CAPTION) throw bad("message caption is too long");
    const markup = validateMarkup(p.reply_markup, true);
    const keyboard = markup?.inline_keyboard ? { inline_keyboard: markup.inline_keyboard } : undefined;
    const m = stored.message;
    if (
      (m.caption ?? "") === text &&
      sameJson(m.caption_entities ?? [], entities) &&
      sameJson(m.reply_markup ?? null, keyboard ?? null)
    ) {
      throw bad(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
      );
    }
    this.#spend(state, ctx);
    if (text === "") delete m.caption;
    else m.caption = text;
    if (entities.length > 0) m.caption_entities = entities;
    else delete m.caption_entities;
    this.#applyKeyboard(stored, keyboard);
    this.#edited(stored, text);
    return structuredClone(m);
  }

  #editMessageReplyMarkup(p: Params, ctx: CallContext): TgMessage {
    const { state, stored } = this.#editTarget(p);
    const markup = validateMarkup(p.reply_markup, true);
    const keyboard = markup?.inline_keyboard ? { inline_keyboard: markup.inline_keyboard } : undefined;
    if (sameJson(stored.message.reply_markup ?? null, keyboard ?? null)) {
      throw bad(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
      );
    }
    this.#spend(state, ctx);
    this.#applyKeyboard(stored, keyboard);
    this.#edited(stored, stored.message.text ?? stored.message.caption ?? "");
    return structuredClone(stored.message);
  }

  #deleteMessage(p: Params): true {
    const state = this.#target(p);
    const id = toInt(p.message_id);
    const stored = id === undefined ? undefined : state.messages.get(id);
    if (!stored || stored.deleted) throw bad("message to delete not found");
    if (!stored.fromBot && state.chat.type !== "private" && !state.admins.includes(this.bot.id)) {
      throw bad("message can't be deleted");
    }
    stored.deleted = true;
    return true;
  }

  #answerCallbackQuery(p: Params): true {
    const id = optString(p.callback_query_id) ?? String(p.callback_query_id ?? "");
    const pending = this.#callbacks.get(id);
    if (!pending) throw bad("query is too old and response timeout expired or query ID is invalid");
    const text = optString(p.text);
    if (text !== undefined && text.length > 200) throw bad("MESSAGE_TOO_LONG");
    this.#callbacks.delete(id);
    clearTimeout(pending.timer);
    const answer: CallbackAnswer = {};
    if (text !== undefined) answer.text = text;
    if (p.show_alert === true) answer.show_alert = true;
    const url = optString(p.url);
    if (url !== undefined) answer.url = url;
    pending.resolve(answer);
    return true;
  }

  #sendFile(kind: "document" | "photo", p: Params, files: Files, ctx: CallContext): TgMessage {
    const state = this.#target(p);
    let file: UploadedFile | undefined;
    const part = files.get(kind);
    const ref = p[kind];
    if (part) {
      if (part.bytes.length === 0) throw bad("file must be non-empty");
      file = { file_id: `fake-${kind}-${this.#nextFileId++}`, file_name: part.filename, bytes: part.bytes };
      if (part.contentType !== undefined) file.mime_type = part.contentType;
      this.#files.set(file.file_id, file);
    } else if (typeof ref === "string" && ref.startsWith("attach://")) {
      throw bad(`there is no ${kind} in the request`);
    } else if (typeof ref === "string") {
      file = this.#files.get(ref);
      if (!file) throw bad("wrong file identifier/HTTP URL specified");
    } else {
      throw bad(`there is no ${kind} in the request`);
    }
    const parseMode = optString(p.parse_mode);
    const { text: caption, entities } = parseText(optString(p.caption) ?? "", parseMode, p.caption_entities);
    if (caption.length > MAX_CAPTION) throw bad("message caption is too long");
    const markup = validateMarkup(p.reply_markup, false);
    const replyTo = this.#replyTarget(state, p);
    this.#spend(state, ctx);
    const content: Partial<TgMessage> = {};
    if (kind === "document") {
      const doc: TgFile = {
        file_id: file.file_id,
        file_unique_id: `u${file.file_id}`,
        file_name: file.file_name,
        file_size: file.bytes.length,
      };
      if (file.mime_type !== undefined) doc.mime_type = file.mime_type;
      content.document = doc;
    } else {
      content.photo = [
        { file_id: `${file.file_id}-s`, file_unique_id: `u${file.file_id}s`, width: 90, height: 90, file_size: 1000 },
        {
          file_id: file.file_id,
          file_unique_id: `u${file.file_id}`,
          width: 800,
          height: 600,
          file_size: file.bytes.length,
        },
      ];
    }
    if (caption !== "") content.caption = caption;
    if (entities.length > 0) content.caption_entities = entities;
    const message = this.#newBotMessage(state, content, markup, replyTo);
    const stored = this.#store(state, message, markup);
    stored[kind] = file;
    stored.history.push(caption);
    if (parseMode !== undefined) stored.parseMode = parseMode;
    return structuredClone(message);
  }

  #sendMessageDraft(p: Params): true {
    const state = this.#target(p);
    if (state.chat.type !== "private") throw bad("sendMessageDraft can be used only in private chats");
    const draftId = toInt(p.draft_id);
    if (draftId === undefined || draftId === 0) throw bad('parameter "draft_id" must be a non-zero integer');
    const { text } = parseText(requireString(p.text, "text"), optString(p.parse_mode), p.entities);
    if (text.trim().length === 0) throw bad("message text is empty");
    if (text.length > MAX_TEXT) throw bad("message is too long");
    state.drafts.push({ draft_id: draftId, text, at: this.#clock() });
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  #state(chatId: number): ChatState {
    const state = this.#chats.get(chatId);
    if (!state) throw new Error(`fake telegram: unknown chat ${chatId} (create it with server.chat())`);
    return state;
  }

  /** The chat a call addresses; 400/403 like Telegram when it can't be written to. */
  #target(p: Params): ChatState {
    const raw = p.chat_id;
    let state: ChatState | undefined;
    if (typeof raw === "number") state = this.#chats.get(raw);
    else if (typeof raw === "string" && raw.startsWith("@")) {
      const name = raw.slice(1).toLowerCase();
      state = [...this.#chats.values()].find((s) => s.chat.username?.toLowerCase() === name);
    } else if (raw === undefined) throw bad("chat_id is empty");
    if (!state) throw bad("chat not found");
    if (state.blocked) {
      throw new ApiError(
        403,
        state.chat.type === "private"
          ? "Forbidden: bot was blocked by the user"
          : "Forbidden: bot was kicked from the group chat",
      );
    }
    if (state.left) throw new ApiError(403, "Forbidden: bot is not a member of the group chat");
    return state;
  }

  #editTarget(p: Params): { state: ChatState; stored: StoredMessage } {
    if (p.inline_message_id !== undefined) throw bad("inline messages are not supported by the fake");
    const state = this.#target(p);
    const id = toInt(p.message_id);
    const stored = id === undefined ? undefined : state.messages.get(id);
    if (!stored || stored.deleted) throw bad("message to edit not found");
    if (!stored.fromBot) throw bad("message can't be edited");
    return { state, stored };
  }

  #replyTarget(state: ChatState, p: Params): TgMessage | undefined {
    const params = (p.reply_parameters ?? undefined) as
      | { message_id?: unknown; allow_sending_without_reply?: unknown }
      | undefined;
    const id = toInt(params?.message_id ?? p.reply_to_message_id);
    if (id === undefined) return undefined;
    const target = state.messages.get(id);
    if (target && !target.deleted) return target.message;
    if (params?.allow_sending_without_reply === true || p.allow_sending_without_reply === true) return undefined;
    throw bad("message to be replied not found");
  }

  #newBotMessage(
    state: ChatState,
    content: Partial<TgMessage>,
    markup: ReplyMarkup | undefined,
    replyTo: TgMessage | undefined,
  ): TgMessage {
    const message: TgMessage = {
      message_id: state.nextMessageId++,
      from: this.bot,
      chat: state.chat,
      date: Math.floor(Date.now() / 1000),
      ...content,
    };
    if (markup?.inline_keyboard) message.reply_markup = { inline_keyboard: markup.inline_keyboard };
    if (replyTo) message.reply_to_message = withoutReply(replyTo);
    return message;
  }

  #store(state: ChatState, message: TgMessage, markup: ReplyMarkup | undefined): StoredMessage {
    const stored: StoredMessage = { message, fromBot: true, deleted: false, edits: 0, history: [] };
    if (markup) stored.markup = markup;
    state.messages.set(message.message_id, stored);
    return stored;
  }

  #applyKeyboard(stored: StoredMessage, keyboard: { inline_keyboard: InlineButton[][] } | undefined): void {
    if (keyboard) {
      stored.message.reply_markup = keyboard;
      stored.markup = keyboard;
    } else {
      delete stored.message.reply_markup;
      if (stored.markup?.inline_keyboard) delete stored.markup;
    }
  }

  #edited(stored: StoredMessage, visible: string): void {
    stored.edits++;
    stored.message.edit_date = Math.floor(Date.now() / 1000);
    stored.history.push(visible);
  }

  /** Flood control: throws 429 when this message call would exceed a limit; otherwise counts it. */
  #spend(state: ChatState, ctx: CallContext): void {
    if (!this.enforceLimits || !MESSAGE_METHODS.has(ctx.method)) return;
    const t = ctx.at;
    const chatTimes = state.sendTimes;
    while (chatTimes.length > 0 && (chatTimes[0] ?? 0) <= t - 60_000) chatTimes.shift();
    const global = this.#globalSendTimes;
    while (global.length > 0 && (global[0] ?? 0) <= t - 1000) global.shift();
    const waits: number[] = [];
    const last = chatTimes[chatTimes.length - 1];
    if (last !== undefined && t - last < 1000) waits.push(last + 1000 - t);
    if (state.chat.type !== "private" && chatTimes.length >= 20) {
      waits.push((chatTimes[chatTimes.length - 20] ?? t) + 60_000 - t);
    }
    if (global.length >= 30) waits.push((global[global.length - 30] ?? t) + 1000 - t);
    if (waits.length > 0) {
      const retryAfter = Math.max(1, Math.ceil(Math.max(...waits) / 1000));
      throw new ApiError(429, `Too Many Requests: retry after ${retryAfter}`, retryAfter);
    }
    chatTimes.push(t);
    global.push(t);
  }

  #member(state: ChatState, userId: number): Record<string, unknown> {
    const user = userId === this.bot.id ? this.bot : this.#users.get(userId);
    if (!user) throw bad("user not found");
    if (state.owner === userId) return { status: "creator", user, is_anonymous: false };
    if (state.admins.includes(userId)) {
      return {
        status: "administrator",
        user,
        can_be_edited: false,
        is_anonymous: false,
        can_manage_chat: true,
        can_delete_messages: true,
        can_manage_video_chats: true,
        can_restrict_members: true,
        can_promote_members: false,
        can_change_info: true,
        can_invite_users: true,
        can_post_stories: false,
        can_edit_stories: false,
        can_delete_stories: false,
        can_pin_messages: true,
        ...(state.chat.type === "supergroup" ? { can_manage_topics: true } : {}),
      };
    }
    return { status: "member", user };
  }

  #commandKeyOf(p: Params): string {
    const scope = (p.scope ?? { type: "default" }) as Record<string, unknown>;
    const validScopes = [
      "default",
      "all_private_chats",
      "all_group_chats",
      "all_chat_administrators",
      "chat",
      "chat_administrators",
      "chat_member",
    ];
    if (typeof scope !== "object" || !validScopes.includes(String(scope.type))) throw bad("BOT_COMMAND_SCOPE_INVALID");
    const lang = optString(p.language_code) ?? "";
    if (lang !== "" && !/^[a-z]{2}$/.test(lang)) throw bad("LANG_CODE_INVALID");
    return commandKey(scope, lang);
  }

  #incoming(
    chat: FakeChat | number,
    from: FakeUser,
    content: Partial<TgMessage>,
    replyTo: number | undefined,
    visibleInGroup: boolean,
  ): TgUpdate {
    const state = this.#state(chatIdOf(chat));
    this.#users.set(from.id, from);
    const message: TgMessage = {
      message_id: state.nextMessageId++,
      from,
      chat: state.chat,
      date: Math.floor(Date.now() / 1000),
      ...content,
    };
    if (replyTo !== undefined) {
      const target = state.messages.get(replyTo);
      if (!target || target.deleted) throw new Error(`replyTo: no message ${replyTo} in chat ${state.chat.id}`);
      message.reply_to_message = withoutReply(target.message);
    }
    state.messages.set(message.message_id, { message, fromBot: false, deleted: false, edits: 0, history: [] });
    const update: TgUpdate = { update_id: this.#nextUpdateId++, message: structuredClone(message) };
    if (!this.privacyMode || state.chat.type === "private" || visibleInGroup) this.#enqueue(update);
    return update;
  }

  #isBotMessage(chat: FakeChat | number, messageId: number): boolean {
    return this.#chats.get(chatIdOf(chat))?.messages.get(messageId)?.fromBot === true;
  }

  #replyVisible(chat: FakeChat | number, replyTo: number | undefined): boolean {
    return replyTo !== undefined && this.#isBotMessage(chat, replyTo);
  }

  #enqueue(update: TgUpdate): void {
    if (this.#closed) throw new Error("fake telegram server is closed");
    this.#pending.push(update);
    this.#poller?.wake();
    if (this.#webhook) void this.#pump();
  }

  #dropDisallowed(allowed: string[] | undefined): void {
    if (!allowed) return;
    for (let i = this.#pending.length - 1; i >= 0; i--) {
      const u = this.#pending[i];
      if (u && !allowed.includes(updateType(u))) this.#pending.splice(i, 1);
    }
  }

  /** Deliver pending updates to the webhook one by one, retrying failures with backoff. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      let delay = 50;
      while (!this.#closed && this.#webhook && this.#pending.length > 0) {
        const hook = this.#webhook;
        this.#dropDisallowed(hook.allowedUpdates);
        const update = this.#pending[0];
        if (!update) break;
        try {
          const { status, body } = await this.#post(hook, update);
          if (status < 200 || status >= 300) throw new Error(`Wrong response from the webhook: ${status}`);
          if (this.#pending[0] === update) this.#pending.shift();
          delay = 50;
          await this.#webhookReply(body);
        } catch (err) {
          if (this.#closed) break;
          hook.lastErrorDate = Math.floor(Date.now() / 1000);
          hook.lastErrorMessage = (err as Error).message;
          await this.#sleep(delay);
          delay = Math.min(delay * 2, 1000);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #post(hook: Webhook, update: TgUpdate): Promise<{ status: number; body: Buffer }> {
    const target = new URL(hook.url);
    // telegraf's launch({ webhook }) always registers https://; on loopback deliver over plain HTTP.
    if (target.protocol === "https:" && ["127.0.0.1", "localhost", "[::1]"].includes(target.hostname)) {
      target.protocol = "http:";
    }
    if (target.protocol !== "http:") return Promise.reject(new Error("the fake delivers webhooks over http only"));
    const payload = Buffer.from(JSON.stringify(update));
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": payload.length,
    };
    if (hook.secretToken !== undefined) headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secretToken;
    return new Promise((resolve, reject) => {
      const req = httpRequest(target, { method: "POST", headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      this.#webhookRequests.add(req);
      req.setTimeout(30_000, () => req.destroy(new Error("Connection timed out")));
      req.on("error", reject);
      req.on("close", () => this.#webhookRequests.delete(req));
      req.end(payload);
    });
  }

  /** A webhook response may carry one method call, as with Telegram. */
  async #webhookReply(body: Buffer): Promise<void> {
    if (body.length === 0) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return;
    }
    if (!parsed || typeof parsed !== "object") return;
    const { method, ...params } = parsed as Params;
    if (typeof method !== "string") return;
    await this.#dispatch(method, params, new Map(), this.#clock(), undefined, "webhook-reply");
  }

  /** A timer that close() cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#timers.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.#timers.add(entry);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Free helpers

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(code: number, description: string, retryAfter?: number): Record<string, unknown> {
  const body: Record<string, unknown> = { ok: false, error_code: code, description };
  if (retryAfter !== undefined) body.parameters = { retry_after: retryAfter };
  return body;
}

function chatIdOf(chat: FakeChat | number): number {
  return typeof chat === "number" ? chat : chat.id;
}

function commandKey(scope: Record<string, unknown>, lang: string): string {
  return `${String(scope.type)}:${String(scope.chat_id ?? "")}:${String(scope.user_id ?? "")}|${lang}`;
}

function updateType(update: TgUpdate): string {
  return Object.keys(update).find((k) => k !== "update_id") ?? "";
}

function withoutReply(message: TgMessage): TgMessage {
  const copy = structuredClone(message);
  delete copy.reply_to_message;
  return copy;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function toInt(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value.trim())) return Number(value);
  return undefined;
}

function optString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

function requireString(value: unknown, name: string): string {
  const s = optString(value);
  if (s === undefined) throw bad(name === "text" ? "message text is empty" : `parameter "${name}" is required`);
  return s;
}

/** Form values are strings: numbers become numbers, booleans booleans, JSON fields objects. */
function normalizeParams(raw: Params): Params {
  const out: Params = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") {
      out[key] = value;
      continue;
    }
    if (JSON_PARAMS.has(key)) {
      try {
        out[key] = JSON.parse(value);
      } catch {
        throw bad(`can't parse ${key} JSON object`);
      }
    } else if ((key === "chat_id" || key === "user_id") && /^-?\d+$/.test(value)) {
      out[key] = Number(value);
    } else if (BOOLEAN_PARAMS.has(key) && (value === "true" || value === "false")) {
      out[key] = value === "true";
    } else {
      out[key] = value;
    }
  }
  return out;
}

function describeParams(params: Params, files: Files): Params {
  const out: Params = { ...params };
  for (const [name, file] of files) out[name] = { file_name: file.filename, size: file.bytes.length };
  return out;
}

async function parseBody(req: IncomingMessage): Promise<{ params: Params; files: Files }> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const files: Files = new Map();
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  if (body.length === 0) return { params: {}, files };
  if (type.startsWith("application/json")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      throw new Error("can't parse JSON body");
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("JSON body must be an object");
    return { params: parsed as Params, files };
  }
  if (type.startsWith("application/x-www-form-urlencoded")) {
    return { params: Object.fromEntries(new URLSearchParams(body.toString("utf8"))), files };
  }
  if (type.startsWith("multipart/form-data")) {
    const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(req.headers["content-type"] ?? "");
    const b = boundary?.[1] ?? boundary?.[2];
    if (!b) throw new Error("multipart body without boundary");
    return parseMultipart(body, b.trim());
  }
  throw new Error(`unsupported content type ${type}`);
}

/** A small multipart/form-data parser (RFC 7578), enough for what HTTP clients send. */
export function parseMultipart(body: Buffer, boundary: string): { params: Params; files: Files } {
  const params: Params = {};
  const files: Files = new Map();
  const delimiter = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new Error("multipart boundary not found");
  pos += delimiter.length;
  for (;;) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break; // closing "--"
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) pos += 2;
    const headerEnd = body.indexOf("\r\n\r\n", pos);
    if (headerEnd < 0) throw new Error("malformed multipart part headers");
    const headers = new Map<string, string>();
    for (const line of body.subarray(pos, headerEnd).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const end = body.indexOf(next, headerEnd + 4);
    if (end < 0) throw new Error("multipart part not terminated");
    const content = body.subarray(headerEnd + 4, end);
    const disposition = headers.get("content-disposition") ?? "";
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    if (name !== undefined) {
      if (filename !== undefined) {
        const file: { filename: string; bytes: Buffer; contentType?: string } = {
          filename,
          bytes: Buffer.from(content),
        };
        const contentType = headers.get("content-type");
        if (contentType !== undefined) file.contentType = contentType;
        files.set(name, file);
      } else {
        params[name] = content.toString("utf8");
      }
    }
    pos = end + next.length;
  }
  return { params, files };
}

function validateMarkup(raw: unknown, forEdit: boolean): ReplyMarkup | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) throw bad("can't parse reply keyboard markup JSON object");
  const markup = raw as ReplyMarkup;
  if (markup.inline_keyboard !== undefined) {
    const rows: unknown = markup.inline_keyboard;
    if (!Array.isArray(rows) || rows.some((row) => !Array.isArray(row)))
      throw bad('field "inline_keyboard" must be an Array of Arrays');
    for (const row of rows as unknown[][]) {
      for (const b of row) {
        const button = (b ?? {}) as InlineButton;
        if (typeof button.text !== "string" || button.text.length === 0) throw bad("BUTTON_TEXT_INVALID");
        const actions = [
          "callback_data",
          "url",
          "switch_inline_query",
          "switch_inline_query_current_chat",
          "switch_inline_query_chosen_chat",
          "copy_text",
          "web_app",
          "login_url",
          "pay",
          "callback_game",
        ].filter((k) => button[k] !== undefined);
        if (actions.length === 0) throw bad("text buttons are unallowed in the inline keyboard");
        if (button.callback_data !== undefined) {
          const data = button.callback_data;
          const bytes = typeof data === "string" ? Buffer.byteLength(data, "utf8") : 0;
          if (bytes < 1 || bytes > 64) throw bad("BUTTON_DATA_INVALID");
        }
        if (button.url !== undefined) {
          try {
            new URL(String(button.url));
          } catch {
            throw bad("BUTTON_URL_INVALID");
          }
        }
      }
    }
    return { inline_keyboard: structuredClone(rows as InlineButton[][]) };
  }
  if (forEdit) throw bad("inline keyboard expected");
  if (markup.force_reply !== undefined) {
    if (markup.force_reply !== true) throw bad("can't parse reply keyboard markup JSON object");
    const placeholder = markup.input_field_placeholder;
    if (placeholder !== undefined && (typeof placeholder !== "string" || placeholder.length > 64)) {
      throw bad("can't parse reply keyboard markup JSON object");
    }
    return structuredClone(markup);
  }
  if (markup.keyboard !== undefined || markup.remove_keyboard !== undefined) return structuredClone(markup);
  throw bad("can't parse reply keyboard markup JSON object");
}

// ---------------------------------------------------------------------------------------------
// Formatting: what Telegram shows for a text with a parse_mode, and where it refuses.

const cantParse = (detail: string) => bad(`can't parse entities: ${detail}`);

export function parseText(
  source: string,
  parseMode: string | undefined,
  explicitEntities?: unknown,
): { text: string; entities: TgEntity[] } {
  if (parseMode === undefined || parseMode === "") {
    return { text: source, entities: Array.isArray(explicitEntities) ? (explicitEntities as TgEntity[]) : [] };
  }
  switch (parseMode.toLowerCase()) {
    case "html":
      return parseHtml(source);
    case "markdownv2":
      return parseMarkdownV2(source);
    case "markdown":
      return parseLegacyMarkdown(source);
    default:
      throw bad(`unsupported parse_mode`);
  }
}

const HTML_TAGS: Record<string, string> = {
  b: "bold",
  strong: "bold",
  i: "italic",
  em: "italic",
  u: "underline",
  ins: "underline",
  s: "strikethrough",
  strike: "strikethrough",
  del: "strikethrough",
  "tg-spoiler": "spoiler",
  span: "spoiler",
  a: "text_link",
  code: "code",
  pre: "pre",
  blockquote: "blockquote",
  "tg-emoji": "custom_emoji",
};

function parseHtml(source: string): { text: string; entities: TgEntity[] } {
  let text = "";
  const entities: TgEntity[] = [];
  const stack: { name: string; offset: number; attrs: Map<string, string> }[] = [];
  const byteOffset = (i: number) => Buffer.byteLength(source.slice(0, i), "utf8");
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === "<") {
      const close = source.indexOf(">", i);
      if (source[i + 1] === "/") {
        if (close < 0) throw cantParse(`Unclosed end tag at byte offset ${byteOffset(i)}`);
        const name = source
          .slice(i + 2, close)
          .trim()
          .toLowerCase();
        const open = stack.pop();
        if (!open || (name !== "" && name !== open.name))
          throw cantParse(`Unexpected end tag at byte offset ${byteOffset(i)}`);
        const length = text.length - open.offset;
        if (length > 0) entities.push(htmlEntity(open.name, open.offset, length, open.attrs));
        i = close + 1;
        continue;
      }
      if (close < 0) throw cantParse(`Unclosed start tag at byte offset ${byteOffset(i)}`);
      const inner = source.slice(i + 1, close);
      const name = (/^[^\s/>]+/.exec(inner)?.[0] ?? "").toLowerCase();
      if (!(name in HTML_TAGS)) throw cantParse(`Unsupported start tag "${name}" at byte offset ${byteOffset(i)}`);
      const attrs = new Map<string, string>();
      for (const m of inner.slice(name.length).matchAll(/([\w-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+)))?/g)) {
        attrs.set((m[1] ?? "").toLowerCase(), decodeHtml(m[2] ?? m[3] ?? m[4] ?? ""));
      }
      if (name === "span" && attrs.get("class") !== "tg-spoiler") {
        throw cantParse(`Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(i)}`);
      }
      if (name === "tg-emoji" && !attrs.has("emoji-id")) {
        throw cantParse(`Tag "tg-emoji" must have attribute "emoji-id" at byte offset ${byteOffset(i)}`);
      }
      stack.push({ name, offset: text.length, attrs });
      i = close + 1;
      continue;
    }
    if (c === "&") {
      const m = /^&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-f]{1,6});/i.exec(source.slice(i, i + 12));
      if (m) {
        text += decodeHtml(m[0]);
        i += m[0].length;
        continue;
      }
    }
    text += c;
    i++;
  }
  const open = stack.pop();
  if (open) throw cantParse(`Can't find end tag corresponding to start tag "${open.name}"`);
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

function htmlEntity(tag: string, offset: number, length: number, attrs: Map<string, string>): TgEntity {
  const entity: TgEntity = { type: HTML_TAGS[tag] ?? "bold", offset, length };
  if (tag === "a") {
    const href = attrs.get("href");
    if (href !== undefined) entity.url = href;
  }
  if (tag === "blockquote" && attrs.has("expandable")) entity.type = "expandable_blockquote";
  if (tag === "tg-emoji") entity.custom_emoji_id = attrs.get("emoji-id") ?? "";
  if (tag === "pre") {
    const lang = attrs.get("language");
    if (lang !== undefined) entity.language = lang;
  }
  return entity;
}

function decodeHtml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-f]{1,6});/gi, (_, e: string) => {
    const lower = e.toLowerCase();
    if (lower === "lt") return "<";
    if (lower === "gt") return ">";
    if (lower === "amp") return "&";
    if (lower === "quot") return '"';
    const code = lower.startsWith("#x") ? Number.parseInt(lower.slice(2), 16) : Number.parseInt(lower.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
  });
}

const MDV2_MARKERS: Record<string, string> = {
  "*": "bold",
  _: "italic",
  __: "underline",
  "~": "strikethrough",
  "||": "spoiler",
};

/** MarkdownV2: escapes, bold/italic/underline/strike/spoiler, code, pre, links; reserved characters must be escaped. */
function parseMarkdownV2(source: string): { text: string; entities: TgEntity[] } {
  let text = "";
  const entities: TgEntity[] = [];
  const open: { marker: string; offset: number; at: number }[] = [];
  const byteOffset = (i: number) => Buffer.byteLength(source.slice(0, i), "utf8");
  let linkStart: { offset: number; at: number } | undefined;
  let i = 0;
  while (i < source.length) {
    const c = source[i] ?? "";
    if (c === "\\") {
      const n = source[i + 1];
      if (n === undefined) throw cantParse(`Character '\\' is reserved and must be escaped with the preceding '\\'`);
      text += n;
      i += 2;
      continue;
    }
    if (source.startsWith("```", i)) {
      const end = source.indexOf("```", i + 3);
      if (end < 0) throw cantParse(`Can't find end of Pre entity at byte offset ${byteOffset(i)}`);
      let body = source.slice(i + 3, end);
      const nl = body.indexOf("\n");
      if (nl >= 0 && /^[\w+-]*$/.test(body.slice(0, nl))) body = body.slice(nl + 1);
      const plain = body.replace(/\\([`\\])/g, "$1");
      if (plain.length > 0) entities.push({ type: "pre", offset: text.length, length: plain.length });
      text += plain;
      i = end + 3;
      continue;
    }
    if (c === "`") {
      let end = i + 1;
      while (end < source.length && source[end] !== "`") end += source[end] === "\\" ? 2 : 1;
      if (end >= source.length) throw cantParse(`Can't find end of Code entity at byte offset ${byteOffset(i)}`);
      const plain = source.slice(i + 1, end).replace(/\\([`\\])/g, "$1");
      if (plain.length > 0) entities.push({ type: "code", offset: text.length, length: plain.length });
      text += plain;
      i = end + 1;
      continue;
    }
    const marker = source.startsWith("__", i)
      ? "__"
      : source.startsWith("||", i)
        ? "||"
        : c in MDV2_MARKERS
          ? c
          : undefined;
    if (marker) {
      const top = open.findIndex((o) => o.marker === marker);
      if (top >= 0) {
        const [o] = open.splice(top, 1);
        if (o && text.length > o.offset) {
          entities.push({ type: MDV2_MARKERS[marker] ?? "bold", offset: o.offset, length: text.length - o.offset });
        }
      } else {
        open.push({ marker, offset: text.length, at: i });
      }
      i += marker.length;
      continue;
    }
    if (c === "[" && !linkStart) {
      linkStart = { offset: text.length, at: i };
      i++;
      continue;
    }
    if (c === "]" && linkStart) {
      if (source[i + 1] !== "(")
        throw cantParse(`Character ']' is reserved and must be escaped with the preceding '\\'`);
      const end = source.indexOf(")", i + 2);
      if (end < 0) throw cantParse(`Can't find end of a URL at byte offset ${byteOffset(i)}`);
      const url = source.slice(i + 2, end).replace(/\\([)\\])/g, "$1");
      if (text.length > linkStart.offset) {
        entities.push({ type: "text_link", offset: linkStart.offset, length: text.length - linkStart.offset, url });
      }
      linkStart = undefined;
      i = end + 1;
      continue;
    }
    if (c === ">" && (i === 0 || source[i - 1] === "\n")) {
      i++;
      continue;
    }
    if ("_*[]()~`>#+-=|{}.!".includes(c)) {
      throw cantParse(`Character '${c}' is reserved and must be escaped with the preceding '\\'`);
    }
    text += c;
    i++;
  }
  const unclosed = open[0];
  if (unclosed) {
    const name = { "*": "Bold", _: "Italic", __: "Underline", "~": "Strikethrough", "||": "Spoiler" }[unclosed.marker];
    throw cantParse(`Can't find end of ${name ?? "the"} entity at byte offset ${byteOffset(unclosed.at)}`);
  }
  if (linkStart) throw cantParse(`Can't find end of TextUrl entity at byte offset ${byteOffset(linkStart.at)}`);
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

/** Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no escaping rules beyond pairing. */
function parseLegacyMarkdown(source: string): { text: string; entities: TgEntity[] } {
  let text = "";
  const entities: TgEntity[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] ?? "";
    const fence = source.startsWith("```", i) ? "```" : c === "`" || c === "*" || c === "_" ? c : undefined;
    if (fence) {
      const end = source.indexOf(fence, i + fence.length);
      if (end < 0) {
        throw cantParse(
          `Can't find end of the entity starting at byte offset ${Buffer.byteLength(source.slice(0, i), "utf8")}`,
        );
      }
      const inner = source.slice(i + fence.length, end);
      const type = { "```": "pre", "`": "code", "*": "bold", _: "italic" }[fence] ?? "bold";
      if (inner.length > 0) entities.push({ type, offset: text.length, length: inner.length });
      text += inner;
      i = end + fence.length;
      continue;
    }
    const link = c === "[" ? /^\[([^\]]*)\]\(([^)]*)\)/.exec(source.slice(i)) : null;
    if (link) {
      const label = link[1] ?? "";
      if (label.length > 0)
        entities.push({ type: "text_link", offset: text.length, length: label.length, url: link[2] ?? "" });
      text += label;
      i += link[0].length;
      continue;
    }
    text += c;
    i++;
  }
  return { text, entities };
}
