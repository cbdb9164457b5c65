/**
 * Telegram parity for themes (issue 13), below the adapter: who is a chat admin (asked of the
 * fake Bot API, kept a while, retried, timed out), and the owner's catalogue as themes
 * offered in private conversations.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Telegraf, type Telegram } from "telegraf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChatAdmins } from "../../adapters/telegram/chat-admins.ts";
import { type Db, openDatabase } from "../../src/store/db.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { type CatalogueTheme, ThemeService } from "../../src/story/themes.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

describe("ChatAdmins (getChatMember against the fake Bot API)", () => {
  let tg: FakeTelegramServer;
  let telegram: Telegram;
  const logs: string[] = [];

  beforeEach(async () => {
    tg = await FakeTelegramServer.start();
    telegram = new Telegraf(tg.token, { telegram: { apiRoot: tg.apiRoot } }).telegram;
    logs.length = 0;
  });
  afterEach(() => tg.close());

  const memberCalls = () => tg.calls.filter((c) => c.method === "getChatMember");

  it("the creator and administrators are admins, members are not; answers are kept until they expire", async () => {
    let now = 1_000_000;
    const admins = new ChatAdmins(telegram, (m) => logs.push(m), { ttlMs: 60_000, now: () => now });
    const [owner, admin, member] = [tg.user(), tg.user(), tg.user()];
    const group = tg.chat("supergroup");
    tg.setOwner(group.id, owner.id);
    tg.setAdmins(group.id, [admin.id]);
    expect(await admins.isAdmin(group.id, owner.id)).toBe(true);
    expect(await admins.isAdmin(group.id, admin.id)).toBe(true);
    expect(await admins.isAdmin(group.id, member.id)).toBe(false);
    expect(memberCalls()).toHaveLength(3);
    // Promoted meanwhile: the kept answer holds for its minute, then is asked again.
    tg.setAdmins(group.id, [admin.id, member.id]);
    expect(await admins.isAdmin(group.id, member.id)).toBe(false);
    expect(memberCalls()).toHaveLength(3);
    now += 60_001;
    expect(await admins.isAdmin(group.id, member.id)).toBe(true);
    expect(memberCalls()).toHaveLength(4);
  });

  it("concurrent checks of one reader share one call", async () => {
    const admins = new ChatAdmins(telegram, (m) => logs.push(m));
    const admin = tg.user();
    const group = tg.chat("group");
    tg.setAdmins(group.id, [admin.id]);
    const answers = await Promise.all([1, 2, 3, 4].map(() => admins.isAdmin(group.id, admin.id)));
    expect(answers).toEqual([true, true, true, true]);
    expect(memberCalls()).toHaveLength(1);
  });

  it("a passing failure is tried again; a refusal is not; a failed check is not kept", async () => {
    const admins = new ChatAdmins(telegram, (m) => logs.push(m));
    const admin = tg.user();
    const group = tg.chat("group");
    tg.setAdmins(group.id, [admin.id]);
    tg.failNext("getChatMember", { error_code: 429, description: "Too Many Requests: retry after 1", retry_after: 1 });
    expect(await admins.isAdmin(group.id, admin.id)).toBe(true);
    expect(memberCalls().map((c) => c.status)).toEqual([429, 200]);

    const other = tg.user();
    tg.setAdmins(group.id, [admin.id, other.id]);
    tg.failNext("getChatMember", { error_code: 400, description: "Bad Request: chat not found" });
    expect(await admins.isAdmin(group.id, other.id)).toBe(false);
    expect(memberCalls()).toHaveLength(3);
    expect(logs.join("\n")).toContain("admin check failed for user");
    expect(await admins.isAdmin(group.id, other.id)).toBe(true);

    // A 429 asking for a long wait is not waited for.
    const third = tg.user();
    tg.failNext("getChatMember", {
      error_code: 429,
      description: "Too Many Requests: retry after 30",
      retry_after: 30,
    });
    expect(await admins.isAdmin(group.id, third.id)).toBe(false);
  });

  it("a call that hangs times out, is tried again, and then counts as not an admin", async () => {
    let calls = 0;
    const hanging = {
      callApi: (_method: string, _payload: unknown, options?: { signal?: AbortSignal }) => {
        calls++;
        return new Promise((_resolve, reject) => {
          options?.signal?.addEventListener("abort", () => reject(new Error("aborted")));
        });
      },
    } as unknown as Pick<Telegram, "callApi">;
    const admins = new ChatAdmins(hanging, (m) => logs.push(m), { timeoutMs: 50 });
    const started = Date.now();
    expect(await admins.isAdmin(-1, 7)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(calls).toBe(2);
    expect(logs.join("\n")).toContain("getChatMember took over 50 ms");
  });

  it("the fake answers as the Bot API does: creator first among administrators, none in a private chat", async () => {
    const [owner, admin] = [tg.user(), tg.user()];
    const group = tg.chat("supergroup");
    tg.setOwner(group.id, owner.id);
    tg.setAdmins(group.id, [admin.id]);
    const list = await telegram.getChatAdministrators(group.id);
    expect(list.map((m) => [m.user.id, m.status])).toEqual([
      [owner.id, "creator"],
      [admin.id, "administrator"],
    ]);
    expect(list[1]).toMatchObject({ can_manage_topics: true, can_manage_chat: true });
    const dm = tg.chat("private", { user: owner });
    await expect(telegram.getChatAdministrators(dm.id)).rejects.toThrow(/no administrators in the private chat/);
    expect((await telegram.getChatMember(dm.id, owner.id)).status).toBe("member");
  });
});

describe("ThemeService with the owner's catalogue", () => {
  let dir: string;
  let database: TestDatabase;
  let db: Db;
  const group = { platform: "telegram", externalId: "-100" };
  const dm = { platform: "telegram", externalId: "42" };
  const catalogue: CatalogueTheme[] = [
    { name: "Cozy Mystery", description: "tea", rules: "no gore", rating: "general", artStyle: "watercolour" },
    { name: "Noir", description: "rain", rules: "no magic", rating: "teen", artStyle: "charcoal" },
  ];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "inkloom-catalogue-"));
    database = await createTestDatabase(dir);
    db = await openDatabase(database.url);
  });
  afterEach(async () => {
    await db.$disconnect();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("offers the catalogue only where asked (private), after the workspace's own themes", async () => {
    const themes = new ThemeService(db, catalogue);
    await themes.add(dm, { name: "Mine", rules: "my rules" });
    expect((await themes.offered(dm)).map((t) => t.name)).toEqual(["Mine"]);
    const offered = await themes.offered(dm, { catalogue: true });
    expect(offered.map((t) => [t.name, t.source])).toEqual([
      ["Mine", "workspace"],
      ["Cozy Mystery", "catalogue"],
      ["Noir", "catalogue"],
    ]);
    expect((await themes.find(dm, "noir", { catalogue: true })).rules).toBe("no magic");
    await expect(themes.find(group, "Noir")).rejects.toBeInstanceOf(UserFacingError);
    // A catalogue theme's id is found only where the catalogue is offered.
    const noir = offered[2];
    expect(await themes.findById(dm, noir?.id ?? "", { catalogue: true })).toMatchObject({ name: "Noir" });
    expect(await themes.findById(group, noir?.id ?? "")).toBeUndefined();
    // /theme list shows the workspace's own; /theme cannot edit or remove the catalogue's.
    expect((await themes.list(dm)).map((t) => t.name)).toEqual(["Mine"]);
    await expect(themes.remove(dm, "Noir")).rejects.toBeInstanceOf(UserFacingError);
    await expect(themes.edit(dm, "Noir", { rules: "" })).rejects.toBeInstanceOf(UserFacingError);
  });

  it("a workspace theme hides the catalogue's of the same name", async () => {
    const themes = new ThemeService(db, catalogue);
    await themes.add(dm, { name: "noir", rules: "our own noir" });
    const offered = await themes.offered(dm, { catalogue: true });
    expect(offered.map((t) => t.name)).toEqual(["noir", "Cozy Mystery"]);
    expect((await themes.find(dm, "Noir", { catalogue: true })).rules).toBe("our own noir");
  });

  it("the catalogue is written once per process, and brought up to date when the file changed", async () => {
    const first = new ThemeService(db, catalogue);
    const [a, b] = await Promise.all([
      first.offered(dm, { catalogue: true }),
      first.offered(group, { catalogue: true }),
    ]);
    expect(a.map((t) => t.id)).toEqual(b.map((t) => t.id));
    // Another process (or a restart) with an edited file: the same rows, new fields; none doubled.
    const edited = catalogue.map((t) => (t.name === "Noir" ? { ...t, rules: "no magic, no guns" } : t));
    const second = new ThemeService(db, edited);
    const again = await second.offered(dm, { catalogue: true });
    expect(again.map((t) => t.id)).toEqual(a.map((t) => t.id));
    expect(again.find((t) => t.name === "Noir")?.rules).toBe("no magic, no guns");
    expect(await db.theme.count()).toBe(2);
    // Without a catalogue nothing is written.
    const none = new ThemeService(db);
    expect(await none.offered(dm, { catalogue: true })).toEqual([]);
  });
});
