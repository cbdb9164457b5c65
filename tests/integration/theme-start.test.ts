/**
 * /start with themes (issue 13, Telegram parity), in the core: the genre question offers the
 * conversation's themes (and, in a private conversation, the owner's catalogue), as buttons or
 * as a numbered list to type from; picking one starts a story bound by its rules. Real wiring,
 * real SQLite, the fake model; a FakeSurface stands for the platform.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { handleAction, type ReaderAction } from "../../commands/actions.ts";
import { type CommandContext, commandServices, type Session } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

let dir: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
const logs: string[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-theme-start-"));
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const file = join(dir, "themes.json");
  writeFileSync(
    file,
    JSON.stringify({
      themes: [
        { name: "Cozy Mystery", rules: "no gore", artStyle: "watercolour" },
        { name: "Space Opera", rules: "no real-world politics", rating: "teen" },
        { name: "After Dark", rating: "adult" },
      ],
    }),
  );
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: await databases.url(dir, "themestart"),
    THEMES_FILE: file,
  });
  engine = await createEngine(config, (m) => logs.push(m));
});

afterEach(async () => {
  await engine?.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A conversation as an adapter describes it: the terminal (typed answers) by default. */
function room(options: { platform?: string; privateChat?: boolean; ageRestricted?: boolean; buttons?: boolean } = {}) {
  const platform = options.platform ?? "console";
  const conversation = { platform, workspaceId: "w1", id: "c1" };
  const surface = new FakeSurface({
    limits: { maxMessageLength: 4000, minEditIntervalMs: 0 },
    answers: options.buttons === true ? { buttons: true, replies: true } : { buttons: false, replies: false },
  });
  engine.audiences.set(`${platform}:c1`, { surface, locale: "en" });
  const session: Session = {};
  const context = (moderator: boolean): CommandContext => ({
    actor: { platform, id: "u1", name: "Ann" },
    moderator,
    conversation,
    locale: "en",
    surface,
    session,
    ...commandServices(engine),
    ageRestricted: options.ageRestricted ?? false,
    ...(options.privateChat === undefined ? {} : { privateChat: options.privateChat }),
  });
  const act = async (action: ReaderAction, moderator = true) => {
    const result = await handleAction(action, context(moderator), (m) => logs.push(m));
    if (result.outcome.kind === "writing") await result.outcome.ticket.job.finished;
    await engine.queue.onIdle();
    return result;
  };
  const type = (text: string) => act({ kind: "text", text, addressed: true });
  const command = (name: string, text = "", moderator = true) =>
    act({ kind: "command", name, text, addressed: true }, moderator);
  return { surface, session, act, type, command };
}

const prompts = () =>
  model
    .chatRequests()
    .map((r) => JSON.stringify(r.body?.messages ?? []))
    .join("\n");

describe("/start with themes", { timeout: 60_000 }, () => {
  it("typed (the terminal): the catalogue's themes are numbered after the genres; a number or a name picks one", async () => {
    const terminal = room({ privateChat: true, ageRestricted: true });
    await terminal.command("start");
    const question = terminal.surface.prompts.at(-1)?.text ?? "";
    expect(question).toContain("7) none");
    expect(question).toContain("Or a theme: 8) Cozy Mystery  9) Space Opera  10) After Dark");
    await terminal.type("11");
    expect(terminal.surface.notices.at(-1)).toContain("Type a number from 1 to 10");
    await terminal.type("9");
    expect(terminal.surface.prompts.at(-1)?.text).toMatch(/^Theme “Space Opera”\. Describe your scenario/);
    await terminal.type("a smuggler owes the wrong empire");
    const story = await engine.db.story.findFirstOrThrow({ include: { theme: true } });
    expect(story.theme?.name).toBe("Space Opera");
    expect(story.rating).toBe("teen");
    expect(prompts()).toContain("Theme rules (binding; never break them): no real-world politics");

    // By name, case-insensitive.
    await terminal.command("start");
    await terminal.type("cozy mystery");
    expect(terminal.surface.prompts.at(-1)?.text).toContain("Theme “Cozy Mystery”.");
  });

  it("buttons: genres, then one per theme; adult ones left out where they cannot start; none in groups", async () => {
    const dm = room({ platform: "telegram", privateChat: true, buttons: true });
    await dm.command("start");
    const rows = dm.surface.prompts.at(-1)?.rows.flat() ?? [];
    expect(rows.filter((b) => b.action.kind === "genre")).toHaveLength(7);
    expect(rows.filter((b) => b.action.kind === "theme").map((b) => b.label)).toEqual([
      "🎭 Cozy Mystery",
      "🎭 Space Opera",
    ]);
    expect(dm.surface.prompts.at(-1)?.text).toBe("Pick a genre (or “none”), or one of the themes below.");
    const group = room({ platform: "telegram", privateChat: false, buttons: true });
    await group.command("start");
    expect(
      group.surface.prompts
        .at(-1)
        ?.rows.flat()
        .some((b) => b.action.kind === "theme"),
    ).toBe(false);
    expect(group.surface.prompts.at(-1)?.text).toBe("Pick a genre, or “none”.");
  });

  it("/start theme:<name> outside the catalogue's reach is refused and starts nothing", async () => {
    const group = room({ platform: "telegram", privateChat: false });
    await group.act({
      kind: "command",
      name: "start",
      raw: { scenario: "a heist", theme: "Cozy Mystery" },
      addressed: true,
    });
    expect(group.surface.notices.at(-1)).toContain("There is no theme “Cozy Mystery” here");
    expect(await engine.db.story.count()).toBe(0);
  });

  it("/theme typed: a moderator manages the conversation's themes, others are refused", async () => {
    const chat = room({ platform: "telegram", privateChat: false });
    await chat.command("theme", "add name:Gothic rules:no happy endings", false);
    expect(chat.surface.notices.at(-1)).toBe(
      "Only a chat admin can add, edit or remove the themes here. /theme list shows them.",
    );
    await chat.command("theme", "frobnicate name:Gothic");
    expect(chat.surface.notices.at(-1)).toContain("“frobnicate” is not a /theme action");
    await chat.command("theme", `add name:Gothic rules:${"x".repeat(1001)}`);
    expect(chat.surface.notices.at(-1)).toContain("rules is 1001 characters long; the limit is 1000");
    expect(await engine.db.theme.count()).toBe(0);
    await chat.command("theme", "ADD name:Gothic rules:no happy endings rating:teen");
    expect(chat.surface.notices.at(-1)).toBe("Theme “Gothic” saved.");
    await chat.command("theme", "list", false);
    expect(chat.surface.notices.at(-1)).toBe("• Gothic (teen) — —");
    await chat.command("theme", "remove Gothic");
    expect(chat.surface.notices.at(-1)).toBe("Theme “Gothic” removed.");
  });
});
