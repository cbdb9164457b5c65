/**
 * Telegram parity for themes (issue 13): a group's admins manage its themes with /theme as
 * moderators do on Discord, members are refused, and anyone picks a theme at /start; in a
 * private chat /start offers the owner's catalogue (THEMES_FILE) besides the genres.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";
import { queueEnv } from "../helpers/topology.ts";

let model: FakeOpenAiServer;
let tg: FakeTelegramServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let running: TelegramApp[] = [];
const logs: string[] = [];
let queue: Record<string, string>;

async function launch(extra: Record<string, string> = {}): Promise<TelegramApp> {
  const app = await launchTelegramApp({ model, tg }, dbUrl, (m) => logs.push(m), { ...queue, ...extra });
  running.push(app);
  return app;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-tg-themes-"));
  dbUrl = await databases.url(dir, "tgthemes");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  tg = await FakeTelegramServer.start({ privacyMode: true });
  logs.length = 0;
  queue = queueEnv();
});

afterEach(async () => {
  for (const app of running) await stopTelegramApp(app);
  running = [];
  await tg.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

type Msg = ReturnType<FakeTelegramServer["messages"]>[number];
const buttons = (m: Msg | undefined) =>
  (
    m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
  )?.inline_keyboard?.flat() ?? [];
const texts = (chatId: number) => tg.messages(chatId).map((m) => m.text ?? "");
/** Every prompt the story model was sent, as one text. */
const prompts = () =>
  model
    .chatRequests()
    .map((r) => JSON.stringify(r.body?.messages ?? []))
    .join("\n");

describe("Telegram themes, in a group", { timeout: 120_000 }, () => {
  it("an admin adds a theme, a member is refused, and a member starts a story with it", async () => {
    const { engine } = await launch();
    expect(tg.commands().map((c) => c.command)).toContain("theme");
    const owner = tg.user({ first_name: "Olga" });
    const admin = tg.user({ first_name: "Ada" });
    const member = tg.user({ first_name: "Max" });
    const group = tg.chat("supergroup", { title: "Noir club" });
    tg.setOwner(group.id, owner.id);
    tg.setAdmins(group.id, [admin.id]);

    tg.sendText(group, member, "/theme add name:Noir rules:no supernatural powers");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("Only a chat admin can add, edit or remove")));
    expect(await engine.db.theme.count()).toBe(0);

    tg.sendText(
      group,
      admin,
      "/theme add name:Noir description:Rainy streets, hard choices rules:no supernatural powers rating:teen art_style:charcoal",
    );
    await tg.waitFor(() => texts(group.id).includes("Theme “Noir” saved."));
    // The creator is an admin too (getChatMember answers `creator`).
    tg.sendText(group, owner, "/theme edit Noir description:Rain, neon and hard choices");
    await tg.waitFor(() => texts(group.id).filter((t) => t === "Theme “Noir” saved.").length === 2);
    tg.sendText(group, member, "/theme remove Noir");
    await tg.waitFor(
      () => texts(group.id).filter((t) => t.includes("Only a chat admin can add, edit or remove")).length === 2,
    );
    tg.sendText(group, member, "/theme list");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("• Noir (teen) — Rain, neon and hard choices")));
    const theme = await engine.db.theme.findFirstOrThrow({ where: { name: "Noir" } });
    expect(theme).toMatchObject({ rules: "no supernatural powers", rating: "teen", artStyle: "charcoal" });
    // One getChatMember per reader and chat: the answers are kept.
    const checks = tg.calls.filter((c) => c.method === "getChatMember" && c.chatId === group.id);
    expect(checks.length).toBe(3);

    // /start offers the genres and the group's theme; a member picks the theme.
    tg.sendText(group, member, "/start");
    const question = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => buttons(m).some((b) => b.callback_data === `t|${theme.id}`)),
    );
    expect(buttons(question).some((b) => b.callback_data === "g|horror")).toBe(true);
    expect(buttons(question).find((b) => b.callback_data === `t|${theme.id}`)?.text).toBe("🎭 Noir");
    await tg.clickButton(group, member, question.message_id, `t|${theme.id}`);
    const prompt = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => (m.text ?? "").startsWith("Theme “Noir”. Reply to this message")),
    );
    tg.sendText(group, member, "a detective with one last case", { replyTo: prompt.message_id });
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("Chapter 1")), 30_000);
    const story = await engine.db.story.findFirstOrThrow();
    expect(story).toMatchObject({ themeId: theme.id, rating: "teen", artStyle: "charcoal" });
    expect(prompts()).toContain("Theme rules (binding; never break them): no supernatural powers");
  });

  it("an admin check that fails is retried, and one that keeps failing refuses without keeping the answer", async () => {
    const { engine } = await launch();
    const admin = tg.user({ first_name: "Ada" });
    const group = tg.chat("group", { title: "Flaky" });
    tg.setAdmins(group.id, [admin.id]);
    // A passing failure: tried again at once, and the admin gets through.
    tg.failNext("getChatMember", { error_code: 502, description: "Bad Gateway" });
    tg.sendText(group, admin, "/theme add name:Gothic");
    await tg.waitFor(() => texts(group.id).includes("Theme “Gothic” saved."));
    // Failing for good (twice, the retry too): refused, logged, and asked again next time.
    tg.failNext("getChatMember", { error_code: 500, description: "Internal Server Error" });
    tg.failNext("getChatMember", { error_code: 500, description: "Internal Server Error" });
    const other = tg.user({ first_name: "Bea" });
    tg.setAdmins(group.id, [admin.id, other.id]);
    tg.sendText(group, other, "/theme add name:Cyberpunk");
    await tg.waitFor(() => texts(group.id).some((t) => t.includes("Only a chat admin")));
    expect(logs.some((l) => l.includes("admin check failed"))).toBe(true);
    tg.sendText(group, other, "/theme add name:Cyberpunk");
    await tg.waitFor(() => texts(group.id).includes("Theme “Cyberpunk” saved."));
    expect((await engine.db.theme.findMany()).map((t) => t.name).sort()).toEqual(["Cyberpunk", "Gothic"]);
  });
});

describe("Telegram themes, the owner's catalogue", { timeout: 120_000 }, () => {
  it("private /start offers the catalogue's themes besides the genres; one starts a story bound by its rules", async () => {
    const file = join(dir, "themes.json");
    writeFileSync(
      file,
      JSON.stringify({
        themes: [
          {
            name: "Cozy Mystery",
            description: "Small-town puzzles",
            rules: "no gore, the culprit is caught by wit",
            rating: "general",
            artStyle: "soft watercolour",
          },
          { name: "After Dark", rules: "anything goes", rating: "adult" },
        ],
      }),
    );
    const { engine } = await launch({ THEMES_FILE: file });
    const ann = tg.user({ first_name: "Ann" });
    const chat = tg.chat("private", { user: ann });
    tg.sendText(chat, ann, "/start");
    const question = await tg.waitFor(() =>
      tg.messages(chat.id).find((m) => buttons(m).some((b) => b.callback_data?.startsWith("t|"))),
    );
    const labels = buttons(question).map((b) => b.text);
    expect(labels).toContain("🎭 Cozy Mystery");
    // An adult theme cannot start in a Telegram chat: it is not offered.
    expect(labels).not.toContain("🎭 After Dark");
    expect(buttons(question).some((b) => b.callback_data === "g|horror")).toBe(true);
    const cozy = buttons(question).find((b) => b.text === "🎭 Cozy Mystery")?.callback_data ?? "";
    await tg.clickButton(chat, ann, question.message_id, cozy);
    await tg.waitFor(() => texts(chat.id).some((t) => t.startsWith("Theme “Cozy Mystery”.")));
    tg.sendText(chat, ann, "a stolen prize marrow at the village fair");
    await tg.waitFor(() => texts(chat.id).some((t) => t.includes("Chapter 1")), 30_000);
    const story = await engine.db.story.findFirstOrThrow({ include: { theme: true } });
    expect(story.theme?.name).toBe("Cozy Mystery");
    expect(story.artStyle).toBe("soft watercolour");
    expect(prompts()).toContain("Theme rules (binding; never break them): no gore, the culprit is caught by wit");

    // Not offered in groups, and not listed as the group's own themes.
    const group = tg.chat("group", { title: "Fair committee" });
    tg.sendText(group, ann, "/start");
    const groupQuestion = await tg.waitFor(() =>
      tg.messages(group.id).find((m) => buttons(m).some((b) => b.callback_data === "g|horror")),
    );
    expect(buttons(groupQuestion).some((b) => b.callback_data?.startsWith("t|"))).toBe(false);
    // A catalogue button pressed where the catalogue is not offered is stale.
    const forged = await tg.clickButton(group, ann, groupQuestion.message_id, cozy, { allowStale: true });
    expect(forged.show_alert).toBe(true);
  });
});
