/**
 * A fake Discord (REST API v10 + gateway WebSocket) over real HTTP, so the REAL discord.js client
 * runs unchanged in tests and benches:
 *
 *   const server = await FakeDiscordServer.start();
 *   const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: server.apiRoot } });
 *   await client.login(server.token);
 *
 * One port serves REST under `/api/v10/...` and the gateway (WebSocket upgrade on `/gateway`);
 * discord.js learns the gateway address from `GET /gateway/bot`. The gateway speaks JSON without
 * transport compression: discord.js 14 asks for `zlib-stream` only when the optional `zlib-sync`
 * package is installed (it is not here). A connection asking for `compress=...` or an encoding other
 * than `json` is closed with 4002 (decode error), so a test fails loudly instead of hanging.
 *
 * Gateway: HELLO (op 10), IDENTIFY (op 2) -> READY + GUILD_CREATE per guild, HEARTBEAT (op 1) ->
 * HEARTBEAT_ACK (op 11), RESUME (op 6) replays missed dispatches then RESUMED (unknown session ->
 * INVALID_SESSION op 9). Dispatches: GUILD_CREATE, CHANNEL_CREATE/UPDATE, THREAD_CREATE/UPDATE,
 * GUILD_MEMBER_ADD, INTERACTION_CREATE (and MESSAGE_* only when the client asked for GuildMessages).
 * Sharding as Discord does it: IDENTIFY's `shard: [shard_id, num_shards]` (default [0, 1]; a bad
 * pair is closed with 4010 Invalid shard), and a guild's events go to the shard
 * `(guild_id >> 22) % num_shards` (`shardOf`). `GET /gateway/bot` recommends `recommendedShards`
 * and reports a `session_start_limit` whose `remaining` drops with each IDENTIFY
 * (`maxConcurrency`: shards that may identify at once, 1 by default as for most bots).
 *
 * REST: see the route table in `routes()`. Errors use Discord's shapes (`{message, code}` and
 * `{code: 50035, errors, message: "Invalid Form Body"}`); 204 responses carry no content-type.
 * A reply (`message_reference`) must name a live message in the same channel, else 50035, unless
 * `fail_if_not_exists` is false (then it goes out as a plain message); `FakeMessage.reference` records it.
 * Fault injection: `failNext(route, { retryAfter })` answers one 429; `options.rateLimits` (or
 * `setRateLimit`) enforces fixed-window buckets per route and major parameter (channel, guild or
 * webhook). Interaction callbacks after `interactionDeadlineMs` (default 3000, like Discord) get
 * 404 10062 "Unknown interaction".
 *
 * Known differences from Discord: no global 50 req/s limit; `retry-after` is sent as given (may be
 * fractional, Discord rounds up); no 15-minute interaction token expiry; posting to an archived
 * thread always fails with 50083 (Discord auto-unarchives for members who can send); no
 * Components V2 validation; permission checks only for sending, attaching files, creating threads,
 * deleting others' messages, reading a channel (View Channel) and modifying one (Manage Channels;
 * for threads Manage Threads, the creator, or Send Messages in Threads to unarchive); no 4011
 * "Sharding required" (any shard count is accepted); direct messages are not modelled.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { PermissionFlagsBits } from "discord.js";
import { type WebSocket, WebSocketServer } from "ws";

// ---------------------------------------------------------------------------------------------
// Model

export type PermissionName = keyof typeof PermissionFlagsBits;
export type Ref = string | { id: string };

export interface FakeUser {
  id: string;
  username: string;
  globalName: string | null;
  bot: boolean;
}

export interface FakeRole {
  id: string;
  name: string;
  permissions: bigint;
  position: number;
  managed: boolean;
}

export interface FakeMember {
  userId: string;
  roles: string[];
  joinedAt: string;
}

export interface FakeGuild {
  id: string;
  name: string;
  ownerId: string;
  roles: FakeRole[];
  members: Map<string, FakeMember>;
}

export interface PermissionOverwrite {
  id: string;
  /** 0 role, 1 member */
  type: 0 | 1;
  allow: bigint;
  deny: bigint;
}

export interface FakeChannel {
  id: string;
  /** 0 text, 11 public thread, 12 private thread */
  type: number;
  guildId: string;
  name: string;
  nsfw: boolean;
  parentId: string | null;
  position: number;
  overwrites: PermissionOverwrite[];
  /** threads only */
  ownerId?: string;
  archived: boolean;
  locked: boolean;
  autoArchiveDuration: number;
  archiveTimestamp: string;
  createdAt: string;
  invitable: boolean;
  messageCount: number;
  lastMessageId: string | null;
}

export interface FakeAttachment {
  id: string;
  filename: string;
  size: number;
  contentType: string | undefined;
  description: string | undefined;
  bytes: Buffer;
}

export interface FakeMessage {
  id: string;
  channelId: string;
  guildId: string | undefined;
  authorId: string;
  content: string;
  embeds: unknown[];
  components: unknown[];
  attachments: FakeAttachment[];
  flags: number;
  createdAt: number;
  editedAt: number | undefined;
  /** Number of successful edits. */
  edits: number;
  /** Every content the message had, first to current. */
  contentHistory: string[];
  deleted: boolean;
  /** Set for interaction responses and followups. */
  interactionId: string | undefined;
  ephemeral: boolean;
  /** Discord message type: 0 default, 20 chat input command response, 19 reply. */
  type: number;
  /** The message this one replies to (`message_reference` of a reply), in the same channel. */
  reference: { messageId: string; channelId: string } | undefined;
}

export interface RestCall {
  method: string;
  /** Decoded path after `/api/v10`, e.g. `/channels/1/messages`. */
  path: string;
  /** Route template, e.g. `/channels/:channel/messages/:message` (`?` when unknown). */
  route: string;
  query: Record<string, string>;
  body: unknown;
  files: { name: string; size: number }[];
  at: number;
  status: number;
}

export interface InteractionCallback {
  /** 4 reply, 5 defer reply, 6 deferred update, 7 update message, 8 autocomplete result, 9 modal */
  type: number;
  data: Record<string, unknown> | undefined;
  files: { name: string; bytes: Buffer }[];
  at: number;
  respondedWithinMs: number;
}

export interface InteractionHandle {
  id: string;
  token: string;
  /** The first callback the bot sent (rejects after `timeoutMs`, default 5000). */
  response(timeoutMs?: number): Promise<InteractionCallback>;
  /** Milliseconds from dispatch to the first callback, undefined before it. */
  readonly respondedWithinMs: number | undefined;
  /** Accepted callbacks (a second acknowledgement is refused with 40060 and not recorded). */
  callbacks(): InteractionCallback[];
  /** The response message (`@original`), if the callback created or targeted one. */
  original(): FakeMessage | undefined;
  /** Messages created through `POST /webhooks/{app}/{token}`. */
  followups(): FakeMessage[];
}

export interface CommandOption {
  name: string;
  type: number;
  value?: string | number | boolean;
  focused?: boolean;
  options?: CommandOption[];
}

export interface RateLimitRule {
  /** `METHOD /route/template` or `/route/template` (all methods). */
  route: string;
  limit: number;
  windowMs: number;
}

export interface FakeDiscordOptions {
  token?: string;
  /** Gateway heartbeat interval announced in HELLO (default 41250 ms). */
  heartbeatIntervalMs?: number;
  /** Interaction callbacks later than this get 404 10062 (default 3000; Infinity disables). */
  interactionDeadlineMs?: number;
  rateLimits?: RateLimitRule[];
  /** Shards `GET /gateway/bot` recommends (default 1). */
  recommendedShards?: number;
  /** `session_start_limit.max_concurrency`: shards that may IDENTIFY at once (default 1). */
  maxConcurrency?: number;
}

interface InteractionRecord {
  id: string;
  token: string;
  type: number;
  guildId: string;
  channelId: string;
  userId: string;
  dispatchedAt: number;
  callbacks: InteractionCallback[];
  originalMessageId: string | undefined;
  /** For component interactions: the message the component is on. */
  sourceMessageId: string | undefined;
  followupIds: string[];
  waiters: ((cb: InteractionCallback) => void)[];
}

interface Session {
  id: string;
  seq: number;
  intents: number;
  /** [shard_id, num_shards] from IDENTIFY. */
  shard: [number, number];
  sent: { s: number; payload: string }[];
  socket: WebSocket | undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const DISCORD_EPOCH = 1420070400000n;
let lastSnowflake = 0n;
/** A fresh, increasing snowflake string. */
export function snowflake(): string {
  let next = (BigInt(Date.now()) - DISCORD_EPOCH) << 22n;
  if (next <= lastSnowflake) next = lastSnowflake + 1n;
  lastSnowflake = next;
  return next.toString();
}

/** The shard that receives a guild's events: `(guild_id >> 22) % num_shards`, as Discord routes them. */
export function shardOf(guildId: string, shardCount: number): number {
  return Number((BigInt(guildId) >> 22n) % BigInt(shardCount));
}

/** A fresh, increasing snowflake whose guild would be routed to `shard` of `count` (its timestamp moved up to count - 1 ms). */
function snowflakeOnShard(shard: number, count: number): string {
  let next = snowflake();
  while (shardOf(next, count) !== shard) next = snowflake();
  return next;
}

function idOf(ref: Ref): string {
  return typeof ref === "string" ? ref : ref.id;
}

const ALL_PERMISSIONS = Object.values(PermissionFlagsBits).reduce((a, b) => a | b, 0n);

const DEFAULT_EVERYONE = [
  "ViewChannel",
  "SendMessages",
  "SendMessagesInThreads",
  "CreatePublicThreads",
  "CreatePrivateThreads",
  "EmbedLinks",
  "AttachFiles",
  "ReadMessageHistory",
  "AddReactions",
  "UseApplicationCommands",
  "UseExternalEmojis",
  "ChangeNickname",
  "CreateInstantInvite",
] as const satisfies readonly PermissionName[];

function bits(names: readonly PermissionName[]): bigint {
  return names.reduce((acc, n) => acc | PermissionFlagsBits[n], 0n);
}

type Json = Record<string, unknown>;

function isObj(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Json,
  ) {
    super(String(body.message));
  }
}

function notFound(what: string, code: number): HttpError {
  return new HttpError(404, { message: `Unknown ${what}`, code });
}

function missingPermissions(): HttpError {
  return new HttpError(403, { message: "Missing Permissions", code: 50013 });
}

type ErrTree = { [key: string]: ErrTree | { code: string; message: string }[] };

/** Collects Discord's nested `errors` object for 50035 Invalid Form Body. */
class FormErrors {
  readonly tree: ErrTree = {};
  count = 0;
  add(path: (string | number)[], code: string, message: string): void {
    this.count++;
    let node: ErrTree = this.tree;
    for (const key of path) {
      const k = String(key);
      const child = node[k];
      if (child === undefined || Array.isArray(child)) {
        const created: ErrTree = {};
        node[k] = created;
        node = created;
      } else {
        node = child;
      }
    }
    const list = node._errors;
    if (Array.isArray(list)) list.push({ code, message });
    else node._errors = [{ code, message }];
  }
  maxLength(path: (string | number)[], value: unknown, max: number): void {
    const len = typeof value === "string" || Array.isArray(value) ? value.length : 0;
    if (len > max) this.add(path, "BASE_TYPE_MAX_LENGTH", `Must be ${max} or fewer in length.`);
  }
  throwIfAny(): void {
    if (this.count > 0) throw new HttpError(400, { code: 50035, errors: this.tree, message: "Invalid Form Body" });
  }
}

function textLen(x: unknown): number {
  return typeof x === "string" ? x.length : 0;
}

function validateEmbeds(errors: FormErrors, embeds: unknown): void {
  if (!Array.isArray(embeds)) return;
  errors.maxLength(["embeds"], embeds, 10);
  let total = 0;
  embeds.forEach((embed, i) => {
    if (!isObj(embed)) return;
    errors.maxLength(["embeds", i, "title"], embed.title, 256);
    errors.maxLength(["embeds", i, "description"], embed.description, 4096);
    total += textLen(embed.title) + textLen(embed.description);
    const fields = Array.isArray(embed.fields) ? embed.fields : [];
    errors.maxLength(["embeds", i, "fields"], fields, 25);
    fields.forEach((f, j) => {
      if (!isObj(f)) return;
      errors.maxLength(["embeds", i, "fields", j, "name"], f.name, 256);
      errors.maxLength(["embeds", i, "fields", j, "value"], f.value, 1024);
      total += textLen(f.name) + textLen(f.value);
    });
    if (isObj(embed.footer)) {
      errors.maxLength(["embeds", i, "footer", "text"], embed.footer.text, 2048);
      total += textLen(embed.footer.text);
    }
    if (isObj(embed.author)) {
      errors.maxLength(["embeds", i, "author", "name"], embed.author.name, 256);
      total += textLen(embed.author.name);
    }
  });
  if (total > 6000) errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000");
}

function validateCustomId(errors: FormErrors, path: (string | number)[], customId: unknown): void {
  const len = textLen(customId);
  if (len < 1 || len > 100) errors.add(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
}

function validateComponents(errors: FormErrors, components: unknown): void {
  if (!Array.isArray(components)) return;
  errors.maxLength(["components"], components, 5);
  components.forEach((row, i) => {
    if (!isObj(row) || row.type !== 1 || !Array.isArray(row.components)) {
      errors.add(["components", i, "type"], "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).');
      return;
    }
    const inner = row.components;
    if (inner.length < 1)
      errors.add(["components", i, "components"], "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.");
    errors.maxLength(["components", i, "components"], inner, 5);
    const hasSelect = inner.some((c) => isObj(c) && typeof c.type === "number" && [3, 5, 6, 7, 8].includes(c.type));
    if (hasSelect && inner.length > 1) {
      errors.add(
        ["components", i, "components"],
        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        "The specified component exceeds the maximum width",
      );
    }
    inner.forEach((c, j) => {
      if (!isObj(c)) return;
      const path = ["components", i, "components", j];
      if (c.type === 2) {
        const style = c.style;
        if (style === 5) {
          if (typeof c.url !== "string") errors.add([...path, "url"], "BASE_TYPE_REQUIRED", "This field is required");
        } else if (style !== 6) {
          validateCustomId(errors, [...path, "custom_id"], c.custom_id);
        }
        errors.maxLength([...path, "label"], c.label, 80);
      } else if (typeof c.type === "number" && [3, 5, 6, 7, 8].includes(c.type)) {
        validateCustomId(errors, [...path, "custom_id"], c.custom_id);
        errors.maxLength([...path, "options"], c.options, 25);
        errors.maxLength([...path, "placeholder"], c.placeholder, 150);
      }
    });
  });
}

/** Validates a message create/edit body; `isCreate` also rejects empty messages. */
function validateMessage(body: Json, fileCount: number, isCreate: boolean): void {
  const errors = new FormErrors();
  errors.maxLength(["content"], body.content, 2000);
  validateEmbeds(errors, body.embeds);
  validateComponents(errors, body.components);
  if (isObj(body.poll)) {
    const poll = body.poll;
    if (isObj(poll.question)) errors.maxLength(["poll", "question", "text"], poll.question.text, 300);
    errors.maxLength(["poll", "answers"], poll.answers, 10);
  }
  errors.throwIfAny();
  if (isCreate) {
    const empty =
      textLen(body.content) === 0 &&
      !(Array.isArray(body.embeds) && body.embeds.length > 0) &&
      !(Array.isArray(body.components) && body.components.length > 0) &&
      !isObj(body.poll) &&
      !isObj(body.sticker_ids) &&
      fileCount === 0;
    if (empty) throw new HttpError(400, { message: "Cannot send an empty message", code: 50006 });
  }
}

function validateModal(data: Json): void {
  const errors = new FormErrors();
  errors.maxLength(["data", "title"], data.title, 45);
  validateCustomId(errors, ["data", "custom_id"], data.custom_id);
  const comps = Array.isArray(data.components) ? data.components : [];
  if (comps.length < 1) errors.add(["data", "components"], "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.");
  errors.maxLength(["data", "components"], comps, 5);
  errors.throwIfAny();
}

interface ParsedBody {
  json: unknown;
  files: { field: string; name: string; bytes: Buffer; contentType: string | undefined }[];
}

async function readBody(req: IncomingMessage): Promise<ParsedBody> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const type = req.headers["content-type"] ?? "";
  if (raw.length === 0) return { json: undefined, files: [] };
  if (type.startsWith("multipart/form-data")) {
    const form = await new Request("http://fake.local/", {
      method: "POST",
      headers: { "content-type": type },
      body: raw,
    }).formData();
    let json: unknown;
    const files: ParsedBody["files"] = [];
    for (const [field, value] of form.entries()) {
      if (typeof value === "string") {
        if (field === "payload_json") json = JSON.parse(value);
      } else {
        files.push({
          field,
          name: value.name,
          bytes: Buffer.from(await value.arrayBuffer()),
          contentType: value.type || undefined,
        });
      }
    }
    return { json, files };
  }
  if (type.startsWith("application/json")) return { json: JSON.parse(raw.toString("utf8")), files: [] };
  return { json: raw.toString("utf8"), files: [] };
}

interface Ctx {
  method: string;
  params: Record<string, string>;
  query: Record<string, string>;
  body: Json;
  /** The parsed body as sent (arrays included). */
  raw: unknown;
  files: ParsedBody["files"];
  authorized: boolean;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };
type Handler = (ctx: Ctx) => Reply | Promise<Reply>;

interface Route {
  method: string;
  template: string;
  segments: string[];
  auth: boolean;
  handler: Handler;
}

// ---------------------------------------------------------------------------------------------
// Server

export class FakeDiscordServer {
  readonly token: string;
  readonly applicationId: string;
  readonly bot: FakeUser;
  readonly calls: RestCall[] = [];
  /** Opcodes received from gateway clients, with arrival time. */
  readonly gatewayReceived: { op: number; at: number }[] = [];
  apiRoot = "";
  gatewayUrl = "";

  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<Socket>();
  private readonly users = new Map<string, FakeUser>();
  private readonly guilds = new Map<string, FakeGuild>();
  private readonly channels = new Map<string, FakeChannel>();
  private readonly store = new Map<string, FakeMessage>();
  /** Files users attached to slash commands (attachment options), served like message attachments. */
  private readonly uploads = new Map<string, FakeAttachment>();
  /** Attachment downloads served, by attachment id, for tests to count. */
  readonly downloads: string[] = [];
  private readonly globalCommands: Json[] = [];
  private readonly guildCommands = new Map<string, Json[]>();
  private readonly interactions = new Map<string, InteractionRecord>();
  private readonly byToken = new Map<string, InteractionRecord>();
  private readonly sessions = new Map<string, Session>();
  private readonly pendingFailures: {
    match: (call: RestCall) => boolean;
    retryAfter: number;
    global: boolean;
    remaining: number;
  }[] = [];
  private readonly rateLimits: RateLimitRule[];
  private readonly buckets = new Map<string, { count: number; resetAt: number }>();
  private readonly routeTable: Route[];
  private readonly heartbeatIntervalMs: number;
  private readonly interactionDeadlineMs: number;
  private readonly recommendedShards: number;
  private readonly maxConcurrency: number;
  /** IDENTIFYs left in `session_start_limit` (Discord's daily budget of 1000 for most bots). */
  private sessionStartsLeft = 1000;

  private constructor(options: FakeDiscordOptions) {
    this.bot = { id: snowflake(), username: "Inkloom", globalName: "Inkloom", bot: true };
    this.users.set(this.bot.id, this.bot);
    this.applicationId = this.bot.id;
    const secret = Buffer.from(String(Math.random())).toString("base64url");
    this.token = options.token ?? `${Buffer.from(this.bot.id).toString("base64url")}.fake.${secret}`;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 41_250;
    this.interactionDeadlineMs = options.interactionDeadlineMs ?? 3000;
    this.recommendedShards = Math.max(1, options.recommendedShards ?? 1);
    this.maxConcurrency = Math.max(1, options.maxConcurrency ?? 1);
    this.rateLimits = [...(options.rateLimits ?? [])];
    this.routeTable = this.routes();
    this.http = createServer((req, res) => {
      void this.handle(req, res);
    });
    this.http.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://fake.local");
      if (!url.pathname.startsWith("/gateway")) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onGatewayConnection(ws, url));
    });
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscordServer> {
    const server = new FakeDiscordServer(options);
    await new Promise<void>((resolve) => server.http.listen(0, "127.0.0.1", resolve));
    const { port } = server.http.address() as AddressInfo;
    server.apiRoot = `http://127.0.0.1:${port}/api`;
    server.gatewayUrl = `ws://127.0.0.1:${port}/gateway`;
    return server;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  // -------------------------------------------------------------------------------------------
  // Test driver: model

  user(opts: { username?: string; globalName?: string; bot?: boolean } = {}): FakeUser {
    const id = snowflake();
    const user: FakeUser = {
      id,
      username: opts.username ?? `reader${this.users.size}`,
      globalName: opts.globalName ?? null,
      bot: opts.bot ?? false,
    };
    this.users.set(id, user);
    return user;
  }

  /**
   * A guild with an @everyone role (id = guild id), an owner and the bot as a member.
   * `shard: [id, count]` picks a guild id that Discord would route to that shard.
   */
  guild(opts: { name?: string; owner?: Ref; everyonePermissions?: bigint; shard?: [number, number] } = {}): FakeGuild {
    const id = opts.shard === undefined ? snowflake() : snowflakeOnShard(opts.shard[0], opts.shard[1]);
    const ownerId = opts.owner ? idOf(opts.owner) : this.user({ username: "owner" }).id;
    const everyone: FakeRole = {
      id,
      name: "@everyone",
      permissions: opts.everyonePermissions ?? bits(DEFAULT_EVERYONE),
      position: 0,
      managed: false,
    };
    const botRole: FakeRole = {
      id: snowflake(),
      name: "Inkloom",
      permissions: bits([...DEFAULT_EVERYONE, "ManageMessages", "ManageThreads"]),
      position: 1,
      managed: true,
    };
    const guild: FakeGuild = {
      id,
      name: opts.name ?? `Guild ${this.guilds.size + 1}`,
      ownerId,
      roles: [everyone, botRole],
      members: new Map(),
    };
    this.guilds.set(id, guild);
    const now = new Date().toISOString();
    guild.members.set(ownerId, { userId: ownerId, roles: [], joinedAt: now });
    guild.members.set(this.bot.id, { userId: this.bot.id, roles: [botRole.id], joinedAt: now });
    this.dispatchGuild("GUILD_CREATE", this.guildCreatePayload(guild));
    return guild;
  }

  role(guild: Ref, opts: { name?: string; permissions?: readonly PermissionName[] | bigint } = {}): FakeRole {
    const g = this.mustGuild(idOf(guild));
    const perms = opts.permissions;
    const role: FakeRole = {
      id: snowflake(),
      name: opts.name ?? `role${g.roles.length}`,
      permissions: typeof perms === "bigint" ? perms : bits(perms ?? []),
      position: g.roles.length,
      managed: false,
    };
    g.roles.push(role);
    this.dispatchGuild("GUILD_ROLE_CREATE", { guild_id: g.id, role: this.roleApi(role) });
    return role;
  }

  textChannel(
    guild: Ref,
    opts: { name?: string; nsfw?: boolean; overwrites?: PermissionOverwrite[] } = {},
  ): FakeChannel {
    const g = this.mustGuild(idOf(guild));
    const now = new Date().toISOString();
    const channel: FakeChannel = {
      id: snowflake(),
      type: 0,
      guildId: g.id,
      name: opts.name ?? `chapter-${this.channels.size + 1}`,
      nsfw: opts.nsfw ?? false,
      parentId: null,
      position: this.channels.size,
      overwrites: [...(opts.overwrites ?? [])],
      archived: false,
      locked: false,
      autoArchiveDuration: 4320,
      archiveTimestamp: now,
      createdAt: now,
      invitable: false,
      messageCount: 0,
      lastMessageId: null,
    };
    this.channels.set(channel.id, channel);
    this.dispatchGuild("CHANNEL_CREATE", this.channelApi(channel));
    return channel;
  }

  /**
   * Adds a user to a guild. `permissions` creates a role with exactly those permissions
   * (e.g. `["ManageGuild"]` for "Manage Server") and assigns it.
   */
  addMember(
    guild: Ref,
    user: Ref,
    opts: { roles?: Ref[]; permissions?: readonly PermissionName[] | bigint } = {},
  ): FakeMember {
    const g = this.mustGuild(idOf(guild));
    const userId = idOf(user);
    const roles = (opts.roles ?? []).map(idOf);
    if (opts.permissions !== undefined) roles.push(this.role(g, { permissions: opts.permissions }).id);
    const member: FakeMember = { userId, roles, joinedAt: new Date().toISOString() };
    g.members.set(userId, member);
    this.dispatchGuild("GUILD_MEMBER_ADD", { guild_id: g.id, ...this.memberApi(member) });
    return member;
  }

  /** Denies a permission to `user` (default: the bot) in a channel through a member overwrite. */
  denyPermission(channel: Ref, permission: PermissionName, user: Ref = this.bot): void {
    const ch = this.mustChannel(idOf(channel));
    const userId = idOf(user);
    let ow = ch.overwrites.find((o) => o.type === 1 && o.id === userId);
    if (!ow) {
      ow = { id: userId, type: 1, allow: 0n, deny: 0n };
      ch.overwrites.push(ow);
    }
    ow.deny |= PermissionFlagsBits[permission];
    ow.allow &= ~PermissionFlagsBits[permission];
    this.dispatchGuild(ch.type === 0 ? "CHANNEL_UPDATE" : "THREAD_UPDATE", this.channelApi(ch));
  }

  /** Permissions of `user` in a channel (threads use their parent's overwrites). */
  permissionsIn(channel: Ref, user: Ref): bigint {
    let ch = this.mustChannel(idOf(channel));
    if (ch.parentId && (ch.type === 11 || ch.type === 12)) ch = this.mustChannel(ch.parentId);
    const g = this.mustGuild(ch.guildId);
    const userId = idOf(user);
    if (g.ownerId === userId) return ALL_PERMISSIONS;
    const member = g.members.get(userId);
    if (!member) return 0n;
    let perms = 0n;
    for (const role of g.roles) if (role.id === g.id || member.roles.includes(role.id)) perms |= role.permissions;
    if (perms & PermissionFlagsBits.Administrator) return ALL_PERMISSIONS;
    const everyoneOw = ch.overwrites.find((o) => o.type === 0 && o.id === g.id);
    if (everyoneOw) perms = (perms & ~everyoneOw.deny) | everyoneOw.allow;
    let allow = 0n;
    let deny = 0n;
    for (const o of ch.overwrites) {
      if (o.type === 0 && o.id !== g.id && member.roles.includes(o.id)) {
        allow |= o.allow;
        deny |= o.deny;
      }
    }
    perms = (perms & ~deny) | allow;
    const memberOw = ch.overwrites.find((o) => o.type === 1 && o.id === userId);
    if (memberOw) perms = (perms & ~memberOw.deny) | memberOw.allow;
    return perms;
  }

  /** Bot-authored messages in a channel (creation order), deleted ones included with `deleted`. */
  messages(channel: Ref): FakeMessage[] {
    const id = idOf(channel);
    return [...this.store.values()].filter((m) => m.channelId === id && m.authorId === this.bot.id);
  }

  message(id: string): FakeMessage | undefined {
    return this.store.get(id);
  }

  /** Threads, optionally only those under one parent channel. */
  threads(parent?: Ref): FakeChannel[] {
    const parentId = parent === undefined ? undefined : idOf(parent);
    return [...this.channels.values()].filter(
      (c) => (c.type === 11 || c.type === 12) && (parentId === undefined || c.parentId === parentId),
    );
  }

  channel(id: string): FakeChannel | undefined {
    return this.channels.get(id);
  }

  /** Registered commands: global without an argument, else the guild's. */
  commands(guild?: Ref): Json[] {
    return guild === undefined ? [...this.globalCommands] : [...(this.guildCommands.get(idOf(guild)) ?? [])];
  }

  /** Simulates a moderator deleting a message: later edits and fetches get 404 10008. */
  deleteMessage(channel: Ref, messageId: string): void {
    const msg = this.store.get(messageId);
    if (!msg || msg.channelId !== idOf(channel)) throw new Error(`no message ${messageId} in channel ${idOf(channel)}`);
    msg.deleted = true;
    this.dispatchMessage("MESSAGE_DELETE", { id: msg.id, channel_id: msg.channelId, guild_id: msg.guildId });
  }

  /** Simulates a moderator deleting a channel or thread: later calls to it get 404 10003 Unknown Channel. */
  deleteChannel(channel: Ref): void {
    const ch = this.mustChannel(idOf(channel));
    this.channels.delete(ch.id);
    this.dispatchGuild(ch.type === 0 ? "CHANNEL_DELETE" : "THREAD_DELETE", this.channelApi(ch));
  }

  archiveThread(thread: Ref): void {
    const ch = this.mustChannel(idOf(thread));
    ch.archived = true;
    ch.archiveTimestamp = new Date().toISOString();
    this.dispatchGuild("THREAD_UPDATE", this.channelApi(ch));
  }

  /** The next `count` (default 1) calls matching `route` get 429. */
  failNext(
    route: string | ((call: RestCall) => boolean),
    opts: { retryAfter?: number; global?: boolean; count?: number } = {},
  ): void {
    const match = typeof route === "function" ? route : (call: RestCall) => routeMatches(route, call);
    this.pendingFailures.push({
      match,
      retryAfter: opts.retryAfter ?? 0.1,
      global: opts.global ?? false,
      remaining: opts.count ?? 1,
    });
  }

  /** Enforces a fixed-window bucket per route and major parameter (channel, guild or webhook). */
  setRateLimit(rule: RateLimitRule): void {
    this.rateLimits.push(rule);
  }

  async waitFor<T>(check: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== null && value !== false) return value;
      if (Date.now() > deadline) throw new Error(`waitFor timed out after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** True once a client completed IDENTIFY and has an open gateway connection. */
  get connected(): boolean {
    return [...this.sessions.values()].some((s) => s.socket !== undefined);
  }

  /** The `[shard_id, num_shards]` of every gateway session that identified and is still connected. */
  connectedShards(): [number, number][] {
    return [...this.sessions.values()].filter((s) => s.socket !== undefined).map((s) => s.shard);
  }

  // -------------------------------------------------------------------------------------------
  // Test driver: interactions

  slashCommand(
    guild: Ref,
    channel: Ref,
    user: Ref,
    name: string,
    options: CommandOption[] = [],
    subcommand?: string,
  ): InteractionHandle {
    return this.dispatchInteraction(2, guild, channel, user, {
      ...this.commandData(idOf(guild), name, options, subcommand),
    });
  }

  /**
   * A file a user attaches to a slash command's attachment option (type 11): pass the returned id
   * as the option's value; the interaction then carries it in `data.resolved.attachments`, and its
   * `url` downloads it, as Discord's CDN would.
   */
  userAttachment(filename: string, bytes: Buffer, contentType?: string): string {
    const id = snowflake();
    this.uploads.set(id, { id, filename, size: bytes.length, contentType, description: undefined, bytes });
    return id;
  }

  /** Autocomplete: mark the option being typed with `focused: true`. */
  autocomplete(
    guild: Ref,
    channel: Ref,
    user: Ref,
    name: string,
    options: CommandOption[],
    subcommand?: string,
  ): InteractionHandle {
    return this.dispatchInteraction(4, guild, channel, user, this.commandData(idOf(guild), name, options, subcommand));
  }

  clickButton(guild: Ref, channel: Ref, user: Ref, message: Ref, customId: string): InteractionHandle {
    const msg = this.store.get(idOf(message));
    if (!msg) throw new Error(`no message ${idOf(message)}`);
    return this.dispatchInteraction(3, guild, channel, user, { custom_id: customId, component_type: 2 }, msg);
  }

  selectMenu(guild: Ref, channel: Ref, user: Ref, message: Ref, customId: string, values: string[]): InteractionHandle {
    const msg = this.store.get(idOf(message));
    if (!msg) throw new Error(`no message ${idOf(message)}`);
    return this.dispatchInteraction(3, guild, channel, user, { custom_id: customId, component_type: 3, values }, msg);
  }

  submitModal(
    guild: Ref,
    channel: Ref,
    user: Ref,
    customId: string,
    fields: Record<string, string>,
  ): InteractionHandle {
    const components = Object.entries(fields).map(([id, value]) => ({
      type: 1,
      components: [{ type: 4, custom_id: id, value }],
    }));
    return this.dispatchInteraction(5, guild, channel, user, { custom_id: customId, components });
  }

  private commandData(guildId: string, name: string, options: CommandOption[], subcommand?: string): Json {
    const registered =
      this.guildCommands.get(guildId)?.find((c) => c.name === name) ?? this.globalCommands.find((c) => c.name === name);
    const opts = subcommand === undefined ? options : [{ name: subcommand, type: 1, options }];
    const attached = options.filter((o) => o.type === 11).map((o) => this.uploads.get(String(o.value)));
    const base = this.apiRoot.replace(/\/api$/, "");
    const resolved = attached.flatMap((a) =>
      a === undefined
        ? []
        : [
            [
              a.id,
              {
                id: a.id,
                filename: a.filename,
                size: a.size,
                url: `${base}/attachments/0/${a.id}/${encodeURIComponent(a.filename)}`,
                proxy_url: `${base}/attachments/0/${a.id}/${encodeURIComponent(a.filename)}`,
                ...(a.contentType ? { content_type: a.contentType } : {}),
              },
            ] as const,
          ],
    );
    return {
      id: registered?.id ?? snowflake(),
      name,
      type: 1,
      options: opts,
      ...(resolved.length > 0 ? { resolved: { attachments: Object.fromEntries(resolved) } } : {}),
      ...(registered?.guild_id ? { guild_id: registered.guild_id } : {}),
    };
  }

  private dispatchInteraction(
    type: number,
    guild: Ref,
    channel: Ref,
    user: Ref,
    data: Json,
    message?: FakeMessage,
  ): InteractionHandle {
    const g = this.mustGuild(idOf(guild));
    const ch = this.mustChannel(idOf(channel));
    const userId = idOf(user);
    const member = g.members.get(userId);
    if (!member) throw new Error(`user ${userId} is not a member of guild ${g.id}; call addMember first`);
    const rec: InteractionRecord = {
      id: snowflake(),
      token: `aW50ZXJhY3Rpb24${snowflake()}${Math.random().toString(36).slice(2)}`,
      type,
      guildId: g.id,
      channelId: ch.id,
      userId,
      dispatchedAt: Date.now(),
      callbacks: [],
      originalMessageId: undefined,
      sourceMessageId: message?.id,
      followupIds: [],
      waiters: [],
    };
    this.interactions.set(rec.id, rec);
    this.byToken.set(rec.token, rec);
    const payload: Json = {
      id: rec.id,
      application_id: this.applicationId,
      type,
      data,
      guild_id: g.id,
      guild: { id: g.id, locale: "en-US", features: [] },
      channel_id: ch.id,
      channel: this.channelApi(ch),
      member: { ...this.memberApi(member), permissions: this.permissionsIn(ch, userId).toString() },
      token: rec.token,
      version: 1,
      app_permissions: this.permissionsIn(ch, this.bot).toString(),
      locale: "en-US",
      guild_locale: "en-US",
      entitlements: [],
      authorizing_integration_owners: { "0": g.id },
      context: 0,
      attachment_size_limit: 10 * 1024 * 1024,
      ...(message ? { message: this.messageApi(message) } : {}),
    };
    const sent = this.dispatch("INTERACTION_CREATE", payload, () => true);
    if (sent === 0) throw new Error("no identified gateway client to receive the interaction");
    return {
      id: rec.id,
      token: rec.token,
      response(timeoutMs = 5000) {
        const first = rec.callbacks[0];
        if (first) return Promise.resolve(first);
        return new Promise<InteractionCallback>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`interaction ${rec.id} got no callback within ${timeoutMs} ms`)),
            timeoutMs,
          );
          rec.waiters.push((cb) => {
            clearTimeout(timer);
            resolve(cb);
          });
        });
      },
      get respondedWithinMs() {
        return rec.callbacks[0]?.respondedWithinMs;
      },
      callbacks: () => [...rec.callbacks],
      original: () => (rec.originalMessageId ? this.store.get(rec.originalMessageId) : undefined),
      followups: () => rec.followupIds.flatMap((id) => this.store.get(id) ?? []),
    };
  }

  // -------------------------------------------------------------------------------------------
  // API object builders

  private userApi(u: FakeUser): Json {
    return {
      id: u.id,
      username: u.username,
      discriminator: "0",
      global_name: u.globalName,
      avatar: null,
      bot: u.bot,
      system: false,
      public_flags: 0,
      flags: 0,
      ...(u.bot ? { verified: true, mfa_enabled: false } : {}),
    };
  }

  private roleApi(r: FakeRole): Json {
    return {
      id: r.id,
      name: r.name,
      color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
      hoist: false,
      icon: null,
      unicode_emoji: null,
      position: r.position,
      permissions: r.permissions.toString(),
      managed: r.managed,
      mentionable: false,
      flags: 0,
      ...(r.managed ? { tags: { bot_id: this.bot.id } } : {}),
    };
  }

  private memberApi(m: FakeMember): Json {
    const user = this.users.get(m.userId) ?? { id: m.userId, username: "unknown", globalName: null, bot: false };
    return {
      user: this.userApi(user),
      nick: null,
      avatar: null,
      banner: null,
      roles: m.roles,
      joined_at: m.joinedAt,
      premium_since: null,
      deaf: false,
      mute: false,
      flags: 0,
      pending: false,
    };
  }

  private channelApi(c: FakeChannel): Json {
    const base: Json = {
      id: c.id,
      type: c.type,
      guild_id: c.guildId,
      name: c.name,
      parent_id: c.parentId,
      last_message_id: c.lastMessageId,
      rate_limit_per_user: 0,
      flags: 0,
    };
    if (c.type === 11 || c.type === 12) {
      return {
        ...base,
        owner_id: c.ownerId,
        message_count: c.messageCount,
        total_message_sent: c.messageCount,
        member_count: 1,
        thread_metadata: {
          archived: c.archived,
          auto_archive_duration: c.autoArchiveDuration,
          archive_timestamp: c.archiveTimestamp,
          locked: c.locked,
          create_timestamp: c.createdAt,
          ...(c.type === 12 ? { invitable: c.invitable } : {}),
        },
      };
    }
    return {
      ...base,
      position: c.position,
      nsfw: c.nsfw,
      topic: null,
      default_auto_archive_duration: 4320,
      permission_overwrites: c.overwrites.map((o) => ({
        id: o.id,
        type: o.type,
        allow: o.allow.toString(),
        deny: o.deny.toString(),
      })),
    };
  }

  private guildApi(g: FakeGuild): Json {
    return {
      id: g.id,
      name: g.name,
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: g.ownerId,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: g.roles.map((r) => this.roleApi(r)),
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      public_updates_channel_id: null,
      safety_alerts_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      premium_subscription_count: 0,
      preferred_locale: "en-US",
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      max_video_channel_users: 25,
    };
  }

  private guildCreatePayload(g: FakeGuild): Json {
    const channels = [...this.channels.values()].filter((c) => c.guildId === g.id);
    return {
      ...this.guildApi(g),
      joined_at: g.members.get(this.bot.id)?.joinedAt ?? new Date().toISOString(),
      large: false,
      unavailable: false,
      member_count: g.members.size,
      members: [...g.members.values()].map((m) => this.memberApi(m)),
      channels: channels.filter((c) => c.type === 0).map((c) => this.channelApi(c)),
      threads: channels.filter((c) => c.type !== 0 && !c.archived).map((c) => this.channelApi(c)),
      voice_states: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  /** `nested`: the message as `referenced_message` of a reply (without its own reference). */
  private messageApi(m: FakeMessage, nested = false): Json {
    const author = this.users.get(m.authorId) ?? this.bot;
    const referenced = m.reference ? this.store.get(m.reference.messageId) : undefined;
    return {
      id: m.id,
      type: m.type,
      channel_id: m.channelId,
      ...(m.guildId ? { guild_id: m.guildId } : {}),
      author: this.userApi(author),
      content: m.content,
      timestamp: new Date(m.createdAt).toISOString(),
      edited_timestamp: m.editedAt === undefined ? null : new Date(m.editedAt).toISOString(),
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: m.attachments.map((a) => ({
        id: a.id,
        filename: a.filename,
        size: a.size,
        url: `${this.apiRoot.replace(/\/api$/, "")}/attachments/${m.channelId}/${a.id}/${encodeURIComponent(a.filename)}`,
        proxy_url: `${this.apiRoot.replace(/\/api$/, "")}/attachments/${m.channelId}/${a.id}/${encodeURIComponent(a.filename)}`,
        ...(a.contentType ? { content_type: a.contentType } : {}),
        ...(a.description ? { description: a.description } : {}),
      })),
      embeds: m.embeds,
      components: m.components,
      pinned: false,
      flags: m.flags,
      ...(m.reference
        ? {
            message_reference: {
              type: 0,
              message_id: m.reference.messageId,
              channel_id: m.reference.channelId,
              ...(m.guildId ? { guild_id: m.guildId } : {}),
            },
            ...(nested
              ? {}
              : { referenced_message: referenced && !referenced.deleted ? this.messageApi(referenced, true) : null }),
          }
        : {}),
      ...(m.interactionId ? { webhook_id: this.applicationId, application_id: this.applicationId } : {}),
      ...(m.interactionId
        ? {
            interaction_metadata: {
              id: m.interactionId,
              type: this.interactions.get(m.interactionId)?.type ?? 2,
              user: this.userApi(this.users.get(this.interactions.get(m.interactionId)?.userId ?? "") ?? this.bot),
              authorizing_integration_owners: { "0": m.guildId },
            },
          }
        : {}),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Gateway

  private onGatewayConnection(ws: WebSocket, url: URL): void {
    const encoding = url.searchParams.get("encoding") ?? "json";
    if (encoding !== "json" || url.searchParams.has("compress")) {
      ws.close(4002, `fake gateway speaks encoding=json without compress (got ${url.search})`);
      return;
    }
    let session: Session | undefined;
    const send = (payload: Json) => ws.send(JSON.stringify(payload));
    send({ op: 10, d: { heartbeat_interval: this.heartbeatIntervalMs }, s: null, t: null });
    ws.on("message", (raw) => {
      let payload: unknown;
      try {
        payload = JSON.parse(String(raw));
      } catch {
        ws.close(4002, "Error while decoding payload.");
        return;
      }
      if (!isObj(payload) || typeof payload.op !== "number") {
        ws.close(4001, "Unknown opcode.");
        return;
      }
      this.gatewayReceived.push({ op: payload.op, at: Date.now() });
      const d = payload.d;
      switch (payload.op) {
        case 1:
          send({ op: 11, d: null, s: null, t: null });
          break;
        case 2: {
          if (!isObj(d) || d.token !== this.token) {
            ws.close(4004, "Authentication failed.");
            return;
          }
          if (session) {
            ws.close(4005, "Already authenticated.");
            return;
          }
          const shard = shardPair(d.shard);
          if (shard === undefined) {
            ws.close(4010, "Invalid shard.");
            return;
          }
          this.sessionStartsLeft = Math.max(0, this.sessionStartsLeft - 1);
          session = { id: snowflake(), seq: 0, intents: Number(d.intents ?? 0), shard, sent: [], socket: ws };
          this.sessions.set(session.id, session);
          const mine = [...this.guilds.values()].filter((g) => shardOf(g.id, shard[1]) === shard[0]);
          this.sendDispatch(session, "READY", {
            v: 10,
            user: this.userApi(this.bot),
            guilds: mine.map((g) => ({ id: g.id, unavailable: true })),
            session_id: session.id,
            resume_gateway_url: this.gatewayUrl,
            shard,
            application: { id: this.applicationId, flags: 0 },
            private_channels: [],
            presences: [],
            relationships: [],
            guild_join_requests: [],
            user_settings: {},
          });
          for (const g of mine) this.sendDispatch(session, "GUILD_CREATE", this.guildCreatePayload(g));
          break;
        }
        case 6: {
          const known = isObj(d) && typeof d.session_id === "string" ? this.sessions.get(d.session_id) : undefined;
          if (!isObj(d) || d.token !== this.token || !known) {
            send({ op: 9, d: false, s: null, t: null });
            return;
          }
          session = known;
          session.socket = ws;
          const since = Number(d.seq ?? 0);
          for (const item of session.sent) if (item.s > since) ws.send(item.payload);
          this.sendDispatch(session, "RESUMED", {});
          break;
        }
        default:
          // presence update (3), voice state (4), request guild members (8): accepted, ignored
          break;
      }
    });
    ws.on("close", () => {
      if (session && session.socket === ws) session.socket = undefined;
    });
    ws.on("error", () => {});
  }

  private sendDispatch(session: Session, t: string, d: unknown): void {
    session.seq++;
    const payload = JSON.stringify({ op: 0, t, s: session.seq, d });
    session.sent.push({ s: session.seq, payload });
    if (session.sent.length > 1000) session.sent.shift();
    session.socket?.send(payload);
  }

  /**
   * Sends a dispatch to every identified session whose intents pass and whose shard holds the
   * guild (`guild_id` of the payload, else its `guild.id`); returns how many got it.
   */
  private dispatch(t: string, d: unknown, wants: (intents: number) => boolean): number {
    const guildId = guildOfPayload(d);
    let n = 0;
    for (const s of this.sessions.values()) {
      if (!s.socket || !wants(s.intents)) continue;
      if (guildId !== undefined && shardOf(guildId, s.shard[1]) !== s.shard[0]) continue;
      this.sendDispatch(s, t, d);
      n++;
    }
    return n;
  }

  private dispatchGuild(t: string, d: unknown): void {
    this.dispatch(t, d, (intents) => (intents & 1) !== 0);
  }

  private dispatchMessage(t: string, d: unknown): void {
    this.dispatch(t, d, (intents) => (intents & (1 << 9)) !== 0);
  }

  // -------------------------------------------------------------------------------------------
  // REST plumbing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake.local");
    const method = (req.method ?? "GET").toUpperCase();
    const att = /^\/attachments\/(\d+)\/(\d+)\//.exec(url.pathname);
    if (att && method === "GET") {
      const bytes =
        this.uploads.get(att[2] ?? "")?.bytes ??
        [...this.store.values()].flatMap((m) => m.attachments).find((a) => a.id === att[2])?.bytes;
      if (bytes) this.downloads.push(att[2] ?? "");
      if (!bytes) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length }).end(bytes);
      return;
    }
    const path = url.pathname.replace(/^\/api(\/v\d+)?/, "");
    const segments = path
      .split("/")
      .filter(Boolean)
      .map((s) => decodeURIComponent(s));
    const decodedPath = `/${segments.join("/")}`;
    const query = Object.fromEntries(url.searchParams.entries());
    const call: RestCall = {
      method,
      path: decodedPath,
      route: "?",
      query,
      body: undefined,
      files: [],
      at: Date.now(),
      status: 0,
    };
    let reply: Reply;
    try {
      const parsed = await readBody(req);
      call.body = parsed.json;
      call.files = parsed.files.map((f) => ({ name: f.name, size: f.bytes.length }));
      const found = this.findRoute(method, segments);
      if (!found) {
        reply = { status: 404, body: { message: "404: Not Found", code: 0 } };
      } else {
        const [route, params] = found;
        call.route = route.template;
        const auth = req.headers.authorization;
        const authorized = auth === `Bot ${this.token}`;
        const limited = this.rateLimit(call, params);
        if (limited.reply) {
          reply = limited.reply;
        } else if (route.auth && !authorized) {
          reply = { status: 401, body: { message: "401: Unauthorized", code: 0 } };
        } else {
          reply = await route.handler({
            method,
            params,
            query,
            body: isObj(parsed.json) ? parsed.json : {},
            raw: parsed.json,
            files: parsed.files,
            authorized,
          });
        }
        if (limited.headers) reply = { ...reply, headers: { ...limited.headers, ...reply.headers } };
      }
    } catch (err) {
      reply =
        err instanceof HttpError
          ? { status: err.status, body: err.body }
          : { status: 500, body: { message: `fake discord: ${String(err)}`, code: 0 } };
    }
    call.status = reply.status;
    this.calls.push(call);
    if (reply.status === 204 || reply.body === undefined) {
      res.writeHead(reply.status === 0 ? 204 : reply.status, reply.headers ?? {}).end();
      return;
    }
    const text = JSON.stringify(reply.body);
    res
      .writeHead(reply.status, {
        ...reply.headers,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      })
      .end(text);
  }

  private findRoute(method: string, segments: string[]): [Route, Record<string, string>] | undefined {
    for (const route of this.routeTable) {
      if (route.method !== method || route.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length; i++) {
        const pattern = route.segments[i] ?? "";
        const actual = segments[i] ?? "";
        if (pattern.startsWith(":")) params[pattern.slice(1)] = actual;
        else if (pattern !== actual) {
          ok = false;
          break;
        }
      }
      if (ok) return [route, params];
    }
    return undefined;
  }

  private rateLimit(
    call: RestCall,
    params: Record<string, string>,
  ): { reply?: Reply; headers?: Record<string, string> } {
    const failure = this.pendingFailures.find((f) => f.match(call));
    if (failure) {
      failure.remaining--;
      if (failure.remaining <= 0) this.pendingFailures.splice(this.pendingFailures.indexOf(failure), 1);
      return { reply: tooManyRequests(failure.retryAfter, failure.global, `fake-${call.route}`, 1) };
    }
    const rule = this.rateLimits.find((r) => routeMatches(r.route, call));
    if (!rule) return {};
    const major = params.channel ?? params.guild ?? params.token ?? params.app ?? "";
    const key = `${rule.route}|${major}`;
    const now = Date.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.resetAt <= now) {
      bucket = { count: 0, resetAt: now + rule.windowMs };
      this.buckets.set(key, bucket);
    }
    if (bucket.count >= rule.limit) {
      return { reply: tooManyRequests((bucket.resetAt - now) / 1000, false, `fake-${rule.route}`, rule.limit) };
    }
    bucket.count++;
    // Headers on success let discord.js pace itself, like Discord's.
    const headers = {
      "x-ratelimit-limit": String(rule.limit),
      "x-ratelimit-remaining": String(rule.limit - bucket.count),
      "x-ratelimit-reset-after": ((bucket.resetAt - now) / 1000).toFixed(3),
      "x-ratelimit-reset": (bucket.resetAt / 1000).toFixed(3),
      "x-ratelimit-bucket": `fake-${rule.route}`,
    };
    return { headers };
  }

  private routes(): Route[] {
    const table: Route[] = [];
    const add = (method: string, template: string, handler: Handler, auth = true) => {
      table.push({ method, template, segments: template.split("/").filter(Boolean), auth, handler });
    };
    const ok = (body: unknown): Reply => ({ status: 200, body });
    const noContent: Reply = { status: 204 };

    add("GET", "/gateway/bot", () =>
      ok({
        url: this.gatewayUrl,
        shards: this.recommendedShards,
        session_start_limit: {
          total: 1000,
          remaining: this.sessionStartsLeft,
          reset_after: 14_400_000,
          max_concurrency: this.maxConcurrency,
        },
      }),
    );
    add("GET", "/gateway", () => ok({ url: this.gatewayUrl }), false);
    add("GET", "/users/@me", () => ok(this.userApi(this.bot)));
    add("GET", "/users/:user", ({ params }) => {
      const u = this.users.get(params.user ?? "");
      if (!u) throw notFound("User", 10013);
      return ok(this.userApi(u));
    });
    add("GET", "/applications/@me", () =>
      ok({
        id: this.applicationId,
        name: "Inkloom",
        icon: null,
        description: "",
        bot_public: true,
        bot_require_code_grant: false,
        verify_key: "0".repeat(64),
        flags: 0,
        bot: this.userApi(this.bot),
        owner: this.userApi(this.bot),
        team: null,
        approximate_guild_count: this.guilds.size,
      }),
    );

    // Application commands
    const putCommands = (list: Json[], guildId: string | undefined, body: unknown): Reply => {
      if (!Array.isArray(body)) throw new HttpError(400, { code: 50035, errors: {}, message: "Invalid Form Body" });
      const errors = new FormErrors();
      body.forEach((c, i) => {
        if (!isObj(c)) return;
        const len = textLen(c.name);
        if (len < 1 || len > 32) errors.add([i, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.");
        if ((c.type ?? 1) === 1) errors.maxLength([i, "description"], c.description, 100);
        errors.maxLength([i, "options"], c.options, 25);
      });
      errors.throwIfAny();
      const previous = [...list];
      list.length = 0;
      for (const c of body) {
        if (!isObj(c)) continue;
        const existing = previous.find((p) => p.name === c.name && (p.type ?? 1) === (c.type ?? 1));
        list.push({
          type: 1,
          description: "",
          options: [],
          default_member_permissions: null,
          nsfw: false,
          contexts: null,
          integration_types: [0],
          ...c,
          id: existing?.id ?? snowflake(),
          application_id: this.applicationId,
          version: snowflake(),
          ...(guildId ? { guild_id: guildId } : {}),
        });
      }
      return ok(list);
    };
    add("PUT", "/applications/:app/commands", ({ params, raw }) => {
      this.mustApp(params.app);
      return putCommands(this.globalCommands, undefined, raw);
    });
    add("GET", "/applications/:app/commands", ({ params }) => {
      this.mustApp(params.app);
      return ok(this.globalCommands);
    });
    add("PUT", "/applications/:app/guilds/:guild/commands", ({ params, raw }) => {
      this.mustApp(params.app);
      const g = this.mustGuild(params.guild ?? "");
      let list = this.guildCommands.get(g.id);
      if (!list) {
        list = [];
        this.guildCommands.set(g.id, list);
      }
      return putCommands(list, g.id, raw);
    });
    add("GET", "/applications/:app/guilds/:guild/commands", ({ params }) => {
      this.mustApp(params.app);
      return ok(this.guildCommands.get(this.mustGuild(params.guild ?? "").id) ?? []);
    });

    // Interactions
    add("POST", "/interactions/:interaction/:token/callback", (ctx) => this.interactionCallback(ctx), false);
    add(
      "POST",
      "/webhooks/:app/:token",
      (ctx) => {
        const rec = this.mustWebhook(ctx.params);
        if (rec.callbacks.length === 0) throw notFound("Webhook", 10015);
        const msg = this.createMessage(this.mustChannel(rec.channelId), ctx.body, ctx.files, {
          interactionId: rec.id,
          checkPermissions: false,
        });
        rec.followupIds.push(msg.id);
        return ok(this.messageApi(msg));
      },
      false,
    );
    const webhookMessage = (params: Record<string, string>): FakeMessage => {
      const rec = this.mustWebhook(params);
      const id = params.message === "@original" ? rec.originalMessageId : params.message;
      const msg = id ? this.store.get(id) : undefined;
      if (!msg || msg.deleted) throw notFound("Message", 10008);
      return msg;
    };
    add(
      "GET",
      "/webhooks/:app/:token/messages/:message",
      ({ params }) => ok(this.messageApi(webhookMessage(params))),
      false,
    );
    add(
      "PATCH",
      "/webhooks/:app/:token/messages/:message",
      ({ params, body, files }) => {
        const msg = webhookMessage(params);
        this.editMessage(msg, body, files);
        return ok(this.messageApi(msg));
      },
      false,
    );
    add(
      "DELETE",
      "/webhooks/:app/:token/messages/:message",
      ({ params }) => {
        const msg = webhookMessage(params);
        msg.deleted = true;
        return noContent;
      },
      false,
    );

    // Messages
    add("POST", "/channels/:channel/messages", ({ params, body, files }) => {
      const ch = this.mustChannel(params.channel ?? "");
      return ok(
        this.messageApi(this.createMessage(ch, body, files, { interactionId: undefined, checkPermissions: true })),
      );
    });
    add("GET", "/channels/:channel/messages/:message", ({ params }) => ok(this.messageApi(this.mustMessage(params))));
    add("PATCH", "/channels/:channel/messages/:message", ({ params, body, files }) => {
      const msg = this.mustMessage(params);
      if (msg.authorId !== this.bot.id) {
        throw new HttpError(403, { message: "Cannot edit a message authored by another user", code: 50005 });
      }
      const ch = this.mustChannel(msg.channelId);
      if (ch.archived) throw new HttpError(400, { message: "Thread is archived", code: 50083 });
      this.editMessage(msg, body, files);
      return ok(this.messageApi(msg));
    });
    add("DELETE", "/channels/:channel/messages/:message", ({ params }) => {
      const msg = this.mustMessage(params);
      if (
        msg.authorId !== this.bot.id &&
        !(this.permissionsIn(msg.channelId, this.bot) & PermissionFlagsBits.ManageMessages)
      ) {
        throw missingPermissions();
      }
      msg.deleted = true;
      this.dispatchMessage("MESSAGE_DELETE", { id: msg.id, channel_id: msg.channelId, guild_id: msg.guildId });
      return noContent;
    });
    add("POST", "/channels/:channel/typing", ({ params }) => {
      this.mustChannel(params.channel ?? "");
      return noContent;
    });

    // Threads and channels
    add("POST", "/channels/:channel/threads", ({ params, body }) => {
      const parent = this.mustTextChannel(params.channel ?? "");
      const type = body.type === 11 ? 11 : body.type === 12 || body.type === undefined || body.type === null ? 12 : -1;
      if (type === -1) {
        throw new HttpError(400, {
          code: 50035,
          errors: { type: { _errors: [{ code: "BASE_TYPE_CHOICES", message: "Value must be one of {11, 12}." }] } },
          message: "Invalid Form Body",
        });
      }
      return ok(this.channelApi(this.createThread(parent, body, type, undefined)));
    });
    add("POST", "/channels/:channel/messages/:message/threads", ({ params, body }) => {
      const parent = this.mustTextChannel(params.channel ?? "");
      const msg = this.mustMessage(params);
      if ([...this.channels.values()].some((c) => c.id === msg.id)) {
        throw new HttpError(400, { message: "A thread has already been created for this message", code: 160004 });
      }
      return ok(this.channelApi(this.createThread(parent, body, 11, msg.id)));
    });
    add("GET", "/channels/:channel", ({ params }) =>
      ok(this.channelApi(this.mustVisibleChannel(params.channel ?? ""))),
    );
    add("DELETE", "/channels/:channel", ({ params }) => {
      const ch = this.mustChannel(params.channel ?? "");
      if (!(this.permissionsIn(ch.id, this.bot) & PermissionFlagsBits.ManageThreads) && ch.ownerId !== this.bot.id) {
        throw missingPermissions();
      }
      this.channels.delete(ch.id);
      this.dispatchGuild(ch.type === 0 ? "CHANNEL_DELETE" : "THREAD_DELETE", this.channelApi(ch));
      return ok(this.channelApi(ch));
    });
    add("PATCH", "/channels/:channel", ({ params, body }) => {
      const ch = this.mustVisibleChannel(params.channel ?? "");
      this.mustMayModify(ch, body);
      if (typeof body.name === "string") {
        const errors = new FormErrors();
        if (body.name.length < 1 || body.name.length > 100) {
          errors.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
        }
        errors.throwIfAny();
        ch.name = body.name;
      }
      if (ch.type === 11 || ch.type === 12) {
        if (typeof body.archived === "boolean") {
          ch.archived = body.archived;
          ch.archiveTimestamp = new Date().toISOString();
        }
        if (typeof body.locked === "boolean") ch.locked = body.locked;
        if (typeof body.auto_archive_duration === "number") ch.autoArchiveDuration = body.auto_archive_duration;
        this.dispatchGuild("THREAD_UPDATE", this.channelApi(ch));
      } else {
        if (typeof body.nsfw === "boolean") ch.nsfw = body.nsfw;
        this.dispatchGuild("CHANNEL_UPDATE", this.channelApi(ch));
      }
      return ok(this.channelApi(ch));
    });
    add("PUT", "/channels/:channel/thread-members/@me", ({ params }) => {
      this.mustChannel(params.channel ?? "");
      return noContent;
    });

    // Guilds
    add("GET", "/guilds/:guild", ({ params }) => {
      const g = this.mustGuild(params.guild ?? "");
      return ok(this.guildApi(g));
    });
    add("GET", "/guilds/:guild/channels", ({ params }) => {
      const g = this.mustGuild(params.guild ?? "");
      return ok(
        [...this.channels.values()].filter((c) => c.guildId === g.id && c.type === 0).map((c) => this.channelApi(c)),
      );
    });
    add("GET", "/guilds/:guild/roles", ({ params }) =>
      ok(this.mustGuild(params.guild ?? "").roles.map((r) => this.roleApi(r))),
    );
    add("GET", "/guilds/:guild/members/:user", ({ params }) => {
      const g = this.mustGuild(params.guild ?? "");
      const m = g.members.get(params.user ?? "");
      if (!m) throw notFound("Member", 10007);
      return ok(this.memberApi(m));
    });
    return table;
  }

  private interactionCallback(ctx: Ctx): Reply {
    const rec = this.interactions.get(ctx.params.interaction ?? "");
    if (!rec || rec.token !== ctx.params.token) throw notFound("interaction", 10062);
    const now = Date.now();
    if (rec.callbacks.length > 0) {
      throw new HttpError(400, { message: "Interaction has already been acknowledged.", code: 40060 });
    }
    if (now - rec.dispatchedAt > this.interactionDeadlineMs) throw notFound("interaction", 10062);
    const type = Number(ctx.body.type);
    const data = isObj(ctx.body.data) ? ctx.body.data : undefined;
    const ch = this.mustChannel(rec.channelId);
    let message: FakeMessage | undefined;
    switch (type) {
      case 4:
        message = this.createMessage(ch, data ?? {}, ctx.files, { interactionId: rec.id, checkPermissions: false });
        rec.originalMessageId = message.id;
        break;
      case 5:
        message = this.createMessage(ch, { content: "", flags: Number(data?.flags ?? 0) | 128 }, [], {
          interactionId: rec.id,
          checkPermissions: false,
          allowEmpty: true,
        });
        rec.originalMessageId = message.id;
        break;
      case 6:
      case 7: {
        if (rec.type !== 3 || !rec.sourceMessageId) {
          throw new HttpError(400, {
            message: "Interaction response type is not valid for this interaction",
            code: 40002,
          });
        }
        rec.originalMessageId = rec.sourceMessageId;
        message = this.store.get(rec.sourceMessageId);
        if (type === 7 && message) this.editMessage(message, data ?? {}, ctx.files);
        break;
      }
      case 8: {
        if (rec.type !== 4) throw new HttpError(400, { message: "Invalid interaction response type", code: 40002 });
        const errors = new FormErrors();
        errors.maxLength(["data", "choices"], data?.choices, 25);
        errors.throwIfAny();
        break;
      }
      case 9:
        if (rec.type === 5) throw new HttpError(400, { message: "Invalid interaction response type", code: 40002 });
        validateModal(data ?? {});
        break;
      default:
        throw new HttpError(400, {
          code: 50035,
          errors: {
            type: {
              _errors: [{ code: "BASE_TYPE_CHOICES", message: "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}." }],
            },
          },
          message: "Invalid Form Body",
        });
    }
    const cb: InteractionCallback = {
      type,
      data,
      files: ctx.files.map((f) => ({ name: f.name, bytes: f.bytes })),
      at: now,
      respondedWithinMs: now - rec.dispatchedAt,
    };
    rec.callbacks.push(cb);
    for (const w of rec.waiters.splice(0)) w(cb);
    if (ctx.query.with_response !== "true") return { status: 204 };
    return {
      status: 200,
      body: {
        interaction: {
          id: rec.id,
          type: rec.type,
          activity_instance_id: null,
          response_message_id: message?.id ?? null,
          response_message_loading: type === 5,
          response_message_ephemeral: message?.ephemeral ?? false,
        },
        resource: { type, ...(message ? { message: this.messageApi(message) } : {}) },
      },
    };
  }

  private createMessage(
    ch: FakeChannel,
    body: Json,
    files: ParsedBody["files"],
    opts: { interactionId: string | undefined; checkPermissions: boolean; allowEmpty?: boolean },
  ): FakeMessage {
    if (opts.checkPermissions) {
      const perms = this.permissionsIn(ch, this.bot);
      const isThread = ch.type === 11 || ch.type === 12;
      const need =
        PermissionFlagsBits.ViewChannel |
        (isThread ? PermissionFlagsBits.SendMessagesInThreads : PermissionFlagsBits.SendMessages);
      if ((perms & need) !== need) throw missingPermissions();
      if (files.length > 0 && !(perms & PermissionFlagsBits.AttachFiles)) throw missingPermissions();
    }
    if (!opts.allowEmpty) validateMessage(body, files.length, true);
    const reference = opts.interactionId === undefined ? this.replyReference(ch, body) : undefined;
    if (ch.archived) throw new HttpError(400, { message: "Thread is archived", code: 50083 });
    const flags = Number(body.flags ?? 0);
    const now = Date.now();
    const msg: FakeMessage = {
      id: snowflake(),
      channelId: ch.id,
      guildId: ch.guildId,
      authorId: this.bot.id,
      content: typeof body.content === "string" ? body.content : "",
      embeds: Array.isArray(body.embeds) ? body.embeds : [],
      components: Array.isArray(body.components) ? body.components : [],
      attachments: this.attachmentsFrom(body, files),
      flags,
      createdAt: now,
      editedAt: undefined,
      edits: 0,
      contentHistory: [],
      deleted: false,
      interactionId: opts.interactionId,
      ephemeral: (flags & 64) !== 0,
      type: opts.interactionId ? 20 : reference ? 19 : 0,
      reference,
    };
    msg.contentHistory.push(msg.content);
    this.store.set(msg.id, msg);
    ch.lastMessageId = msg.id;
    ch.messageCount++;
    if (!msg.ephemeral) this.dispatchMessage("MESSAGE_CREATE", this.messageApi(msg));
    return msg;
  }

  /**
   * The message a new message replies to (`message_reference`, reply type). A reference to a
   * message that is not in the channel, or was deleted, fails with 50035 unless
   * `fail_if_not_exists` is false: then the message goes out as a plain one, as with Discord.
   */
  private replyReference(ch: FakeChannel, body: Json): FakeMessage["reference"] {
    const ref = body.message_reference;
    if (!isObj(ref) || (ref.type !== undefined && ref.type !== 0)) return undefined;
    const target = this.store.get(String(ref.message_id));
    const sameChannel = ref.channel_id === undefined || String(ref.channel_id) === ch.id;
    if (target && !target.deleted && target.channelId === ch.id && sameChannel) {
      return { messageId: target.id, channelId: ch.id };
    }
    if (ref.fail_if_not_exists === false) return undefined;
    const errors = new FormErrors();
    errors.add(["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message");
    errors.throwIfAny();
    return undefined;
  }

  private attachmentsFrom(body: Json, files: ParsedBody["files"]): FakeAttachment[] {
    const meta = Array.isArray(body.attachments) ? body.attachments.filter(isObj) : [];
    return files.map((f, i) => {
      const index = /\[(\d+)\]/.exec(f.field)?.[1] ?? String(i);
      const m = meta.find((a) => String(a.id) === index);
      return {
        id: snowflake(),
        filename: typeof m?.filename === "string" ? m.filename : f.name,
        size: f.bytes.length,
        contentType: f.contentType,
        description: typeof m?.description === "string" ? m.description : undefined,
        bytes: f.bytes,
      };
    });
  }

  private editMessage(msg: FakeMessage, body: Json, files: ParsedBody["files"]): void {
    validateMessage(body, files.length, false);
    if ("content" in body) msg.content = typeof body.content === "string" ? body.content : "";
    if ("embeds" in body) msg.embeds = Array.isArray(body.embeds) ? body.embeds : [];
    if ("components" in body) msg.components = Array.isArray(body.components) ? body.components : [];
    if ("attachments" in body || files.length > 0) {
      const keep = Array.isArray(body.attachments)
        ? new Set(body.attachments.filter(isObj).map((a) => String(a.id)))
        : undefined;
      const kept = keep ? msg.attachments.filter((a) => keep.has(a.id)) : msg.attachments;
      msg.attachments = [...kept, ...this.attachmentsFrom(body, files)];
    }
    if (typeof body.flags === "number") msg.flags = (msg.flags & ~4) | (body.flags & 4);
    msg.flags &= ~128; // editing a deferred response ends "thinking"
    msg.edits++;
    msg.editedAt = Date.now();
    msg.contentHistory.push(msg.content);
    if (!msg.ephemeral) this.dispatchMessage("MESSAGE_UPDATE", this.messageApi(msg));
  }

  private createThread(parent: FakeChannel, body: Json, type: 11 | 12, fromMessage: string | undefined): FakeChannel {
    const perms = this.permissionsIn(parent, this.bot);
    const need = type === 11 ? PermissionFlagsBits.CreatePublicThreads : PermissionFlagsBits.CreatePrivateThreads;
    if (!(perms & PermissionFlagsBits.ViewChannel) || !(perms & need)) throw missingPermissions();
    const errors = new FormErrors();
    const name = body.name;
    if (typeof name !== "string" || name.length < 1 || name.length > 100) {
      errors.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
    }
    const dur = body.auto_archive_duration;
    if (dur !== undefined && dur !== null && ![60, 1440, 4320, 10080].includes(Number(dur))) {
      errors.add(["auto_archive_duration"], "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.");
    }
    errors.throwIfAny();
    const now = new Date().toISOString();
    const thread: FakeChannel = {
      id: fromMessage ?? snowflake(),
      type,
      guildId: parent.guildId,
      name: String(name),
      nsfw: parent.nsfw,
      parentId: parent.id,
      position: 0,
      overwrites: [],
      ownerId: this.bot.id,
      archived: false,
      locked: false,
      autoArchiveDuration: dur === undefined || dur === null ? 4320 : Number(dur),
      archiveTimestamp: now,
      createdAt: now,
      invitable: body.invitable !== false,
      messageCount: 0,
      lastMessageId: null,
    };
    this.channels.set(thread.id, thread);
    this.dispatchGuild("THREAD_CREATE", { ...this.channelApi(thread), newly_created: true });
    return thread;
  }

  private mustGuild(id: string): FakeGuild {
    const g = this.guilds.get(id);
    if (!g) throw notFound("Guild", 10004);
    return g;
  }

  private mustChannel(ref: Ref): FakeChannel {
    const c = this.channels.get(idOf(ref));
    if (!c) throw notFound("Channel", 10003);
    return c;
  }

  /** A channel the bot can see: 404 10003 when there is none, 403 50001 Missing Access without View Channel. */
  private mustVisibleChannel(id: string): FakeChannel {
    const c = this.mustChannel(id);
    if (!(this.permissionsIn(c, this.bot) & PermissionFlagsBits.ViewChannel)) {
      throw new HttpError(403, { message: "Missing Access", code: 50001 });
    }
    return c;
  }

  /**
   * Modify Channel's permissions (50013 otherwise): Manage Channels for a guild channel; for
   * a thread, Manage Threads, or else the thread's creator (not to lock it, nor once it is
   * locked), or else, to unarchive an unlocked thread, Send Messages in Threads.
   */
  private mustMayModify(ch: FakeChannel, body: Json): void {
    const perms = this.permissionsIn(ch, this.bot);
    if (ch.type !== 11 && ch.type !== 12) {
      if (!(perms & PermissionFlagsBits.ManageChannels)) throw missingPermissions();
      return;
    }
    if (perms & PermissionFlagsBits.ManageThreads) return;
    // Only Manage Threads locks a thread, or changes a locked one.
    if (ch.locked || "locked" in body) throw missingPermissions();
    if (ch.ownerId === this.bot.id) return;
    const onlyUnarchive = Object.keys(body).every((k) => k === "archived") && body.archived === false;
    if (!onlyUnarchive || !(perms & PermissionFlagsBits.SendMessagesInThreads)) throw missingPermissions();
  }

  private mustTextChannel(id: string): FakeChannel {
    const c = this.mustChannel(id);
    if (c.type !== 0) throw new HttpError(400, { message: "Cannot execute action on this channel type", code: 50024 });
    return c;
  }

  private mustMessage(params: Record<string, string>): FakeMessage {
    const ch = this.mustChannel(params.channel ?? "");
    const msg = this.store.get(params.message ?? "");
    if (!msg || msg.deleted || msg.channelId !== ch.id || msg.ephemeral) throw notFound("Message", 10008);
    return msg;
  }

  private mustApp(id: string | undefined): void {
    if (id !== this.applicationId) throw notFound("Application", 10002);
  }

  private mustWebhook(params: Record<string, string>): InteractionRecord {
    const rec = this.byToken.get(params.token ?? "");
    if (params.app !== this.applicationId || !rec) throw notFound("Webhook", 10015);
    return rec;
  }
}

/**
 * Whether a request counts against the bot's global budget (50 requests/s). Discord exempts
 * interaction callbacks (`POST /interactions/{id}/{token}/callback`); @discordjs/rest, and so
 * a `@discordjs/proxy` in front of Discord, exempts exactly those too, and counts the
 * interaction-token webhooks (`editReply`, `followUp`) like any other request.
 */
export function countsAgainstGlobalLimit(call: Pick<RestCall, "path">): boolean {
  return !/^\/interactions\/[^/]+\/[^/]+\/callback$/.test(call.path);
}

/** IDENTIFY's `shard` as `[shard_id, num_shards]` (absent: [0, 1]); undefined when it is not a valid pair. */
function shardPair(value: unknown): [number, number] | undefined {
  if (value === undefined || value === null) return [0, 1];
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [id, count] = value as unknown[];
  if (!Number.isInteger(id) || !Number.isInteger(count)) return undefined;
  const [i, n] = [id as number, count as number];
  return n >= 1 && i >= 0 && i < n ? [i, n] : undefined;
}

/** The guild a dispatch is about: `guild_id`, or the `id` of a GUILD_CREATE/UPDATE payload (has `roles`). */
function guildOfPayload(d: unknown): string | undefined {
  if (!isObj(d)) return undefined;
  if (typeof d.guild_id === "string") return d.guild_id;
  if (typeof d.id === "string" && Array.isArray(d.roles) && "owner_id" in d) return d.id;
  return undefined;
}

function routeMatches(key: string, call: RestCall): boolean {
  const space = key.indexOf(" ");
  const method = space > 0 ? key.slice(0, space).toUpperCase() : undefined;
  const target = space > 0 ? key.slice(space + 1) : key;
  if (method && method !== call.method) return false;
  return target === call.route || target === call.path;
}

function tooManyRequests(retryAfter: number, global: boolean, bucket: string, limit: number): Reply {
  const seconds = Math.max(0, retryAfter);
  return {
    status: 429,
    headers: {
      "retry-after": String(seconds),
      "x-ratelimit-limit": String(limit),
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset-after": String(seconds),
      "x-ratelimit-reset": ((Date.now() + seconds * 1000) / 1000).toFixed(3),
      "x-ratelimit-bucket": bucket,
      "x-ratelimit-scope": global ? "global" : "user",
      ...(global ? { "x-ratelimit-global": "true" } : {}),
    },
    body: { message: "You are being rate limited.", retry_after: seconds, global },
  };
}
