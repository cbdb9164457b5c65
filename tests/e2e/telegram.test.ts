import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CONTINUE_MARKER } from "../../src/agent/prompts.ts";
import type { Engine } from "../../src/app/wiring.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { expectExportsHoldPicture } from "../helpers/exports.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let tg: FakeTelegramServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let running: TelegramApp[] = [];
const logs: string[] = [];
/** This test's queue (BullMQ under a fresh prefix in the PostgreSQL pass): every launch shares it. */
let queue: Record<string, string>;

/** The bot as `npm start` runs it (in the PostgreSQL pass: a front, and two workers whose log lines join `logs`). */
async function launch(extra: Record<string, string> = {}): Promise<TelegramApp> {
  const app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), { ...queue, ...extra });
  running.push(app);
  return app;
}

async function shutdown(app: TelegramApp) {
  await stopTelegramApp(app);
  running = running.filter((r) => r !== app);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-tg-"));
  dbUrl = await databases.url(dir, "tg");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ privacyMode: true });
  logs.length = 0;
  queue = queueEnv();
});

afterEach(async () => {
  for (const r of [...running]) await shutdown(r);
  await tg.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/** Each reader's latest rating counted, from `rating` reaction rows oldest first. */
function tallyOf(rows: { data: unknown }[]): { up: number; down: number } {
  const latest = new Map<string, number>();
  for (const row of rows) {
    const { userId, value } = row.data as { userId: string; value: number };
    latest.set(userId, value);
  }
  const values = [...latest.values()];
  return { up: values.filter((v) => v === 1).length, down: values.filter((v) => v === -1).length };
}

type Msg = ReturnType<FakeTelegramServer["messages"]>[number];
const buttons = (m: Msg | undefined) =>
  (
    m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
  )?.inline_keyboard?.flat() ?? [];
/** The latest message offering choices (its buttons pick or vote). */
const offer = (chatId: number, kind: "p" | "v", after = 0) =>
  tg
    .messages(chatId)
    .filter((m) => m.message_id > after && !m.deleted)
    .findLast((m) => buttons(m).some((b) => b.callback_data?.startsWith(`${kind}|`)));
const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text ?? "");

describe("Telegram, private chat", { timeout: 120_000 }, () => {
  it("plays: /start, genre button, scenario, choice button, own action, undo, rewrite, export", async () => {
    const { engine } = await launch();
    expect(tg.commands(undefined, "zh").map((c) => c.command)).toContain("rewrite");
    expect(tg.commands().map((c) => c.command)).toEqual(
      expect.arrayContaining(["start", "stories", "undo", "rewrite", "branch", "recap", "export", "settings", "help"]),
    );
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start");
    const genres = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data === "g|horror")),
    );
    await tg.clickButton(chat, ann, genres.message_id, "g|horror");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Reply to this message with your scenario")));
    tg.sendText(chat, ann, "a lighthouse keeper finds a message in a bottle");
    const first = await tg.waitFor(() => offer(chat.id, "p"));
    expect(texts(chat.id).join("\n")).toMatch(/Cast: /);
    expect(texts(chat.id).some((t) => t.includes("Chapter 1"))).toBe(true);
    expect(tg.messages(chat.id).every((m) => (m.text ?? "").length <= 4096)).toBe(true);
    // The prose streamed into a native draft preview, then arrived as a real, formatted message.
    expect(tg.drafts(chat.id).length).toBeGreaterThan(0);
    const prose = tg.messages(chat.id).find((m) => (m.text ?? "").startsWith("Chapter 1\n"));
    expect(prose?.parse_mode).toBe("HTML");
    expect(tg.calls.filter((c) => c.chatId === chat.id && c.method === "editMessageText" && c.status === 200)).toEqual(
      [],
    );

    const pick = buttons(first)[1];
    await tg.clickButton(chat, ann, first.message_id, pick?.callback_data ?? "");
    const second = await tg.waitFor(() => offer(chat.id, "p", first.message_id));
    // A button pick is the same command as a typed one: the reader's request is counted (quotas).
    const picked = await engine.db.chapter.findFirstOrThrow({ where: { number: 2 } });
    const reader = await engine.db.user.findFirstOrThrow({
      where: { platform: "telegram", externalId: String(ann.id) },
    });
    expect(picked.requestedById).toBe(reader.id);
    const old = tg.messages(chat.id).find((m) => m.message_id === first.message_id);
    expect(old?.text).toContain("Chosen:");
    // The choices are gone; only chapter 1's rating buttons stay.
    expect(buttons(old).map((b) => b.text)).toEqual(["👍", "👎"]);

    tg.sendText(chat, ann, "I light the lantern and climb the stairs");
    const third = await tg.waitFor(() => offer(chat.id, "p", second.message_id));
    expect(texts(chat.id).some((t) => t.includes("I light the lantern and climb the stairs"))).toBe(true);

    tg.sendText(chat, ann, "/undo");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Went back to chapter 2")));
    // Undo shows chapter 2's choices again.
    const again = await tg.waitFor(() => offer(chat.id, "p", third.message_id));
    tg.sendText(chat, ann, "/rewrite make the ending happier");
    await tg.waitFor(() => offer(chat.id, "p", again.message_id));
    expect(texts(chat.id).some((t) => t.includes("make the ending happier"))).toBe(true);

    tg.sendText(chat, ann, "/export");
    const doc = await tg.waitFor(() => tg.messages(chat.id).find((m) => m.document !== undefined));
    expect(doc.document?.file_name).toMatch(/\.md$/);
    expect(doc.document?.bytes.toString("utf8")).toContain("make the ending happier");
  });

  it("bad input gets a clear reply and changes nothing", async () => {
    const { engine } = await launch();
    const bob = tg.user({ first_name: "Bob" });
    const chat = tg.chat("private", { user: bob });
    tg.sendText(chat, bob, "/frobnicate");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Unknown command /frobnicate")));
    tg.sendSticker(chat, bob);
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("I can only read text")));
    tg.sendText(chat, bob, "x".repeat(10_000));
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("10000 characters long")));
    tg.sendText(chat, bob, "hello there");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("There is no story in progress")));
    expect(await engine.db.story.count()).toBe(0);

    tg.sendText(chat, bob, "/start a clockwork city under the sea");
    const first = await tg.waitFor(() => offer(chat.id, "p"));
    const forged = await tg.clickButton(chat, bob, first.message_id, "p|nosuchstory|1|1", { allowStale: true });
    expect(forged.show_alert).toBe(true);
    const garbage = await tg.clickButton(chat, bob, first.message_id, "zzz", { allowStale: true });
    expect(garbage.show_alert).toBe(true);
    expect(await engine.db.chapter.count()).toBe(1);
  });

  it("a 429 on an edit is waited out and the chapter still arrives whole", async () => {
    await launch();
    // A group: its chapter streams by edits (private chats use drafts).
    const cy = tg.user({ first_name: "Cy" });
    const chat = tg.chat("group", { title: "Commuters" });
    tg.failNext("editMessageText", {
      error_code: 429,
      description: "Too Many Requests: retry after 1",
      retry_after: 1,
    });
    tg.sendText(chat, cy, "/start a train that never stops");
    await tg.waitFor(() => offer(chat.id, "v"), 15_000);
    expect(tg.calls.some((c) => c.method === "editMessageText" && c.status === 429)).toBe(true);
    expect(logs.filter((l) => l.includes("failed"))).toEqual([]);
  });
});

describe("Telegram, webhook mode", { timeout: 60_000 }, () => {
  it("receives updates by webhook, with the secret token, instead of polling", async () => {
    const port = await freePort();
    await launch({
      TELEGRAM_WEBHOOK_URL: `https://127.0.0.1:${port}/telegram`,
      TELEGRAM_WEBHOOK_PORT: String(port),
      TELEGRAM_WEBHOOK_SECRET: "s3cret",
    });
    expect(tg.webhookUrl).toBe(`https://127.0.0.1:${port}/telegram`);
    const hal = tg.user({ first_name: "Hal" });
    const chat = tg.chat("private", { user: hal });
    tg.sendText(chat, hal, "/help");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("/rewrite")));
    expect(tg.calls.some((c) => c.method === "getUpdates")).toBe(false);
  });
});

describe("Telegram, chat state", { timeout: 120_000 }, () => {
  it("a stream cut mid-chapter continues in the same message: one copy, the choices once", async () => {
    await launch();
    const cy = tg.user({ first_name: "Cy" });
    const chat = tg.chat("group", { title: "Night shift" });
    const story = storyResponder();
    let cut = true;
    model.setResponder(async (req) => {
      const reply = await story(req);
      if (cut && req.body?.stream === true && reply.kind === "text" && !Array.isArray(req.body?.tools)) {
        cut = false;
        return { kind: "cut", text: reply.text.slice(0, 60), chunkSize: 12 };
      }
      return reply;
    });
    tg.sendText(chat, cy, "/start a ferry lost in fog");
    await tg.waitFor(() => offer(chat.id, "v"), 15_000);
    const chapters = tg.messages(chat.id).filter((m) => (m.text ?? "").startsWith("Chapter 1\n"));
    expect(chapters).toHaveLength(1);
    const text = chapters[0]?.text ?? "";
    // The cut text and what followed it, once, in order, in the one message.
    expect(text.split("The rain began before anyone noticed").length).toBe(2);
    expect(text).toContain("did not want to give her.");
    expect(text).not.toContain("(interrupted)");
    expect(tg.messages(chat.id).filter((m) => buttons(m).some((b) => b.callback_data?.startsWith("v|")))).toHaveLength(
      1,
    );
    expect(model.requests.some((r) => JSON.stringify(r.body?.messages ?? []).includes(CONTINUE_MARKER))).toBe(true);
  });

  it("a chapter stopped by a shutdown resumes after the restart in the same draft: one message, the choices once", async () => {
    // SIGTERM's grace is over at once: the chapter stops where it is.
    const first = await launch({ SHUTDOWN_GRACE_SECONDS: "0" });
    const dee = tg.user({ first_name: "Dee" });
    const chat = tg.chat("private", { user: dee });
    const story = storyResponder();
    model.setResponder(async (req) => {
      const reply = await story(req);
      const prose = req.body?.stream === true && !Array.isArray(req.body?.tools) && reply.kind === "text";
      return prose ? { ...reply, chunkSize: 8, chunkDelayMs: 40 } : reply;
    });
    tg.sendText(chat, dee, "/start a ferry lost in fog");
    await tg.waitFor(() => tg.drafts(chat.id).some((d) => d.text.includes("Mara pulled")), 15_000);
    // The process writing it (this one, or the workers in the PostgreSQL pass) is stopped.
    if (queue.REDIS_URL === undefined) await first.engine.queue.close({ graceMs: 0 });
    await shutdown(first);
    const row = await (async () => {
      const second = await launch();
      await second.engine.resume();
      await tg.waitFor(() => offer(chat.id, "p"), 15_000);
      return second.engine.db.chapter.findFirstOrThrow();
    })();
    expect(row.status).toBe("done");
    const chapters = tg.messages(chat.id).filter((m) => (m.text ?? "").startsWith("Chapter 1\n"));
    expect(chapters).toHaveLength(1);
    expect(chapters[0]?.text?.split("Mara pulled her grey coat").length).toBe(2);
    expect(chapters[0]?.text).toContain("did not want to give her.");
    expect(tg.messages(chat.id).filter((m) => buttons(m).some((b) => b.callback_data?.startsWith("p|")))).toHaveLength(
      1,
    );
    expect(logs.some((l) => l.includes("stopped for shutdown"))).toBe(true);
    // One process resumes it at start-up; among workers, BullMQ hands the job that was given back to the next.
    if (queue.REDIS_URL === undefined) {
      expect(logs.some((l) => l.includes("resuming 1 chapter(s)"))).toBe(true);
    }
  });

  it("a chapter whose stream and every continuation are cut is not saved; its retry button writes it again", async () => {
    const { engine } = await launch();
    const gus = tg.user({ first_name: "Gus" });
    const chat = tg.chat("private", { user: gus });
    const story = storyResponder();
    let cut = true;
    model.setResponder((req) => {
      // The prose and each attempt to continue it break after a few words.
      if (cut && req.body?.stream === true && !Array.isArray(req.body?.tools)) {
        return { kind: "cut", text: "The fog rolled in and", chunkSize: 6 };
      }
      return story(req);
    });
    tg.sendText(chat, gus, "/start a ferry lost in fog");
    const failed = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data?.startsWith("r|"))),
    );
    expect(failed.text).toContain("broke mid-chapter");
    expect((await engine.db.chapter.findFirstOrThrow()).status).toBe("failed");
    const continuations = model.requests.filter((r) =>
      JSON.stringify(r.body?.messages ?? []).includes(CONTINUE_MARKER),
    );
    expect(continuations.length).toBeGreaterThan(0);
    cut = false;
    await tg.clickButton(chat, gus, failed.message_id, buttons(failed)[0]?.callback_data ?? "");
    // The button answers as /retry does.
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Trying chapter 1 again")));
    await tg.waitFor(() => offer(chat.id, "p"));
    expect((await engine.db.chapter.findFirstOrThrow()).status).toBe("done");
  });

  it("typing the scenario instead of pressing a genre button starts the story", async () => {
    await launch();
    const ivy = tg.user({ first_name: "Ivy" });
    const chat = tg.chat("private", { user: ivy });
    tg.sendText(chat, ivy, "/start");
    await tg.waitFor(() => tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data === "g|none")));
    tg.sendText(chat, ivy, "a cartographer who maps dreams");
    await tg.waitFor(() => offer(chat.id, "p"));
  });

  it("a message while a chapter is being written is answered and changes nothing", async () => {
    const { engine } = await launch();
    const dee = tg.user({ first_name: "Dee" });
    const chat = tg.chat("private", { user: dee });
    tg.sendText(chat, dee, "/start a lighthouse at the end of the world");
    tg.sendText(chat, dee, "I run down the stairs");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("A chapter is still being written")));
    await tg.waitFor(() => offer(chat.id, "p"));
    expect(await engine.db.chapter.count()).toBe(1);
  });

  it("settings: members may look, only admins may change; the language switches the interface", async () => {
    await launch();
    const [admin, member] = [tg.user({ first_name: "Ada" }), tg.user({ first_name: "Max" })];
    const group = tg.chat("group", { title: "Salon" });
    tg.setAdmins(group.id, [admin.id]);
    tg.sendText(group, member, "/settings votes 30");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("Only a chat admin can change the settings")));
    tg.sendText(group, admin, "/settings votes 30");
    await tg.waitFor(() => texts(group.id).includes("Saved."));
    tg.sendText(group, member, "/settings");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("vote window: 30 s")));
    // No IMAGE_MODEL in this launch: the switch is on, but the settings say nothing will be drawn.
    expect(texts(group.id).some((t) => t.includes("illustrations: on, but no IMAGE_MODEL is set (1 per chapter"))).toBe(
      true,
    );
    tg.sendText(group, admin, "/settings language zh");
    await tg.waitFor(() => texts(group.id).filter((t) => t === "Saved.").length === 2);
    tg.sendText(group, member, "/frobnicate@some_other_bot");
    tg.sendText(group, member, "/frobnicate");
    tg.sendText(group, member, "/frobnicate@inkloom_test_bot");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("未知命令 /frobnicate")));
    // Other bots' commands, and unknown commands not addressed to us, are left alone in groups.
    expect(texts(group.id).filter((t) => t.includes("未知命令"))).toHaveLength(1);
  });

  it("a chat that blocked the bot pauses without disturbing other chats", async () => {
    await launch();
    const [eve, fay] = [tg.user({ first_name: "Eve" }), tg.user({ first_name: "Fay" })];
    const [a, b] = [tg.chat("private", { user: eve }), tg.chat("private", { user: fay })];
    tg.blockBot(a.id);
    tg.sendText(a, eve, "/start a story nobody will read");
    tg.sendText(b, fay, "/start a story somebody will read");
    await tg.waitFor(() => offer(b.id, "p"));
    await tg.waitFor(() => logs.some((l) => l.includes(`telegram chat ${a.id} blocked the bot`)));
    expect(tg.messages(a.id)).toEqual([]);
  });
});

/** A group of three readers whose story is at its first ballot. */
async function bookClub() {
  const [ann, bea, cal] = [
    tg.user({ first_name: "Ann" }),
    tg.user({ first_name: "Bea" }),
    tg.user({ first_name: "Cal" }),
  ];
  const group = tg.chat("group", { title: "Book club" });
  tg.sendText(group, ann, "/start a heist on a night train");
  const ballot = await tg.waitFor(() => offer(group.id, "v"));
  return { ann, bea, cal, group, ballot };
}

describe("Telegram, group vote", { timeout: 120_000 }, () => {
  it("three members vote, the starter closes early, the winner's chapter follows", async () => {
    await launch();
    const { ann, bea, cal, group, ballot } = await bookClub();
    // Groups have no drafts: the chapter streamed by editing a message.
    expect(tg.calls.some((c) => c.chatId === group.id && c.method === "editMessageText")).toBe(true);
    const votes = buttons(ballot).filter((b) => b.callback_data?.startsWith("v|"));
    expect(votes.length).toBeGreaterThanOrEqual(2);
    const second = votes[1]?.callback_data ?? "";
    expect((await tg.clickButton(group, ann, ballot.message_id, second)).text).toMatch(/^Your vote: /);
    await tg.clickButton(group, bea, ballot.message_id, second);
    await tg.clickButton(group, cal, ballot.message_id, votes[0]?.callback_data ?? "");
    await tg.waitFor(() =>
      buttons(tg.messages(group.id).find((m) => m.message_id === ballot.message_id)).some((b) =>
        b.text.endsWith("· 2"),
      ),
    );

    tg.sendText(group, bea, "/undo");
    await tg.waitFor(() =>
      texts(group.id).some((t) => t.includes("Only the reader who started this story or a moderator can do that")),
    );
    const close = buttons(ballot).find((b) => b.callback_data?.startsWith("x|"))?.callback_data ?? "";
    const refused = await tg.clickButton(group, bea, ballot.message_id, close);
    expect(refused.show_alert).toBe(true);
    expect(refused.text).toContain("Only the reader who started this story");
    await tg.clickButton(group, ann, ballot.message_id, close);
    await tg.waitFor(() =>
      texts(group.id).some((t) => t.includes("The readers chose:") && t.includes("(2 of 3 votes)")),
    );
    await tg.waitFor(() => offer(group.id, "v", ballot.message_id));
  });

  it("in privacy mode the scenario and a write-in come as replies to the bot's prompts", async () => {
    await launch();
    const [ann, bea] = [tg.user({ first_name: "Ann" }), tg.user({ first_name: "Bea" })];
    const group = tg.chat("group", { title: "Quiet readers" });
    tg.sendText(group, ann, "/start");
    const genres = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => buttons(m).some((b) => b.callback_data === "g|none")),
    );
    await tg.clickButton(group, ann, genres.message_id, "g|none");
    const prompt = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => (m.text ?? "").includes("Reply to this message with your scenario")),
    );
    tg.sendText(group, ann, "a lighthouse that moves at night", { replyTo: prompt.message_id });
    const ballot = await tg.waitFor(() => offer(group.id, "v"));

    const suggest = buttons(ballot).find((b) => b.callback_data?.startsWith("w|"))?.callback_data ?? "";
    await tg.clickButton(group, bea, ballot.message_id, suggest);
    const ask = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => (m.text ?? "").startsWith("Reply to this message with what should happen")),
    );
    tg.sendText(group, bea, "Follow the light into the sea", { replyTo: ask.message_id });
    await tg.waitFor(() => texts(group.id).includes("Added to the ballot: Follow the light into the sea"));
    const updated = await tg.waitFor(() =>
      buttons(tg.messages(group.id).find((m) => m.message_id === ballot.message_id)).find((b) =>
        b.text.includes("Follow the light into the sea · 1"),
      ),
    );
    expect(updated.callback_data).toMatch(/^v\|/);
  });

  it("a button from before a restart still works while its vote is open", async () => {
    const first = await launch();
    const [ann, bea] = [tg.user({ first_name: "Ann" }), tg.user({ first_name: "Bea" })];
    const group = tg.chat("group", { title: "Night readers" });
    tg.sendText(group, ann, "/start a haunted observatory");
    const ballot = await tg.waitFor(() => offer(group.id, "v"));
    await shutdown(first);

    await launch();
    const vote = buttons(ballot).find((b) => b.callback_data?.startsWith("v|"))?.callback_data ?? "";
    expect((await tg.clickButton(group, bea, ballot.message_id, vote)).text).toMatch(/^Your vote: /);
    const close = buttons(ballot).find((b) => b.callback_data?.startsWith("x|"))?.callback_data ?? "";
    await tg.clickButton(group, ann, ballot.message_id, close);
    await tg.waitFor(() => offer(group.id, "v", ballot.message_id));
  });
});

describe("Telegram, chapter ratings", { timeout: 120_000 }, () => {
  const ratingRow = (m: Msg | undefined) =>
    (
      m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
    )?.inline_keyboard?.find((row) => row.some((b) => /^[ud]\|/.test(b.callback_data ?? "")));
  const ratings = (engine: Engine) =>
    engine.db.reaction.findMany({ where: { kind: "rating" }, orderBy: { createdAt: "asc" } });

  it("members rate chapter 1 under its ballot; a reader's latest rating counts; other chats are refused", async () => {
    const { engine } = await launch();
    const { ann, bea, cal, group, ballot } = await bookClub();
    const chapter = await engine.db.chapter.findFirstOrThrow({ where: { number: 1 } });
    const row = ratingRow(ballot);
    expect(row?.map((b) => [b.text, b.callback_data])).toEqual([
      ["👍", `u|${chapter.id}`],
      ["👎", `d|${chapter.id}`],
    ]);
    // The rating row comes last, under the choices and the ballot's controls.
    expect(buttons(ballot).at(-1)?.text).toBe("👎");
    const [up, down] = [`u|${chapter.id}`, `d|${chapter.id}`];
    const editsBefore = tg.calls.filter((c) => c.method === "editMessageText").length;

    const first = await tg.clickButton(group, ann, ballot.message_id, up);
    expect(first).toMatchObject({ text: "Thanks for rating this chapter: 👍 1 · 👎 0" });
    expect(first.show_alert).not.toBe(true);
    const changed = await tg.clickButton(group, ann, ballot.message_id, down);
    expect(changed.text).toBe("Thanks for rating this chapter: 👍 0 · 👎 1");
    const other = await tg.clickButton(group, bea, ballot.message_id, up);
    expect(other.text).toBe("Thanks for rating this chapter: 👍 1 · 👎 1");

    const rows = await ratings(engine);
    expect(rows.map((r) => [r.chapterId, (r.data as { value: number }).value])).toEqual([
      [chapter.id, 1],
      [chapter.id, -1],
      [chapter.id, 1],
    ]);
    expect(tallyOf(rows)).toEqual({ up: 1, down: 1 });
    // No live counts: a rating never edits the message.
    expect(tg.calls.filter((c) => c.method === "editMessageText").length).toBe(editsBefore);

    // The same chapter's button pressed in another chat (forged there) is refused.
    const elsewhere = tg.chat("private", { user: cal });
    tg.sendText(elsewhere, cal, "/start a lighthouse keeper finds a message in a bottle");
    const theirs = await tg.waitFor(() => offer(elsewhere.id, "p"));
    const refused = await tg.clickButton(elsewhere, cal, theirs.message_id, up, { allowStale: true });
    expect(refused.show_alert).toBe(true);
    expect(refused.text).toBe("This belongs to someone else's story.");
    const forged = await tg.clickButton(group, bea, ballot.message_id, `u|${chapter.id}|1`, { allowStale: true });
    expect(forged.show_alert).toBe(true);
    expect(await ratings(engine)).toHaveLength(3);

    // The vote closes: the choices go, the rating row stays and still counts.
    const vote = buttons(ballot).find((b) => b.callback_data?.startsWith("v|"))?.callback_data ?? "";
    await tg.clickButton(group, bea, ballot.message_id, vote);
    const close = buttons(ballot).find((b) => b.callback_data?.startsWith("x|"))?.callback_data ?? "";
    await tg.clickButton(group, ann, ballot.message_id, close);
    const closed = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => m.message_id === ballot.message_id && m.text.startsWith("The readers chose:")),
    );
    expect(buttons(closed).map((b) => b.callback_data)).toEqual([up, down]);
    expect((await tg.clickButton(group, cal, ballot.message_id, up)).text).toBe(
      "Thanks for rating this chapter: 👍 2 · 👎 1",
    );
  });

  it("the rating row stays after a private pick and still works after a restart", async () => {
    const first = await launch();
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start a cartographer who maps dreams");
    const choices = await tg.waitFor(() => offer(chat.id, "p"));
    const chapter = await first.engine.db.chapter.findFirstOrThrow({ where: { number: 1 } });
    expect(ratingRow(choices)?.map((b) => b.callback_data)).toEqual([`u|${chapter.id}`, `d|${chapter.id}`]);

    const pick = buttons(choices).find((b) => b.callback_data?.startsWith("p|"))?.callback_data ?? "";
    await tg.clickButton(chat, ann, choices.message_id, pick);
    const next = await tg.waitFor(() => offer(chat.id, "p", choices.message_id));
    const taken = tg.messages(chat.id).find((m) => m.message_id === choices.message_id);
    expect(taken?.text).toContain("Chosen:");
    expect(buttons(taken).map((b) => [b.text, b.callback_data])).toEqual([
      ["👍", `u|${chapter.id}`],
      ["👎", `d|${chapter.id}`],
    ]);
    // Chapter 2's choices rate chapter 2.
    const second = await first.engine.db.chapter.findFirstOrThrow({ where: { number: 2 } });
    expect(ratingRow(next)?.map((b) => b.callback_data)).toEqual([`u|${second.id}`, `d|${second.id}`]);
    await shutdown(first);

    const { engine } = await launch();
    const answer = await tg.clickButton(chat, ann, choices.message_id, `d|${chapter.id}`);
    expect(answer.text).toBe("Thanks for rating this chapter: 👍 0 · 👎 1");
    expect(await ratings(engine)).toMatchObject([{ chapterId: chapter.id }]);
  });
});

describe("Telegram, illustrations", { timeout: 60_000 }, () => {
  const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const illustrated = () =>
    launch({ IMAGE_MODEL: "fake-image", IMAGE_DIR: join(dir, "images"), ILLUSTRATE_COOLDOWN_SECONDS: "0" });
  const photos = (chatId: number) => tg.messages(chatId).filter((m) => m.photo !== undefined);
  // /images/edits is multipart: form encoding sends a field's line breaks as CRLF.
  const prompts = () => model.imageRequests().map((r) => String(r.body?.prompt ?? "").replace(/\r\n/g, "\n"));
  const mara = (p: string) => p.split("\n").find((l) => l.startsWith("- Mara Quill: "));

  async function begin(scenario: string) {
    const reader = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: reader });
    tg.sendText(chat, reader, `/start ${scenario}`);
    const choices = await tg.waitFor(() => offer(chat.id, "p"));
    return { reader, chat, choices };
  }

  it("chapter 1's picture follows its prose as a reply, without holding back the choices", async () => {
    await illustrated();
    // Pictures are held until released: the chapter must not wait for them.
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    model.setImageResponder(async () => {
      await held;
      return { kind: "image" };
    });
    const { chat, choices } = await begin("a lighthouse keeper finds a message in a bottle");
    // The choices are out while the picture is still being drawn.
    await tg.waitFor(() => model.imageRequests().length === 1);
    expect(photos(chat.id)).toEqual([]);
    release();
    const photo = await tg.waitFor(() => photos(chat.id)[0]);
    const prose = tg.messages(chat.id).filter((m) => m.text.startsWith("Chapter 1\n"));
    expect(prose).toHaveLength(1);
    const passage = prose[0]?.message_id ?? 0;
    expect(choices.message_id).toBeGreaterThan(passage);
    expect(photo.message_id).toBeGreaterThan(choices.message_id);
    expect(photo.reply_to_message_id).toBe(passage);
    expect(photo.caption).toMatch(/^Chapter 1: /);
    expect([...(photo.photo?.bytes.subarray(0, 8) ?? [])]).toEqual(PNG);
    expect(model.imageRequests()).toHaveLength(1);
    expect(tg.calls.filter((c) => c.chatId === chat.id && c.method === "sendPhoto" && c.status === 200)).toHaveLength(
      1,
    );
  });

  it("/illustrate draws the reader's scene; /character changes the look from the next picture on", async () => {
    await illustrated();
    const { reader, chat, choices } = await begin("a harbour mystery");
    await tg.waitFor(() => photos(chat.id).length === 1);
    tg.sendText(chat, reader, "/illustrate Mara on the pier at dawn");
    await tg.waitFor(() => texts(chat.id).some((t) => t.startsWith("Drawing it")));
    const second = await tg.waitFor(() => photos(chat.id)[1]);
    expect([...(second.photo?.bytes.subarray(0, 8) ?? [])]).toEqual(PNG);
    expect(prompts().at(-1)).toContain("Mara on the pier at dawn");

    tg.sendText(chat, reader, "/character Mara: long red hair, green cloak");
    await tg.waitFor(() =>
      texts(chat.id).some((t) => t.includes("From now on Mara Quill is drawn as: long red hair, green cloak")),
    );
    const before = prompts();
    expect(before).toHaveLength(2);
    // Every picture of her so far described her the same way.
    expect(before.map(mara)).toEqual([
      "- Mara Quill: short black hair, grey coat, silver ring",
      "- Mara Quill: short black hair, grey coat, silver ring",
    ]);

    await tg.clickButton(chat, reader, choices.message_id, buttons(choices)[0]?.callback_data ?? "");
    await tg.waitFor(() => offer(chat.id, "p", choices.message_id));
    const third = await tg.waitFor(() => photos(chat.id)[2]);
    expect(third.caption).toMatch(/^Chapter 2: /);
    expect(prompts()).toHaveLength(3);
    expect(mara(prompts()[2] ?? "")).toBe("- Mara Quill: long red hair, green cloak");
    // Her old portrait shows the old look: the new one is drawn from the prompt alone.
    expect(model.imageRequests()[2]?.path).toBe("/images/generations");
  });

  it("a failing image endpoint leaves the story going, with a short notice and no photo", async () => {
    await illustrated();
    model.setImageResponder(() => ({ kind: "error", status: 500 }));
    const { chat } = await begin("a ferry lost in fog");
    const notice = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => m.text.startsWith("Illustration unavailable: ")),
    );
    expect(notice.text).toContain("The story goes on without it.");
    expect(texts(chat.id).some((t) => t.startsWith("Chapter 1\n"))).toBe(true);
    expect(model.imageRequests().length).toBeGreaterThan(0);
    expect(photos(chat.id)).toEqual([]);
    expect(tg.calls.some((c) => c.method === "sendPhoto" || c.method === "sendDocument")).toBe(false);
  });

  it("/export sends a Markdown zip and an EPUB holding the posted picture", async () => {
    await illustrated();
    const { reader, chat } = await begin("a cartographer who maps dreams");
    const photo = await tg.waitFor(() => photos(chat.id)[0]);
    tg.sendText(chat, reader, "/export");
    const docs = await tg.waitFor(() => {
      const found = tg.messages(chat.id).filter((m) => m.document !== undefined);
      return found.length === 2 && found;
    });
    const [zip, epub] = docs.map((d) => d.document);
    expect(zip?.file_name).toMatch(/\.zip$/);
    expect(epub?.file_name).toMatch(/\.epub$/);
    expectExportsHoldPicture(
      new Uint8Array(zip?.bytes ?? []),
      new Uint8Array(epub?.bytes ?? []),
      photo.photo?.bytes ?? Buffer.alloc(0),
    );
  });
});
