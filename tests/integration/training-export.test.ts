/**
 * `train:export` on real trajectories: stories written through the engine (real SQLite,
 * the real SDK against the fake model) with three agent methods, reader reactions of
 * every kind, readers whose names and platform ids appear in what they typed.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine, type Engine } from "../../src/app/wiring.ts";
import { openDatabase } from "../../src/store/db.ts";
import { exportTrainingData, mixCounts, Redactor, renderCard } from "../../src/training/export.ts";
import { validateJsonl } from "../../src/training/jsonl-format.ts";
import { SCORE, scoreRun } from "../../src/training/score.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { runTrainingCli } from "../helpers/run-cli.ts";
import { queueEnv } from "../helpers/topology.ts";

const ann = { platform: "discord", id: "123456789012345678", name: "Annabelle" };
const bob = { platform: "telegram", id: "987654321", name: "Bartholomew" };
const where = { platform: "discord", workspaceId: "555555555555555555", id: "444444444444444444" };

let dir: string;
const databases = new TestDatabases();
let dbUrl: string;
let model: FakeOpenAiServer;
const marks: { undone: string; heldout: string; rewriteDirection: string } = {
  undone: "I jump into the cold harbour",
  heldout: "A held-out lighthouse tale",
  rewriteDirection: "make the ending kinder",
};

async function engineWith(method: string): Promise<Engine> {
  return createEngine(
    loadConfig({
      ...queueEnv(),
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_MODEL: "fake",
      OPENAI_MAX_RETRIES: "0",
      DATABASE_URL: dbUrl,
      METHOD_CONTINUE: method,
      RECENT_CHAPTERS: "1",
    }),
    () => {},
  );
}

async function play(engine: Engine, premise: string, actions: string[], by = ann): Promise<string> {
  const t = await engine.stories.start({ actor: by, conversation: where, premise, genre: "none" });
  await t.job.finished;
  for (const a of actions) {
    const { revision } = await engine.queries.state(t.storyId);
    if (/^\d$/.test(a)) await (await engine.stories.choose(t.storyId, revision, Number(a), by)).job.finished;
    else await (await engine.stories.act(t.storyId, revision, a, by)).job.finished;
  }
  await engine.queue.onIdle();
  return t.storyId;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-export-"));
  dbUrl = await databases.url(dir, "runs");
  model = await FakeOpenAiServer.start({ responder: storyResponder() });
  for (const method of ["react", "cot", "reflexion"]) {
    const engine = await engineWith(method);
    await play(engine, `A ${method} story about a lost letter`, [
      "1",
      "Annabelle asks <@123456789012345678> about it",
      "2",
    ]);
    await play(engine, `A second ${method} story at sea`, ["2", "Bartholomew waves to @bart_the_sailor", "1"], bob);
    await engine.close();
  }
  const engine = await engineWith("react");
  // Long enough for the rolling summary to fold (a `summarize` run).
  await play(engine, "A long voyage", ["1", "2", "1", "2", "1", "2"]);
  // An undone chapter: its runs must not pass the filter.
  const undone = await play(engine, "A story with a regret", ["1", marks.undone]);
  await engine.stories.undo(undone);
  // A rewrite that the readers then continued: a preference pair.
  const rewritten = await play(engine, "A story rewritten", ["1"]);
  await (await engine.stories.rewrite(rewritten, marks.rewriteDirection, ann)).job.finished;
  const { revision } = await engine.queries.state(rewritten);
  await (await engine.stories.choose(rewritten, revision, 1, ann)).job.finished;
  // A held-out story.
  const held = await play(engine, marks.heldout, ["1", "2"]);
  const chapter = await engine.db.chapter.findFirstOrThrow({ where: { storyId: held, number: 2 } });
  await engine.db.heldoutState.create({ data: { storyId: held, chapterId: chapter.id, task: "continue", input: {} } });
  await engine.queue.onIdle();
  await engine.close();
}, 120_000);

afterAll(async () => {
  await model.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

async function exported(options: Parameters<typeof exportTrainingData>[1] = {}) {
  const db = await openDatabase(dbUrl);
  try {
    return await exportTrainingData(db, options);
  } finally {
    await db.$disconnect();
  }
}

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

describe("train:export", { timeout: 60_000 }, () => {
  it("writes OpenAI chat examples that validate and round-trip: zero-shot system prompt, tools, ending with the assistant", async () => {
    const data = await exported();
    expect(data.train.length).toBeGreaterThan(10);
    expect(data.validation.length).toBeGreaterThan(0);
    for (const [rows, kind] of [
      [data.train, "chat"],
      [data.validation, "chat"],
      [data.preferences, "preference"],
    ] as const) {
      const text = jsonl(rows);
      const report = validateJsonl(text, kind);
      expect(report.errors).toEqual([]);
      expect(report.valid).toBe(rows.length);
      expect(
        text
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l)),
      ).toEqual(rows);
    }
    for (const example of [...data.train, ...data.validation]) {
      const system = example.messages[0];
      expect(system?.role).toBe("system");
      // The fine-tuned prompt: a marker line and one short line, never the exemplars.
      expect(String(system?.content)).not.toContain("Example");
      expect(String(system?.content).split("\n")).toHaveLength(2);
      expect(example.messages.at(-1)?.role).toBe("assistant");
    }
    const react = data.train.find((e) => e.messages[0]?.content?.startsWith("Inkloom: continue.react"));
    expect(react?.tools?.map((t) => t.function.name)).toContain("recall");
    expect(react?.messages.some((m) => m.role === "tool")).toBe(true);
    const tasks = new Set(data.card.counts.map((c) => c.task));
    for (const t of ["open", "continue", "choices", "check", "summarize"]) expect(tasks).toContain(t);
    expect(new Set(data.card.counts.map((c) => c.method))).toEqual(new Set(["cot", "react", "reflexion"]));
  });

  it("never lets a platform id, a mention or a reader's name through", async () => {
    const data = await exported({ minScore: 0 });
    const text = jsonl([...data.train, ...data.validation, ...data.preferences]) + renderCard(data.card);
    // The readers did type them: they are in the recorded runs.
    expect(text).toContain("Reader asks @reader about it");
    for (const secret of [
      "123456789012345678",
      "987654321",
      "555555555555555555",
      "Annabelle",
      "Bartholomew",
      "@bart_the_sailor",
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(data.card.redactions).toBeGreaterThan(0);
  });

  it("keeps only runs above the score, none of a held-out story, and no duplicates", async () => {
    const data = await exported();
    const text = jsonl([...data.train, ...data.validation]);
    expect(text).not.toContain(marks.undone);
    expect(text).not.toContain(marks.heldout);
    expect(data.card.left.heldout).toBeGreaterThan(0);
    expect(data.card.left.belowScore).toBeGreaterThan(0);
    // Every run read (held-out aside) is in one score bucket.
    expect(data.card.scores.reduce((a, b) => a + b.runs, 0)).toBe(data.card.runsRead - data.card.left.heldout);
    const keys = [...data.train, ...data.validation].map((e) => JSON.stringify(e.messages));
    expect(new Set(keys).size).toBe(keys.length);
    // Lowering the bar lets the undone chapter's runs in: the filter is what kept them out.
    const all = await exported({ minScore: 0.01 });
    expect(jsonl([...all.train, ...all.validation])).toContain(marks.undone);
  });

  it("mixes tasks and methods with the given ratios", async () => {
    const data = await exported({
      mix: { tasks: { continue: 0.5, choices: 0.5 }, methods: { cot: 1, react: 1, reflexion: 2 } },
      seed: 7,
    });
    const examples = [...data.train, ...data.validation];
    const cell = (task: string, method: string) =>
      data.card.counts.filter((c) => c.task === task && c.method === method).reduce((a, c) => a + c.examples, 0);
    const total = examples.length;
    expect(total).toBeGreaterThan(0);
    // Only the asked tasks, in the asked proportions (a cell is floor(total x share)).
    expect(new Set(data.card.counts.map((c) => c.task))).toEqual(new Set(["continue", "choices"]));
    for (const [task, method, share] of [
      ["continue", "cot", 0.125],
      ["continue", "react", 0.125],
      ["continue", "reflexion", 0.25],
      ["choices", "reflexion", 0.25],
    ] as const) {
      expect(Math.abs(cell(task, method) - total * share)).toBeLessThanOrEqual(1);
    }
    for (const m of data.card.mix) expect(Math.abs(m.achieved - m.target)).toBeLessThan(0.1);
  });

  it("splits by story when there are enough stories, by example when not", async () => {
    expect((await exported()).card.split).toBe("story");
    const one = await databases.url(dir, "one");
    const engine = await createEngine(
      loadConfig({
        ...queueEnv(),
        OPENAI_BASE_URL: model.baseUrl,
        OPENAI_MODEL: "fake",
        OPENAI_MAX_RETRIES: "0",
        DATABASE_URL: one,
      }),
      () => {},
    );
    await play(engine, "A single story", ["1", "2", "1", "2"]);
    await engine.close();
    const db = await openDatabase(one);
    try {
      const data = await exportTrainingData(db, { validationShare: 0.2 });
      expect(data.card.split).toBe("example");
      const total = data.train.length + data.validation.length;
      expect(data.validation.length).toBe(Math.round(total * 0.2));
    } finally {
      await db.$disconnect();
    }
  });

  it("gives a preference pair for a rewrite the readers went on with", async () => {
    const data = await exported();
    expect(data.preferences).toHaveLength(1);
    const [pair] = data.preferences;
    expect(String(pair?.preferred_output[0].content)).toContain(marks.rewriteDirection);
    expect(String(pair?.non_preferred_output[0].content)).not.toContain(marks.rewriteDirection);
    expect(pair?.input.messages.at(-1)?.role).toBe("user");
  });

  it("scores runs as documented", () => {
    const ok = { status: "ok", checks: { finishedInFormat: true } };
    expect(scoreRun({ status: "failed", checks: {} }, undefined).value).toBe(0);
    // A plan made ahead for a choice nobody took is never training data.
    expect(scoreRun({ status: "unused", checks: { finishedInFormat: true } }, undefined).value).toBe(0);
    expect(scoreRun({ status: "ok", checks: { finishedInFormat: false } }, undefined).value).toBe(0);
    expect(scoreRun(ok, { continuityOk: true, reactions: [{ kind: "choice", data: {} }] }).value).toBe(0.9);
    expect(scoreRun(ok, { continuityOk: true, reactions: [] }).value).toBe(0.6);
    expect(scoreRun(ok, { reactions: [{ kind: "vote", data: { turnout: 3 } }] }).value).toBe(0.9);
    expect(scoreRun(ok, { reactions: [{ kind: "undo", data: {} }] }).value).toBe(0);
    const rated = scoreRun(ok, {
      reactions: [
        { kind: "choice", data: {} },
        { kind: "rating", data: { userId: "a", value: -1 } },
        { kind: "rating", data: { userId: "a", value: 1 } },
        { kind: "rating", data: { userId: "b", value: 1 } },
      ],
    });
    expect(rated.value).toBe(1);
    expect(rated.parts.rating).toBeCloseTo(SCORE.rating);
    expect(scoreRun(ok, undefined).value).toBe(0.75);
  });

  it("mixCounts takes the largest total every cell can supply", () => {
    const plan = mixCounts(
      new Map([
        ["continue.react", 100],
        ["open.cot", 10],
      ]),
      { tasks: { continue: 0.8, open: 0.2 } },
    );
    expect(plan.get("continue.react")?.take).toBe(40);
    expect(plan.get("open.cot")?.take).toBe(10);
  });

  it("the Redactor replaces names and ids as words only", () => {
    const r = new Redactor([{ externalId: "42424242", displayName: "Ann" }]);
    expect(r.text("Ann met Anna; id 42424242, <#123456789012>, @someone_else")).toBe(
      "Reader met Anna; id Reader, @reader, @reader",
    );
  });

  it("npm run train:export writes the files and the dataset card; train:validate accepts them", async () => {
    const out = join(dir, "out");
    const run = (script: string, args: string[]) => runTrainingCli(script, args);
    const exportRun = await run("export.ts", ["--out", out, "--database", dbUrl, "--tasks", "continue=1,open=1"]);
    expect(exportRun.code).toBe(0);
    expect(exportRun.stdout).toMatch(/\d+ train, \d+ validation, 1 preference example\(s\)/);
    const card = readFileSync(join(out, "dataset-card.md"), "utf8");
    expect(card).toContain("| train | continue |");
    expect(card).toContain("Token lengths");
    expect(card).toMatch(/\| 0\.9–1\.0 \(kept\) \| [1-9]\d* \|/);
    expect(card).toMatch(/\| 0\.6–0\.7 \| [1-9]\d* \|/);
    const validated = await run("validate.ts", [join(out, "train.jsonl"), join(out, "preferences.jsonl")]);
    expect(validated.code).toBe(0);
    expect((await run("export.ts", ["--min-score", "2"])).code).toBe(2);
  });
});
