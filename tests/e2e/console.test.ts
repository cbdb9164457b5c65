import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CONTINUE_MARKER } from "../../src/agent/prompts.ts";
import { TOOL_NAMES } from "../../src/agent/schemas.ts";
import { openDatabase } from "../../src/store/db.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import type { FakeRequest, Responder } from "../fakes/fake-openai-types.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { testQueueKind } from "../helpers/topology.ts";
import { ConsoleProcess, consoleEnv, runToExit } from "./console-process.ts";

let server: FakeOpenAiServer;
let dir: string;
let dbUrl: string;
const databases = new TestDatabases();
const running: ConsoleProcess[] = [];

beforeAll(async () => {
  server = await FakeOpenAiServer.start({ responder: storyResponder({ language: "zh" }) });
});
afterAll(async () => {
  await server.close();
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-e2e-"));
  dbUrl = await databases.url(dir, "inkloom");
  server.setResponder(storyResponder({ language: "zh" }));
  server.setImageResponder(() => ({ kind: "image" }));
});
afterEach(async () => {
  for (const p of running.splice(0)) p.kill();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return consoleEnv(server.baseUrl, dir, dbUrl, extra);
}

function launch(extra?: Record<string, string>): ConsoleProcess {
  const p = new ConsoleProcess(env(extra));
  running.push(p);
  return p;
}

/** A responder that answers `match`ing requests with `reply` and everything else as the story model. */
function withFault(match: (req: FakeRequest) => boolean, reply: ReturnType<Responder>, times = Infinity): Responder {
  const story = storyResponder({ language: "zh" });
  let left = times;
  return (req) => {
    if (left > 0 && match(req)) {
      left--;
      return reply;
    }
    return story(req);
  };
}

const isProse = (req: FakeRequest) =>
  req.path === "/chat/completions" && req.body.stream === true && !Array.isArray(req.body.tools);
const forces = (name: string) => (req: FakeRequest) => req.body?.tool_choice?.function?.name === name;

describe("terminal play, end to end", { timeout: 90_000 }, () => {
  it("illustrates: the saved picture's path follows the chapter text; /export writes a zip and an EPUB with it", async () => {
    const images = join(dir, "images");
    const p = launch({ IMAGE_MODEL: "fake-image", IMAGE_DIR: images });
    await p.ready();
    await p.say("/start");
    await p.say("");
    const ch1 = await p.say("a lighthouse keeper finds a letter from the future");
    expect(ch1).toContain("Chapter 1");
    await p.stdoutContains(/Illustration saved to (\S+\.png)/);
    const out = p.stdout;
    const path = /Illustration saved to (\S+\.png)/.exec(out)?.[1] ?? "";
    // After the chapter's prose, never inside it.
    expect(out.indexOf("Illustration saved to")).toBeGreaterThan(out.indexOf("Chapter 1"));
    expect(path.startsWith(images)).toBe(true);
    const png = readFileSync(path);
    expect([...png.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(out).toMatch(/\[Chapter 1: .+\]/);

    const exported = await p.say("/export");
    const zip = /Exported the current branch to (\S+\.zip)/.exec(exported)?.[1];
    const epub = /Exported the current branch to (\S+\.epub)/.exec(exported)?.[1];
    expect(zip).toBeDefined();
    expect(epub).toBeDefined();
    const book = unzipSync(readFileSync(epub ?? ""));
    expect(new TextDecoder().decode(book.mimetype)).toBe("application/epub+zip");
    const pictures = Object.entries(book).filter(([name]) => name.endsWith(".png"));
    expect(pictures.map(([, bytes]) => Buffer.compare(Buffer.from(bytes), png))).toEqual([0]);
    expect(Object.keys(unzipSync(readFileSync(zip ?? "")))).toContain("story.md");
    // A picture still being drawn at /quit is shown before the goodbye.
    server.setImageResponder(() => ({ kind: "image", delayMs: 1500 }));
    await p.say("1");
    expect(await p.quit()).toBe(0);
    const tail = p.stdout.slice(p.stdout.lastIndexOf("Chapter 2"));
    expect(tail.indexOf("Illustration saved to")).toBeGreaterThan(-1);
    expect(tail.indexOf("Illustration saved to")).toBeLessThan(tail.indexOf("Your story is saved"));
  });

  it("plays a story: start, choose, own action, undo, rewrite, branch, recap, export, quit and resume", async () => {
    const p = launch();
    expect(await p.ready()).toContain("Type /start to begin a story");

    expect(await p.say("/start")).toContain("Pick a genre: 1) sweet");
    expect(await p.say("4")).toContain("Describe your scenario");
    const ch1 = await p.say("a ghost detective in 1920s Shanghai falls for the medium she is investigating");
    expect(ch1).toMatch(/Cast: .+/);
    expect(ch1).toContain("Chapter 1");
    expect(ch1).toMatch(/\n {2}1\. .+\n {2}2\. .+/);
    expect(ch1).toContain("Pick 1-");

    const ch2 = await p.say("2");
    expect(ch2).toContain("Chapter 2");
    expect(ch2).toContain("Pick 1-");

    const ch3 = await p.say("I light a lantern and read the letter aloud");
    expect(ch3).toContain("Chapter 3");
    expect(ch3).toContain("I light a lantern and read the letter aloud");

    const undone = await p.say("/undo");
    expect(undone).toContain("Went back to chapter 2");
    expect(undone).toContain("Pick 1-");

    const rewritten = await p.say("/rewrite make the ending happier");
    expect(rewritten).toContain("Rewriting chapter 2");
    expect(rewritten).toContain("make the ending happier");

    const branched = await p.say("/branch 1");
    expect(branched).toContain("Now continuing from chapter 1");
    const fresh2 = await p.say("I walk away from the case");
    expect(fresh2).toContain("Chapter 2");
    expect(fresh2).toContain("I walk away from the case");

    const recap = await p.say("/recap");
    expect(recap).toContain("The story so far");
    expect(recap).toMatch(/Chapter 1: .+/);
    expect(recap).toMatch(/Chapter 2: .+/);

    const exported = await p.say("/export");
    const path = /Exported the current branch to (.+\.md)/.exec(exported)?.[1];
    expect(path).toBeDefined();
    const markdown = readFileSync(path ?? "", "utf8");
    expect(markdown).toContain("I walk away from the case");
    expect(markdown).not.toContain("I light a lantern");

    expect(await p.quit()).toBe(0);
    expect(p.stdout).toContain("Your story is saved");

    // Restart: the story survived.
    const again = launch();
    await again.ready();
    const list = await again.say("/stories");
    expect(list).toMatch(/1\. .+ — chapter 2/);
    const resumed = await again.say("/stories 1");
    expect(resumed).toContain("Resuming");
    expect(resumed).toContain("I walk away from the case");
    expect(resumed).toContain("Pick 1-");
    const ch3b = await again.say("1");
    expect(ch3b).toContain("Chapter 3");
    expect(await again.endInput()).toBe(0);
  });

  it("a scenario typed at the genre question starts the story, with no genre", async () => {
    const p = launch();
    await p.ready();
    await p.say("/start");
    const out = await p.say("a lighthouse keeper who collects lost voices");
    expect(out).toContain("Chapter 1");
    expect(out).toContain("Pick 1-");
    const planned = server.requests.findLast((r) => r.body?.tool_choice?.function?.name === TOOL_NAMES.planStory);
    const user = JSON.stringify(planned?.body?.messages ?? []);
    expect(user).toContain("a lighthouse keeper who collects lost voices");
    expect(user).not.toContain("Genre:");
  });

  it("a piped script plays the same as a person typing", async () => {
    const p = launch();
    await p.ready();
    // Write everything at once: lines are handled one after the other.
    const script = ["/start a lighthouse keeper finds a message in a bottle", "1", "/recap", "/quit"].join("\n");
    p.type(`${script}\n`);
    expect(await p.exited).toBe(0);
    expect(p.stdout).toContain("Chapter 1");
    expect(p.stdout).toContain("Chapter 2");
    expect(p.stdout).toContain("The story so far");
  });

  it("writes a Chinese scenario as a Chinese story", async () => {
    const p = launch({ INKLOOM_LOCALE: "zh" });
    expect(await p.ready()).toContain("欢迎来到 Inkloom");
    const out = await p.say("/start 一九二零年代的上海，一位鬼魂侦探爱上了她正在调查的灵媒");
    expect(out).toMatch(/《[^》]+》/);
    expect(out).toContain("第1章");
    expect(out.match(/[\u4e00-\u9fff]/g)?.length ?? 0).toBeGreaterThan(40);
    expect(out).toContain("选择 1-");
  });

  it("bad input gets a clear message and changes nothing", async () => {
    const p = launch();
    await p.ready();
    expect(await p.say("/frobnicate")).toContain("Unknown command /frobnicate. Type /help");
    expect(await p.say("2")).toContain("There is no story in progress");
    expect(await p.say("/undo")).toContain("There is no story in progress");
    await p.say("/start");
    expect(await p.say("9")).toContain("is not one of the genres");
    expect(await p.say("")).toContain("Describe your scenario");
    expect(await p.say("")).toContain("The scenario is empty");
    expect(await p.say("x".repeat(10_000))).toContain("scenario is 10000 characters long; the limit is 2000");
    const ch1 = await p.say("a quiet village where the clocks run backwards");
    expect(ch1).toContain("Chapter 1");
    expect(await p.say("9")).toContain("There is no choice 9. Pick a number from 1 to 3");
    expect(await p.say("/undo")).toContain("Nothing to undo: this is the first chapter");
    expect(await p.say("/branch 5")).toContain("There is no chapter 5 on this branch");
    expect(await p.say("/branch two")).toContain("is not a whole number");
    expect(await p.say("y".repeat(600))).toContain("characters long; the limit is 500");
    expect(await p.say("/retry")).toContain("nothing to retry");
    const help = await p.say("/help");
    for (const name of ["/start", "/stories", "/undo", "/rewrite", "/branch", "/recap", "/export", "/help", "/quit"]) {
      expect(help).toContain(name);
    }
    // Still at chapter 1 with its three choices.
    expect(await p.say("/recap")).not.toContain("Chapter 2");
    expect(await p.say("3")).toContain("Chapter 2");
  });

  it("model endpoint down: the reader is told, nothing is saved as done, and exit is clean", async () => {
    const down = await FakeOpenAiServer.start();
    const url = down.baseUrl;
    await down.close();
    const p = launch({ OPENAI_BASE_URL: url });
    await p.ready();
    const out = await p.say("/start a haunted orchard");
    expect(out).toContain("The chapter could not be finished: the story model could not be reached.");
    expect(out).toContain("/retry");
    expect(await p.quit()).toBe(0);
    expect(p.stderr).not.toContain("    at ");
  });

  it("invalid JSON from the model twice fails the chapter cleanly; /retry then succeeds", async () => {
    server.setResponder(
      withFault(
        forces(TOOL_NAMES.planStory),
        {
          kind: "tool_calls",
          calls: [{ name: TOOL_NAMES.planStory, arguments: "{not json" }],
        },
        2,
      ),
    );
    const p = launch();
    await p.ready();
    const out = await p.say("/start a submarine crew hears singing");
    expect(out).toContain("the story model returned something we could not use");
    expect(out).not.toContain("Pick 1-");
    const retried = await p.say("/retry");
    expect(retried).toContain("Chapter 1");
    expect(retried).toContain("Pick 1-");
  });

  it("streams cut at random points are continued into one chapter each, with no reader action", async () => {
    // Planning ahead off: the fault draws then follow one request order, so the run replays.
    const p = launch({ PREPLAN: "off" });
    await p.ready();
    server.resetStats();
    server.setFaults({ cut: 0.5 }, 7);
    const chapters = [await p.say("/start a desert caravan guarding a secret"), await p.say("1"), await p.say("2")];
    server.setFaults({});
    expect(server.faultCounts.cut).toBeGreaterThan(0);
    for (const [i, out] of chapters.entries()) {
      expect(out).toContain(`Chapter ${i + 1}`);
      expect(out).toContain("Pick 1-");
      expect(out).not.toContain("(interrupted)");
      // Once, in order: the continuation picks up where the cut left off.
      expect(out.split("Mara pulled her grey coat tighter").length).toBe(2);
      expect(out.indexOf("Mara pulled")).toBeLessThan(out.indexOf("Elias was waiting"));
    }
    const continued = server.requests.filter((r) => JSON.stringify(r.body?.messages ?? []).includes(CONTINUE_MARKER));
    expect(continued.length).toBe(server.faultCounts.cut);
    expect(await p.say("/recap")).toContain("Chapter 3");
  });

  it("a choice planned while the reader read starts with the prose call; the other plans are cancelled", async () => {
    const p = launch({ METHOD_CONTINUE: "react" });
    await p.ready();
    await p.say("/start a lighthouse keeper finds a letter from the future");
    // Let the plans of the three offered choices finish (the model goes quiet).
    let seen = -1;
    while (seen !== server.requests.length) {
      seen = server.requests.length;
      await new Promise((r) => setTimeout(r, 400));
    }
    const planned = server.requests.filter((r) => Array.isArray(r.body?.tools) && r.body?.tool_choice === "auto");
    expect(planned.length).toBeGreaterThanOrEqual(3);
    const before = server.requests.length;
    const ch2 = await p.say("2");
    expect(ch2).toContain("Chapter 2");
    const after = server.requests.slice(before).filter((r) => r.path === "/chat/completions");
    // The first call after the choice is the streamed prose: its plan was ready.
    expect(after[0]?.body.stream).toBe(true);
    expect(after[0]?.body.tools).toBeUndefined();
    expect(await p.quit()).toBe(0);
    // The plans of the two choices not taken are kept as unused runs.
    const db = await openDatabase(dbUrl);
    const unused = await db.agentRun.count({ where: { status: "unused", task: "continue" } });
    await db.$disconnect();
    expect(unused).toBeGreaterThanOrEqual(2);
  });

  it("a 429 and a 500 from the model are retried without the reader noticing", async () => {
    const p = launch({ OPENAI_MAX_RETRIES: "2" });
    await p.ready();
    server.enqueue({ kind: "error", status: 429, headers: { "retry-after": "0" } }, { kind: "error", status: 500 });
    const out = await p.say("/start a clockwork city");
    expect(out).toContain("Chapter 1");
    expect(out).not.toContain("could not be finished");
  });

  it("kill -9 mid-chapter, then a restart: the chapter completes with no reader input, one copy, choices once", {
    timeout: 90_000,
  }, async () => {
    const story = storyResponder({ language: "zh" });
    // Slow prose, so the process can be killed in the middle of it.
    server.setResponder(async (req) => {
      const reply = await story(req);
      return isProse(req) && reply.kind === "text" ? { ...reply, chunkSize: 8, chunkDelayMs: 60 } : reply;
    });
    const p = launch();
    await p.ready();
    p.type("/start a frozen train\n");
    await p.stdoutContains(/Elias was waiting under/);
    p.kill();
    await p.exited;
    const before = p.stdout;
    expect(before).not.toContain("Pick 1-");

    server.setResponder(storyResponder({ language: "zh" }));
    const again = launch();
    await again.ready();
    if (testQueueKind() === "bullmq") {
      // On BullMQ (the PostgreSQL pass) the killed process's job is still in Redis, holding
      // its lock: start-up recovery leaves it alone, and the stalled check hands it over
      // once the lock expired (lockDuration 20 s, checked every 15 s): within 35 s.
      await again.stdoutContains(/Pick 1-/, 50_000);
    } else {
      await again.stderrContains("resuming 1 chapter(s) a restart interrupted");
      await again.stdoutContains(/Pick 1-/);
    }
    const after = again.stdout;
    expect(after).toContain("Continuing the chapter where it stopped");
    // No second copy: the chapter's opening is not shown again, its end is shown once.
    expect(after).not.toContain("The rain began before anyone noticed");
    expect(after.split("something he did not want to give her.").length).toBe(2);
    expect(after.split("Pick 1-").length).toBe(2);
    const resumed = await again.say("/stories 1");
    expect(resumed).not.toContain("was not finished");
    expect(resumed).toContain("Pick 1-");
    const continued = server.requests.filter((r) => JSON.stringify(r.body?.messages ?? []).includes(CONTINUE_MARKER));
    expect(continued.length).toBeGreaterThan(0);
    expect(await again.quit()).toBe(0);
  });
});

describe("start-up problems", () => {
  it("with no model endpoint configured, says what to set (with an Ollama example) and exits non-zero", async () => {
    const { code, stderr } = await runToExit({ DATABASE_URL: dbUrl });
    expect(code).toBe(2);
    expect(stderr).toContain("OPENAI_BASE_URL");
    expect(stderr).toContain("OPENAI_MODEL");
    expect(stderr).toContain("http://localhost:11434/v1");
    expect(stderr).not.toContain("    at ");
  });

  it("a bad variable is named in the message", async () => {
    const { code, stderr } = await runToExit(env({ OPENAI_TIMEOUT_MS: "soon", METHOD_CONTINUE: "magic" }));
    expect(code).toBe(2);
    expect(stderr).toContain("OPENAI_TIMEOUT_MS must be a whole number");
    expect(stderr).toContain("METHOD_CONTINUE must be one of: cot, react, reflexion");
  });

  it("an unwritable database path is reported and the process exits non-zero", async () => {
    // A path under a regular file cannot be created, even by root.
    const { code, stderr } = await runToExit(env({ DATABASE_URL: "file:/etc/hostname/inkloom.db" }));
    expect(code).toBe(1);
    expect(stderr).toContain("Cannot open the database at /etc/hostname/inkloom.db");
    expect(stderr).toContain("DATABASE_URL");
    expect(existsSync("/etc/hostname/inkloom.db")).toBe(false);
  });

  it("an unreachable PostgreSQL server is reported without its password, and the process exits non-zero", async () => {
    const { code, stderr } = await runToExit(env({ DATABASE_URL: "postgresql://inkloom:hunter2@127.0.0.1:1/inkloom" }));
    expect(code).toBe(1);
    expect(stderr).toContain("Cannot open the database at postgresql://inkloom:***@127.0.0.1:1/inkloom");
    expect(stderr).toContain("DATABASE_URL");
    expect(stderr).not.toContain("hunter2");
    expect(stderr).not.toContain("    at ");
  });
});
