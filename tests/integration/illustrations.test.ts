/**
 * Illustrations end to end inside the engine: real wiring (createEngine), real SQLite,
 * the real openai SDK against the fake's images API, a FakeSurface as the conversation.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { character } from "../../commands/character.ts";
import { dispatch } from "../../commands/dispatch.ts";
import { exportStory } from "../../commands/export.ts";
import { illustrate } from "../../commands/illustrate.ts";
import type { Command, CommandContext, CommandSpec } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { bookToEpub, bookToMarkdownZip } from "../../src/story/book.ts";
import { enqueueIllustrations } from "../../src/story/illustration-job.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeRequest } from "../fakes/fake-openai-types.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { queueEnv } from "../helpers/topology.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const conversation = { platform: "console", workspaceId: "local", id: "c1" };
const PNG = [0x89, 0x50, 0x4e, 0x47];

let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
let model: FakeOpenAiServer;
let engine: Engine;
let surface: FakeSurface;
const logs: string[] = [];

async function launch(env: Record<string, string> = {}) {
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: dbUrl,
    IMAGE_MODEL: "fake-image",
    IMAGE_DIR: join(dir, "images"),
    IMAGE_TIMEOUT_MS: "2000",
    ILLUSTRATE_COOLDOWN_SECONDS: "0",
    ...env,
  });
  engine = await createEngine(config, (m) => logs.push(m));
  engine.audiences.set("console:c1", { surface, locale: "en" });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-ill-"));
  dbUrl = await databases.url(dir, "ill");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
  logs.length = 0;
});

afterEach(async () => {
  await engine?.close();
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<string> {
  const ticket = await engine.stories.start({ actor, conversation, premise: "A harbour mystery", genre: "horror" });
  await ticket.job.finished;
  await engine.queue.onIdle();
  return ticket.storyId;
}

async function next(storyId: string, position = 1): Promise<void> {
  const { revision } = await engine.queries.state(storyId);
  await (await engine.stories.choose(storyId, revision, position, actor)).job.finished;
  await engine.queue.onIdle();
}

const imagePrompts = (): string[] =>
  model
    .imageRequests()
    .map((r: FakeRequest) => String(r.body?.prompt ?? ""))
    .filter((p) => p !== "");

function context(storyId: string, requestId: string, moderator = true): CommandContext {
  return {
    actor,
    moderator,
    conversation,
    locale: "en",
    surface,
    session: { storyId },
    ...commandServices(engine),
    requestId,
    ageRestricted: false,
  };
}

const run = (command: unknown, raw: Record<string, unknown>, ctx: CommandContext) =>
  dispatch(command as Command<CommandSpec>, raw, ctx, (m) => logs.push(m));

describe("illustrations", { timeout: 60_000 }, () => {
  it("chapter 1 gets a picture, posted after its text as a reply to it, stored with its prompt and model", async () => {
    await launch();
    const storyId = await start();
    expect(surface.images).toHaveLength(1);
    const image = surface.images[0];
    expect([...(image?.bytes.subarray(0, 4) ?? [])]).toEqual(PNG);
    expect(image?.mime).toBe("image/png");
    expect(image?.caption).toMatch(/^Chapter 1: /);
    // After the text: the image call comes after the last post of the chapter, and replies to it.
    const kinds = surface.calls.map((c) => c.kind);
    expect(kinds.indexOf("postImage")).toBeGreaterThan(kinds.lastIndexOf("post"));
    const lastPost = surface.callsOf("post").at(-1);
    expect(image?.replyTo?.id).toBe(lastPost?.ref?.id);
    const row = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    expect(row).toMatchObject({ status: "done", model: "fake-image", source: "auto", mime: "image/png" });
    expect(row.prompt).toContain("Art style: dark ink wash, heavy shadows.");
    // The scene line was written by the `illustrate` task, recorded as an agent run of the chapter.
    expect(row.prompt).toMatch(/^Scene: .+, wide shot, soft evening light$/m);
    const described = await engine.db.agentRun.findFirstOrThrow({ where: { task: "illustrate" } });
    expect(described).toMatchObject({ storyId, chapterId: row.chapterId, status: "ok", method: "cot" });
    expect(row.messageRef).not.toBe("");
    expect(image?.path !== undefined && existsSync(image.path)).toBe(true);
    expect(readFileSync(image?.path ?? "")).toEqual(Buffer.from(image?.bytes ?? []));
  });

  it("two pictures of the same character carry the same appearance text; the first portrait is the reference", async () => {
    await launch();
    const storyId = await start();
    await next(storyId);
    const prompts = imagePrompts();
    expect(prompts).toHaveLength(2);
    const line = "- Mara Quill: short black hair, grey coat, silver ring";
    for (const p of prompts) {
      expect(p).toContain(line);
      expect(p).toContain("- Elias Wren: tall, round spectacles, dark blue scarf");
    }
    // The second picture was drawn from the first one (images.edit with the stored portrait).
    const requests = model.imageRequests();
    expect(requests[0]?.path).toBe("/images/generations");
    expect(requests[1]?.path).toBe("/images/edits");
    const first = surface.images[0]?.bytes ?? new Uint8Array();
    const uploaded = (requests[1]?.body?.images ?? []) as { bytes: Buffer }[];
    expect(uploaded.some((u) => Buffer.compare(u.bytes, Buffer.from(first)) === 0)).toBe(true);
    const rows = await engine.db.illustration.findMany({ where: { storyId }, orderBy: { createdAt: "asc" } });
    expect(rows.map((r) => r.referenced)).toEqual([false, true]);
  });

  it("/character changes how a character is drawn from the next picture on", async () => {
    await launch();
    const storyId = await start();
    const ctx = context(storyId, "r1");
    expect((await run(character, { name: "Mara", appearance: "long red hair, green cloak" }, ctx)).kind).toBe("done");
    expect(surface.notices.at(-1)).toContain("Mara Quill is drawn as: long red hair, green cloak");
    await next(storyId);
    expect(imagePrompts().at(-1)).toContain("- Mara Quill: long red hair, green cloak");
    // Her old portrait no longer matches: the new look starts from the prompt alone.
    expect(model.imageRequests().at(-1)?.path).toBe("/images/generations");
    await run(character, { name: "Nobody", appearance: "x" }, ctx);
    expect(surface.notices.at(-1)).toContain("There is no character “Nobody”");
    await run(character, {}, ctx);
    expect(surface.notices.at(-1)).toContain("Art style: dark ink wash");
    expect(surface.notices.at(-1)).toContain("• Elias Wren: tall, round spectacles, dark blue scarf");
  });

  it("budgets hold: per chapter, per day, and the /illustrate cooldown", async () => {
    await launch({ IMAGES_PER_DAY: "2", ILLUSTRATE_COOLDOWN_SECONDS: "3600" });
    const storyId = await start();
    // Chapter 1 and /illustrate use the day's two pictures.
    expect((await run(illustrate, { what: "the lighthouse at night" }, context(storyId, "a"))).kind).toBe("done");
    await engine.queue.onIdle();
    expect(surface.images).toHaveLength(2);
    expect(imagePrompts().at(-1)).toContain("Scene: the lighthouse at night");
    // The cooldown answers before the day's budget is spent... and after it, the budget does.
    await next(storyId);
    expect(surface.images).toHaveLength(2);
    await run(illustrate, {}, context(storyId, "b"));
    expect(surface.notices.at(-1)).toContain("had its 2 illustrations for today");
    // The same request delivered twice draws once.
    await engine.settings.set("console", "local", { imagesPerDay: 10 });
    await run(illustrate, { what: "the pier" }, context(storyId, "a"));
    await engine.queue.onIdle();
    expect(surface.images).toHaveLength(2);
    await run(illustrate, { what: "the pier" }, context(storyId, "c"));
    expect(surface.notices.at(-1)).toMatch(/Please wait \d+ s before asking for another illustration/);
    // Zero per chapter, or illustrations off: the agent's scenes are not drawn.
    await engine.settings.set("console", "local", { imagesPerChapter: 0 });
    await next(storyId);
    await engine.settings.set("console", "local", { imagesPerChapter: 1, illustrations: false });
    await next(storyId);
    expect(surface.images).toHaveLength(2);
    await run(illustrate, {}, context(storyId, "d"));
    expect(surface.notices.at(-1)).toContain("Illustrations are switched off here");
  });

  it("a failing image endpoint leaves the story going, with a short note", async () => {
    await launch({ OPENAI_MAX_RETRIES: "1" });
    model.setImageResponder(() => ({ kind: "error", status: 500 }));
    const storyId = await start();
    expect(surface.images).toHaveLength(0);
    expect(
      surface.notices.some((n) =>
        n.startsWith("Illustration unavailable: the image model could not draw it right now."),
      ),
    ).toBe(true);
    const state = await engine.queries.state(storyId);
    expect(state.head?.status).toBe("done");
    expect(state.choices.length).toBeGreaterThan(1);
    model.setImageResponder(() => ({ kind: "refused" }));
    await next(storyId);
    expect(surface.notices.at(-1)).toContain(
      "Illustration unavailable: the image model's content filter refused this scene.",
    );
    expect((await engine.queries.state(storyId)).head?.number).toBe(2);
    const rows = await engine.db.illustration.findMany({ where: { storyId }, orderBy: { createdAt: "asc" } });
    expect(rows.map((r) => [r.status, r.error])).toEqual([
      ["failed", "server"],
      ["failed", "refused"],
    ]);
  });

  it("a failing `illustrate` model keeps the scene as written; the picture is still drawn", async () => {
    await launch();
    model.setResponder((req) =>
      String(req.body?.messages?.[0]?.content ?? "").startsWith("Inkloom: illustrate")
        ? { kind: "error", status: 400 }
        : storyResponder()(req),
    );
    const storyId = await start();
    expect(surface.images).toHaveLength(1);
    const row = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    expect(row.prompt).toContain(`Scene: ${row.scene}`);
    expect(await engine.db.agentRun.count({ where: { task: "illustrate" } })).toBe(0);
  });

  it("an image that hangs times out without holding the text back", async () => {
    await launch({ IMAGE_TIMEOUT_MS: "1000" });
    model.setImageResponder(() => ({ kind: "hang" }));
    const ticket = await engine.stories.start({ actor, conversation, premise: "A harbour mystery", genre: "none" });
    await ticket.job.finished;
    // The chapter and its choices are out while the picture is still being drawn.
    expect(surface.callsOf("offerChoices")).toHaveLength(1);
    expect(surface.images).toHaveLength(0);
    await engine.queue.onIdle();
    expect(surface.notices.at(-1)).toContain("Illustration unavailable: the image model took too long.");
  });

  it("a retry never posts the same picture twice, and a restart finishes what a crash interrupted", async () => {
    await launch();
    const storyId = await start();
    const row = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    await engine.illustrationJob.run({ illustrationId: row.id });
    expect(surface.images).toHaveLength(1);
    // A crash after drawing but before posting: the restart posts it, once, without drawing again.
    await engine.db.illustration.update({ where: { id: row.id }, data: { messageRef: "" } });
    const drawn = model.imageRequests().length;
    expect(await engine.illustrationJob.recover()).toBe(1);
    await engine.queue.onIdle();
    expect(surface.images).toHaveLength(2);
    expect(model.imageRequests()).toHaveLength(drawn);
    // A crash while drawing: the restart draws it again and posts it once.
    await engine.db.illustration.update({ where: { id: row.id }, data: { status: "drawing", messageRef: "" } });
    await engine.illustrationJob.recover();
    await engine.queue.onIdle();
    expect(surface.images).toHaveLength(3);
    expect(await engine.illustrationJob.recover()).toBe(0);
  });

  it("next to live workers, recovery leaves a picture being drawn to its job, which a restarted job takes over", async () => {
    await launch();
    const storyId = await start();
    const row = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    const posted = surface.images.length;
    const drawn = model.imageRequests().length;
    // Another worker is drawing it: shared recovery does not touch it, a first delivery neither.
    await engine.db.illustration.update({ where: { id: row.id }, data: { status: "drawing", messageRef: "" } });
    expect(await engine.illustrationJob.recover({ shared: true })).toBe(0);
    await engine.illustrationJob.run({ illustrationId: row.id });
    await engine.queue.onIdle();
    expect(model.imageRequests()).toHaveLength(drawn);
    expect((await engine.db.illustration.findUniqueOrThrow({ where: { id: row.id } })).status).toBe("drawing");
    // Its worker died: the queue starts the job again (attempt 2), which draws and posts it once.
    await engine.illustrationJob.run({ illustrationId: row.id }, 2);
    expect(model.imageRequests()).toHaveLength(drawn + 1);
    expect(surface.images).toHaveLength(posted + 1);
    await engine.illustrationJob.run({ illustrationId: row.id }, 3);
    expect(surface.images).toHaveLength(posted + 1);
  });

  it("a picture job given up for good marks its picture failed, gives its budget back and says so, once", async () => {
    // Every picture job's database work fails as a database that does not answer would:
    // the queue's retries run out and its failed hook gives the picture up.
    await launch({ IMAGES_PER_DAY: "5" });
    const storyId = await start();
    const drawn = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    expect(drawn.status).toBe("done");
    const row = await engine.db.illustration.create({
      data: {
        storyId,
        chapterId: drawn.chapterId,
        source: "request",
        requestKey: "given-up",
        scene: "The harbour at night",
        characters: [],
        status: "drawing",
      },
    });
    const before = surface.notices.length;
    const counters = async () => (await engine.db.counter.findMany()).map((c) => c.count);
    const budget = await counters();
    await engine.illustrationJob.abandon({ illustrationId: row.id }, "job stalled more than allowable limit");
    await engine.illustrationJob.abandon({ illustrationId: row.id }, "job stalled more than allowable limit");
    expect(await engine.db.illustration.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: "failed",
      error: "internal",
    });
    expect(surface.notices.slice(before)).toEqual([expect.stringContaining("Illustration unavailable")]);
    expect((await counters()).reduce((a, b) => a + b, 0)).toBe(budget.reduce((a, b) => a + b, 0) - 1);
    expect(logs.some((l) => l.includes(`illustration ${row.id} failed: its job was given up (job stalled`))).toBe(true);
    // A picture drawn meanwhile is left alone.
    await engine.illustrationJob.abandon({ illustrationId: drawn.id }, "stalled");
    expect((await engine.db.illustration.findUniqueOrThrow({ where: { id: drawn.id } })).status).toBe("done");
    expect(surface.notices.slice(before)).toHaveLength(1);
  });

  it("the picture queue's failed hook gives up a picture whose job failed for good", async () => {
    await launch();
    const storyId = await start();
    const drawn = await engine.db.illustration.findFirstOrThrow({ where: { storyId } });
    // The job's claim (pending -> drawing) fails with an error no retry mends.
    if (process.env.TEST_DATABASE === "postgres") {
      await engine.db.$executeRawUnsafe(`CREATE FUNCTION no_drawing() RETURNS trigger AS $$
        BEGIN IF NEW.status = 'drawing' THEN RAISE EXCEPTION 'no drawing today'; END IF; RETURN NEW; END
        $$ LANGUAGE plpgsql`);
      await engine.db.$executeRawUnsafe(
        `CREATE TRIGGER no_drawing BEFORE UPDATE ON "Illustration" FOR EACH ROW EXECUTE FUNCTION no_drawing()`,
      );
    } else {
      await engine.db.$executeRawUnsafe(`CREATE TRIGGER no_drawing BEFORE UPDATE OF status ON "Illustration"
        WHEN NEW.status = 'drawing' BEGIN SELECT RAISE(ABORT, 'no drawing today'); END`);
    }
    const row = await engine.db.illustration.create({
      data: {
        storyId,
        chapterId: drawn.chapterId,
        source: "request",
        requestKey: "refused-claim",
        scene: "The harbour at night",
        characters: [],
      },
    });
    const before = surface.notices.length;
    await enqueueIllustrations(engine.queue, [row.id]);
    await engine.queue.onIdle();
    expect(await engine.db.illustration.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: "failed",
      error: "internal",
    });
    expect(surface.notices.slice(before)).toEqual([expect.stringContaining("Illustration unavailable")]);
    expect(logs.some((l) => l.includes(`illustration ${row.id} failed: its job was given up`))).toBe(true);
  });

  it("nothing is drawn without IMAGE_MODEL, and /illustrate says why", async () => {
    await launch({ IMAGE_MODEL: "" });
    const storyId = await start();
    expect(surface.images).toHaveLength(0);
    expect(model.imageRequests()).toHaveLength(0);
    await run(illustrate, {}, context(storyId, "x"));
    expect(surface.notices.at(-1)).toContain("has not configured an image model");
  });

  it("/export gives a Markdown zip with the pictures and an EPUB that contains them", async () => {
    await launch();
    const storyId = await start();
    await next(storyId);
    expect((await run(exportStory, {}, context(storyId, "e"))).kind).toBe("done");
    const [zip, epub] = surface.files;
    expect(zip?.name).toMatch(/\.zip$/);
    expect(epub?.name).toMatch(/\.epub$/);
    const md = unzipSync(zip?.content as Uint8Array);
    const story = new TextDecoder().decode(md["story.md"]);
    const pictures = Object.keys(md).filter((n) => n.startsWith("images/"));
    expect(pictures).toHaveLength(2);
    for (const p of pictures) expect(story).toContain(`](${p})`);
    const book = unzipSync(epub?.content as Uint8Array);
    expect(new TextDecoder().decode(book.mimetype)).toBe("application/epub+zip");
    const inEpub = Object.entries(book).filter(([n]) => n.endsWith(".png"));
    expect(inEpub).toHaveLength(2);
    const posted = surface.images.map((i) => Buffer.from(i.bytes));
    for (const [, bytes] of inEpub) expect(posted.some((p) => Buffer.compare(p, Buffer.from(bytes)) === 0)).toBe(true);
  });

  it("/export over the platform's upload limit sends the text only and says so", async () => {
    await launch();
    const storyId = await start();
    const book = await engine.books.exportBook(storyId, "en");
    // Both files with their pictures are just over the limit.
    const limit = Math.min(bookToEpub(book).byteLength, bookToMarkdownZip(book).byteLength) - 1;
    surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0, maxUploadBytes: limit } });
    await run(exportStory, {}, context(storyId, "e"));
    expect(surface.files.map((f) => f.name.split(".").at(-1))).toEqual(["md", "epub"]);
    const epub = unzipSync(surface.files[1]?.content as Uint8Array);
    expect(Object.keys(epub).some((n) => n.endsWith(".png"))).toBe(false);
    expect(surface.notices.filter((n) => n.includes("this copy has the text only"))).toHaveLength(2);
  });
});
