import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Input, Markup, Telegraf, TelegramError } from "telegraf";
import { message } from "telegraf/filters";
import { afterEach, describe, expect, it } from "vitest";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";

let server: FakeTelegramServer | undefined;
let bot: Telegraf | undefined;
let running: Promise<void> | undefined;
let webhookServer: Server | undefined;

afterEach(async () => {
  if (bot && running) {
    bot.stop("test over");
    await running;
  }
  bot = undefined;
  running = undefined;
  if (webhookServer) {
    const s = webhookServer;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    webhookServer = undefined;
  }
  await server?.close();
  server = undefined;
});

async function startServer(options: Parameters<typeof FakeTelegramServer.start>[0] = {}): Promise<FakeTelegramServer> {
  server = await FakeTelegramServer.start(options);
  return server;
}

function newBot(fake: FakeTelegramServer): Telegraf {
  return new Telegraf(fake.token, { telegram: { apiRoot: fake.apiRoot } });
}

/** A bot that echoes text with a "Next" button and answers the button with an alert. */
function echoBot(fake: FakeTelegramServer): Telegraf {
  const b = newBot(fake);
  b.on(message("text"), (ctx) =>
    ctx.reply(`echo: ${ctx.message.text}`, Markup.inlineKeyboard([Markup.button.callback("Next", "next")])),
  );
  b.action("next", (ctx) => ctx.answerCbQuery("Chapter 2", { show_alert: true }));
  return b;
}

/** Launch with long polling and wait until the first getUpdates is being held. */
async function launch(fake: FakeTelegramServer, b: Telegraf): Promise<void> {
  bot = b;
  running = b.launch();
  running.catch(() => {});
  await fake.waitFor(() => fake.calls.some((c) => c.method === "getUpdates"));
}

/** Bot API 9.5 methods telegraf 4.16 has no typing for. */
function callRaw(b: Telegraf, method: string, payload: Record<string, unknown>): Promise<unknown> {
  const call = b.telegram.callApi as unknown as (m: string, p: Record<string, unknown>) => Promise<unknown>;
  return call.call(b.telegram, method, payload);
}

async function telegramError(promise: Promise<unknown>): Promise<TelegramError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TelegramError) return err;
    throw err;
  }
  throw new Error("expected the call to fail with a TelegramError");
}

describe("fake Telegram server with the real telegraf client", () => {
  it("delivers a user's text to a long-polling bot and records the bot's reply with its keyboard", async () => {
    const fake = await startServer();
    await launch(fake, echoBot(fake));
    const chat = fake.chat("private");
    const reader = fake.user({ first_name: "Ada", language_code: "en" });

    fake.sendText(chat, reader, "hello there");
    const [reply] = await fake.waitFor(() => {
      const msgs = fake.messages(chat.id);
      return msgs.length > 0 ? msgs : undefined;
    });

    expect(reply?.text).toBe("echo: hello there");
    expect(reply?.reply_markup?.inline_keyboard?.[0]?.[0]).toMatchObject({ text: "Next", callback_data: "next" });
    expect(fake.calls.find((c) => c.method === "sendMessage")).toMatchObject({ chatId: chat.id, status: 200 });
  });

  it("resolves a button click with the bot's answerCallbackQuery text and alert flag", async () => {
    const fake = await startServer();
    await launch(fake, echoBot(fake));
    const chat = fake.chat("group");
    const reader = fake.user();
    fake.sendText(chat, reader, "/start@inkloom_test_bot");
    const sent = await fake.waitFor(() => fake.messages(chat.id)[0]);

    const answer = await fake.clickButton(chat, reader, sent.message_id, "next");

    expect(answer).toEqual({ text: "Chapter 2", show_alert: true });
  });

  it("rejects an unanswered click after its timeout instead of hanging", async () => {
    const fake = await startServer();
    const chat = fake.chat("private");
    const reader = fake.user();
    const b = newBot(fake);
    const sent = await b.telegram.sendMessage(
      chat.id,
      "pick",
      Markup.inlineKeyboard([Markup.button.callback("A", "a")]),
    );

    await expect(fake.clickButton(chat, reader, sent.message_id, "a", { timeoutMs: 50 })).rejects.toThrow(
      /not answered/,
    );
    expect(() => fake.clickButton(chat, reader, sent.message_id, "missing")).toThrow(/no button/);
  });

  it("holds getUpdates until an update arrives, answers [] when the timeout passes, and refuses a concurrent poll with 409", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");
    const reader = fake.user();

    const started = Date.now();
    const held = b.telegram.callApi("getUpdates", { timeout: 5, offset: 0 });
    await fake.waitFor(() => fake.calls.some((c) => c.method === "getUpdates" && c.status === 0));
    const conflict = await telegramError(b.telegram.callApi("getUpdates", { timeout: 1 }));
    expect(conflict.code).toBe(409);
    setTimeout(() => fake.sendText(chat, reader, "late"), 100);
    const updates = await held;
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(updates.map((u) => ("message" in u && u.message && "text" in u.message ? u.message.text : ""))).toEqual([
      "late",
    ]);

    // Confirming with offset empties the queue; an empty poll waits out its timeout.
    const next = (updates[0]?.update_id ?? 0) + 1;
    const t0 = Date.now();
    const empty = await b.telegram.callApi("getUpdates", { timeout: 1, offset: next });
    expect(empty).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(fake.pendingUpdates).toBe(0);
  });

  it("releases a held getUpdates when the server closes", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const held = b.telegram.callApi("getUpdates", { timeout: 30 });
    await fake.waitFor(() => fake.calls.some((c) => c.method === "getUpdates"));
    const t0 = Date.now();
    await fake.close();
    await expect(held).resolves.toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("stores commands per scope and language, and getMyCommands returns exactly that list", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    await b.telegram.setMyCommands([{ command: "start", description: "Begin a story" }]);
    await b.telegram.setMyCommands([{ command: "start", description: "Geschichte beginnen" }], { language_code: "de" });
    await b.telegram.setMyCommands([{ command: "choose", description: "Pick" }], {
      scope: { type: "all_group_chats" },
    });

    expect(await b.telegram.getMyCommands({ language_code: "de" })).toEqual([
      { command: "start", description: "Geschichte beginnen" },
    ]);
    expect(await b.telegram.getMyCommands()).toEqual([{ command: "start", description: "Begin a story" }]);
    expect(await b.telegram.getMyCommands({ language_code: "fr" })).toEqual([]);
    expect(fake.commands({ type: "all_group_chats" })).toEqual([{ command: "choose", description: "Pick" }]);

    await b.telegram.deleteMyCommands({ language_code: "de" });
    expect(fake.commands(undefined, "de")).toEqual([]);
    expect((await telegramError(b.telegram.setMyCommands([{ command: "Bad Cmd", description: "x" }]))).code).toBe(400);
  });

  it("answers 400 'message is not modified' to an identical edit, and an edit without reply_markup drops the keyboard", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");
    const keyboard = Markup.inlineKeyboard([Markup.button.callback("Go", "go")]);
    const sent = await b.telegram.sendMessage(chat.id, "Chapter 1", keyboard);

    const err = await telegramError(
      b.telegram.editMessageText(chat.id, sent.message_id, undefined, "Chapter 1", keyboard),
    );
    expect(err.code).toBe(400);
    expect(err.description).toMatch(/^Bad Request: message is not modified/);

    await b.telegram.editMessageText(chat.id, sent.message_id, undefined, "Chapter 1");
    const [record] = fake.messages(chat.id);
    expect(record?.reply_markup).toBeUndefined();
    expect(record?.edits).toBe(1);
    expect(record?.history).toEqual(["Chapter 1", "Chapter 1"]);
  });

  it("rejects text over 4096 UTF-16 units with 400 and accepts exactly 4096", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");

    await b.telegram.sendMessage(chat.id, "😀".repeat(2048));
    const err = await telegramError(b.telegram.sendMessage(chat.id, `${"😀".repeat(2048)}!`));

    expect(err.code).toBe(400);
    expect(err.description).toBe("Bad Request: message is too long");
    expect(fake.messages(chat.id)).toHaveLength(1);
  });

  it("parses HTML like Telegram: counts visible text, and refuses unclosed or unknown tags with 'can't parse entities'", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");

    await b.telegram.sendMessage(chat.id, "<b>Bold</b> &amp; <i>brave</i>", { parse_mode: "HTML" });
    const [record] = fake.messages(chat.id);
    expect(record?.text).toBe("Bold & brave");
    expect(record?.entities).toEqual([
      { type: "bold", offset: 0, length: 4 },
      { type: "italic", offset: 7, length: 5 },
    ]);
    // 4096 visible characters wrapped in tags is still within the limit.
    await b.telegram.sendMessage(chat.id, `<b>${"x".repeat(4096)}</b>`, { parse_mode: "HTML" });

    for (const bad of ["<b>unclosed", "line<br>break", "<i>crossed</b>"]) {
      const err = await telegramError(b.telegram.sendMessage(chat.id, bad, { parse_mode: "HTML" }));
      expect(err.code).toBe(400);
      expect(err.description).toMatch(/^Bad Request: can't parse entities: /);
    }
  });

  it("rejects callback_data over 64 bytes with 400 BUTTON_DATA_INVALID, counting bytes not characters", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");

    await b.telegram.sendMessage(chat.id, "ok", Markup.inlineKeyboard([Markup.button.callback("A", "a".repeat(64))]));
    const err = await telegramError(
      b.telegram.sendMessage(chat.id, "too long", Markup.inlineKeyboard([Markup.button.callback("É", "é".repeat(33))])),
    );

    expect(err.code).toBe(400);
    expect(err.description).toBe("Bad Request: BUTTON_DATA_INVALID");
  });

  it("makes telegraf throw a TelegramError with parameters.retry_after after failNext(429), then succeeds", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");
    fake.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 1", retry_after: 1 });

    const err = await telegramError(b.telegram.sendMessage(chat.id, "first"));
    expect(err.code).toBe(429);
    expect(err.parameters?.retry_after).toBe(1);
    await b.telegram.sendMessage(chat.id, "second");

    expect(fake.messages(chat.id).map((m) => m.text)).toEqual(["second"]);
    expect(fake.rateLimited).toBe(1);
    expect(fake.calls.filter((c) => c.method === "sendMessage").map((c) => c.status)).toEqual([429, 200]);
  });

  it("with enforceLimits answers 429 to a second send to one chat within a second, but not to another chat or a chat action", async () => {
    const fake = await startServer({ enforceLimits: true });
    const b = newBot(fake);
    const chat = fake.chat("private");
    const other = fake.chat("private");

    await b.telegram.sendMessage(chat.id, "one");
    const err = await telegramError(b.telegram.sendMessage(chat.id, "two"));
    await b.telegram.sendMessage(other.id, "elsewhere");
    await b.telegram.sendChatAction(chat.id, "typing");

    expect(err.code).toBe(429);
    expect(err.parameters?.retry_after).toBe(1);
    expect(fake.rateLimited).toBe(1);
    expect(fake.messages(chat.id).map((m) => m.text)).toEqual(["one"]);
  });

  it("with enforceLimits allows at most 20 messages a minute in a group", async () => {
    // A manual clock: sends one second apart without waiting 20 s.
    let now = 1_000_000;
    const fake = await startServer({ enforceLimits: true, clock: () => now });
    const b = newBot(fake);
    const group = fake.chat("group");
    for (let i = 0; i < 20; i++) {
      await b.telegram.sendMessage(group.id, `m${i}`);
      now += 1000;
    }
    const err = await telegramError(b.telegram.sendMessage(group.id, "m20"));
    expect(err.code).toBe(429);
    expect(err.parameters?.retry_after).toBeGreaterThan(1);
  });

  it("with enforceLimits allows at most 30 messages a second across all chats", async () => {
    const now = 5_000_000;
    const fake = await startServer({ enforceLimits: true, clock: () => now });
    const b = newBot(fake);
    const chats = Array.from({ length: 31 }, () => fake.chat("private"));
    for (const chat of chats.slice(0, 30)) await b.telegram.sendMessage(chat.id, "hi");
    const last = chats[30];
    if (!last) throw new Error("no chat");

    const err = await telegramError(b.telegram.sendMessage(last.id, "one too many"));

    expect(err.code).toBe(429);
    expect(fake.rateLimited).toBe(1);
  });

  it("accepts application/x-www-form-urlencoded bodies with JSON-encoded reply_markup, validating it the same way", async () => {
    const fake = await startServer();
    const chat = fake.chat("private");
    const post = (body: Record<string, string>) =>
      fetch(`${fake.apiRoot}/bot${fake.token}/sendMessage`, { method: "POST", body: new URLSearchParams(body) });
    const keyboard = (data: string) => JSON.stringify({ inline_keyboard: [[{ text: "Go", callback_data: data }]] });

    const ok = await post({ chat_id: String(chat.id), text: "true", reply_markup: keyboard("go") });
    const bad = await post({ chat_id: String(chat.id), text: "x", reply_markup: keyboard("x".repeat(65)) });

    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ok: true, result: { text: "true", chat: { id: chat.id } } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ ok: false, error_code: 400, description: "Bad Request: BUTTON_DATA_INVALID" });
    expect(fake.messages(chat.id)[0]?.reply_markup?.inline_keyboard?.[0]?.[0]?.callback_data).toBe("go");
  });

  it("with privacyMode hides ordinary group messages but delivers commands and replies to the bot", async () => {
    const fake = await startServer({ privacyMode: true });
    const b = newBot(fake);
    const seen: string[] = [];
    b.on(message("text"), (ctx) => {
      seen.push(ctx.message.text);
    });
    await launch(fake, b);
    const group = fake.chat("group");
    const reader = fake.user();
    const prompt = await b.telegram.sendMessage(group.id, "Your move?", Markup.forceReply());

    fake.sendText(group, reader, "just chatting");
    fake.sendText(group, reader, "/act@inkloom_test_bot run");
    fake.sendText(group, reader, "I run", { replyTo: prompt.message_id });

    await fake.waitFor(() => seen.length >= 2);
    expect(seen).toEqual(["/act@inkloom_test_bot run", "I run"]);
  });

  it("receives sendDocument and sendPhoto as multipart with their file names, bytes and captions", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const chat = fake.chat("private");
    const bytes = Buffer.from("# Chapter 1\r\n--boundary-looking line\r\n\u0000\u00ff binary tail", "latin1");

    const sent = await b.telegram.sendDocument(chat.id, Input.fromBuffer(bytes, "chapter-1.md"), {
      caption: "The whole chapter",
    });
    await b.telegram.sendPhoto(chat.id, Input.fromBuffer(Buffer.from([0xff, 0xd8, 0xff]), "cover.jpg"));

    expect(sent.document.file_name).toBe("chapter-1.md");
    const [doc, photo] = fake.messages(chat.id);
    expect(doc?.document?.file_name).toBe("chapter-1.md");
    expect(doc?.document?.bytes.equals(bytes)).toBe(true);
    expect(doc?.caption).toBe("The whole chapter");
    expect(photo?.photo?.bytes).toEqual(Buffer.from([0xff, 0xd8, 0xff]));

    // Re-sending by file_id reuses the stored file.
    await b.telegram.sendDocument(chat.id, sent.document.file_id);
    expect(fake.messages(chat.id)[2]?.document?.bytes.equals(bytes)).toBe(true);
  });

  it("accepts sendMessageDraft in a private chat and refuses it in a group with 400", async () => {
    const fake = await startServer({ enforceLimits: true });
    const b = newBot(fake);
    const dm = fake.chat("private");
    const group = fake.chat("group");

    await expect(callRaw(b, "sendMessageDraft", { chat_id: dm.id, draft_id: 7, text: "Once upon" })).resolves.toBe(
      true,
    );
    await callRaw(b, "sendMessageDraft", { chat_id: dm.id, draft_id: 7, text: "Once upon a time" });
    const err = await telegramError(callRaw(b, "sendMessageDraft", { chat_id: group.id, draft_id: 7, text: "x" }));
    const zero = await telegramError(callRaw(b, "sendMessageDraft", { chat_id: dm.id, draft_id: 0, text: "x" }));

    expect(err.code).toBe(400);
    expect(zero.code).toBe(400);
    expect(fake.drafts(dm.id).map((d) => d.text)).toEqual(["Once upon", "Once upon a time"]);
    expect(fake.rateLimited).toBe(0);
  });

  it("delivers updates by POST to a webhook with the secret token header, and runs the method in the webhook reply", async () => {
    const fake = await startServer();
    const b = echoBot(fake);
    const secretHeaders: (string | undefined)[] = [];
    const callback = b.webhookCallback("/hook", { secretToken: "s3cret_token" });
    const hookServer = createServer((req, res) => {
      secretHeaders.push(req.headers["x-telegram-bot-api-secret-token"] as string | undefined);
      void callback(req, res);
    });
    webhookServer = hookServer;
    await new Promise<void>((resolve) => hookServer.listen(0, "127.0.0.1", () => resolve()));
    const { port } = hookServer.address() as AddressInfo;
    await b.telegram.setWebhook(`http://127.0.0.1:${port}/hook`, { secret_token: "s3cret_token" });
    const chat = fake.chat("private");
    const reader = fake.user();

    fake.sendText(chat, reader, "by webhook");
    const reply = await fake.waitFor(() => fake.messages(chat.id)[0]);
    // answerCbQuery is sent back in the webhook response body (telegraf's webhookReply).
    const answer = await fake.clickButton(chat, reader, reply.message_id, "next");

    expect(reply.text).toBe("echo: by webhook");
    expect(answer).toEqual({ text: "Chapter 2", show_alert: true });
    expect(fake.calls.find((c) => c.method === "answerCallbackQuery")?.via).toBe("webhook-reply");
    expect(secretHeaders).toEqual(["s3cret_token", "s3cret_token"]);
    expect((await telegramError(b.telegram.callApi("getUpdates", {}))).code).toBe(409);
    expect((await b.telegram.getWebhookInfo()).url).toBe(`http://127.0.0.1:${port}/hook`);
  });

  it("answers 404 to an unknown method, 401 to a wrong token, and 403 after the user blocks the bot", async () => {
    const fake = await startServer();
    const chat = fake.chat("private");

    const unknown = await fetch(`${fake.apiRoot}/bot${fake.token}/sendTelepathy`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ ok: false, error_code: 404, description: "Not Found: method not found" });
    const wrong = await telegramError(
      new Telegraf("1:wrong", { telegram: { apiRoot: fake.apiRoot } }).telegram.getMe(),
    );
    expect(wrong.code).toBe(401);

    const b = newBot(fake);
    expect((await b.telegram.getMe()).username).toBe("inkloom_test_bot");
    fake.blockBot(chat.id);
    const blocked = await telegramError(b.telegram.sendMessage(chat.id, "hi"));
    expect(blocked.code).toBe(403);
    expect(blocked.description).toBe("Forbidden: bot was blocked by the user");
  });

  it("reports configured admins through getChatMember and getChatAdministrators", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const group = fake.chat("supergroup", { title: "Readers" });
    const admin = fake.user();
    const member = fake.user();
    fake.setAdmins(group.id, [admin.id]);

    expect((await b.telegram.getChatMember(group.id, admin.id)).status).toBe("administrator");
    expect((await b.telegram.getChatMember(group.id, member.id)).status).toBe("member");
    expect((await b.telegram.getChatAdministrators(group.id)).map((m) => m.user.id)).toEqual([admin.id]);
    expect(await b.telegram.getChat(group.id)).toMatchObject({ id: group.id, type: "supergroup", title: "Readers" });
  });

  it("attaches a ForceReply answer to the bot's prompt via replyTo", async () => {
    const fake = await startServer();
    const b = newBot(fake);
    const seen: (number | undefined)[] = [];
    b.on(message("text"), (ctx) => {
      seen.push(ctx.message.reply_to_message?.message_id);
    });
    await launch(fake, b);
    const group = fake.chat("group");
    const reader = fake.user();
    const prompt = await b.telegram.sendMessage(group.id, "What does the hero do?", Markup.forceReply());

    fake.sendText(group, reader, "She opens the door", { replyTo: prompt.message_id });

    await fake.waitFor(() => seen.length > 0);
    expect(seen).toEqual([prompt.message_id]);
    expect(fake.messages(group.id)[0]?.reply_markup).toMatchObject({ force_reply: true });
  });
});
