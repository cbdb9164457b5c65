/**
 * `train:eval` end to end: real SQLite with stories written through the engine, held-out
 * states frozen from them, then both configurations run over real HTTP against fake
 * OpenAI servers (the real openai SDK, the real story agent), a position-biased fake judge,
 * the Markdown + SVG report, and the command-line tool as a child process.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { WritingTask } from "../../src/agent/types.ts";
import { loadConfig } from "../../src/app/config.ts";
import { createEngine } from "../../src/app/wiring.ts";
import type { ModelRoute } from "../../src/llm/types.ts";
import {
  type EvalReport,
  type EvaluateOptions,
  evaluate,
  PAIRWISE_VERDICT,
  pairScore,
  percentile,
} from "../../src/training/eval.ts";
import { CHART_FILES, renderReport } from "../../src/training/eval-report.ts";
import { freezeHeldout, type HeldoutCase, loadHeldout } from "../../src/training/heldout.ts";
import { formatRoute } from "../../src/training/routes.ts";
import { FakeOpenAiServer, withLatency } from "../fakes/fake-openai-server.ts";
import type { FakeRequest, Responder } from "../fakes/fake-openai-types.ts";
import { FakeSurface } from "../fakes/fake-surface.ts";
import { storyResponder } from "../fakes/story-responder.ts";
import { TestDatabases } from "../helpers/database.ts";
import { runTrainingCli } from "../helpers/run-cli.ts";
import { queueEnv } from "../helpers/topology.ts";

const actor = { platform: "console", id: "u1", name: "Reader" };
const METHODS: Record<WritingTask, "cot" | "react" | "reflexion"> = {
  open: "cot",
  continue: "react",
  rewrite: "reflexion",
};

/** The story responder, plus a judge that always prefers the chapter in position 1. */
function withBiasedJudge(inner: Responder = storyResponder()): Responder {
  return (req: FakeRequest) => {
    if (req.body?.response_format?.json_schema?.name === PAIRWISE_VERDICT) {
      return { kind: "json", value: { winner: "1", reason: "The first chapter reads better." } };
    }
    return inner(req);
  };
}

let dir: string;
const databases = new TestDatabases();
let dbUrl: string;
let cases: HeldoutCase[];
const servers: FakeOpenAiServer[] = [];

async function server(responder: Responder): Promise<FakeOpenAiServer> {
  const s = await FakeOpenAiServer.start({ responder });
  servers.push(s);
  return s;
}

const route = (model: string, s: FakeOpenAiServer, fineTuned = false): ModelRoute => ({
  model,
  baseUrl: s.baseUrl,
  fineTuned,
});

function options(
  a: ModelRoute,
  b: ModelRoute,
  judge: ModelRoute,
  extra: Partial<EvaluateOptions> = {},
): EvaluateOptions {
  return {
    cases,
    a,
    b,
    judge,
    apiKey: "test",
    methods: METHODS,
    maxSteps: 4,
    recentChapters: 2,
    timeoutMs: 10_000,
    maxRetries: 0,
    prices: { inputPerMTok: 1, outputPerMTok: 4 },
    seed: 7,
    ...extra,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-eval-"));
  dbUrl = await databases.url(dir, "eval");
  const model = await FakeOpenAiServer.start({ responder: storyResponder() });
  const config = loadConfig({
    ...queueEnv(),
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_MODEL: "fake",
    OPENAI_MAX_RETRIES: "0",
    DATABASE_URL: dbUrl,
  });
  const engine = await createEngine(config, () => {});
  try {
    const premises = ["A harbour mystery", "A lighthouse keeper's last winter", "Smugglers under the old bridge"];
    for (const [i, premise] of premises.entries()) {
      const conversation = { platform: "console", workspaceId: "local", id: `c${i}` };
      const surface = new FakeSurface({ limits: { maxMessageLength: 4000, minEditIntervalMs: 0 } });
      engine.audiences.set(`console:c${i}`, { surface, locale: "en" });
      const ticket = await engine.stories.start({ actor, conversation, premise, genre: "adventure" });
      await ticket.job.finished;
      const { revision } = await engine.queries.state(ticket.storyId);
      await (await engine.stories.choose(ticket.storyId, revision, 1, actor)).job.finished;
      await engine.queue.onIdle();
    }
    // Two continue states (ReAct: tool calls) and one opening (CoT), one per story.
    await freezeHeldout(engine.db, { count: 2, seed: 1, tasks: ["continue"] });
    await freezeHeldout(engine.db, { count: 1, seed: 1, tasks: ["open"] });
    cases = await loadHeldout(engine.db);
  } finally {
    await engine.close();
    await model.close();
  }
}, 60_000);

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("evaluate", { timeout: 60_000 }, () => {
  it("has held-out cases of both kinds to run", () => {
    expect(cases.map((c) => c.input.task).sort()).toEqual(["continue", "continue", "open"]);
  });

  it("a slow endpoint shows a clearly larger latency; both finish every case", async () => {
    const slow = await server(withLatency(withBiasedJudge(), { delayMs: 40, chunkDelayMs: 4 }));
    const fast = await server(withBiasedJudge());
    const report = await evaluate(options(route("slow", slow), route("fast", fast), route("judge", fast)));
    expect(report.a.finishRate).toBe(1);
    expect(report.b.finishRate).toBe(1);
    const slowP50 = report.a.latencyMs.p50 ?? 0;
    const fastP50 = report.b.latencyMs.p50 ?? 0;
    expect(slowP50).toBeGreaterThan(fastP50 * 2);
    expect(slowP50 - fastP50).toBeGreaterThan(100);
    expect(report.a.latencyMs.p95 ?? 0).toBeGreaterThanOrEqual(slowP50);
    // The continuity checks of both sides went to the judge, never to the slow side.
    const checks = (s: FakeOpenAiServer) =>
      s.requests.filter((r) => r.body?.response_format?.json_schema?.name === "continuity_report");
    expect(checks(slow)).toHaveLength(0);
    expect(checks(fast).every((r) => r.body?.model === "judge")).toBe(true);
    expect(checks(fast).length).toBeGreaterThanOrEqual(2 * cases.length);
    // Tokens of the side's own runs only, and some cost from the prices.
    expect(report.a.tokens.prompt).toBeGreaterThan(0);
    expect(report.a.tokens.completion).toBeGreaterThan(0);
    expect(report.a.costUsd).toBeGreaterThan(0);
    expect(report.a.continuityFailures).toBe(0);
    expect(report.judge.promptTokens).toBeGreaterThan(0);
  });

  let noisy: EvalReport;
  let clean: EvalReport;
  let noisyRoutes: { a: ModelRoute; b: ModelRoute };

  it("noisy tools replace about half of the search results; a position-biased judge scores exactly 0.5", async () => {
    const s = await server(withBiasedJudge());
    noisyRoutes = { a: route("model-a", s), b: route("model-b", s) };
    // Every state four times, so there are enough search calls to count.
    const many = [...cases, ...cases, ...cases, ...cases];
    const progress: string[] = [];
    noisy = await evaluate(
      options(noisyRoutes.a, noisyRoutes.b, route("judge", s), {
        cases: many,
        noisyTools: 0.5,
        onProgress: (e) => progress.push(e.phase === "write" ? `${e.phase} ${e.index}/${e.total} ${e.side}` : e.phase),
      }),
    );
    clean = await evaluate(options(noisyRoutes.a, noisyRoutes.b, route("judge", s), { cases: many }));

    for (const side of [noisy.a, noisy.b]) {
      expect(side.finishRate).toBe(1);
      expect(side.searchCalls).toBe(8); // two continue states, one recall each, four times
      expect(side.noisyToolResults).toBeGreaterThanOrEqual(2);
      expect(side.noisyToolResults).toBeLessThanOrEqual(6);
    }
    expect(clean.a.noisyToolResults).toBe(0);
    expect(clean.b.noisyToolResults).toBe(0);
    expect(clean.a.searchCalls).toBe(8);
    expect(noisy.noisyTools).toBe(0.5);
    // Seeded: the same seed gives the same noise.
    const again = await evaluate(
      options(noisyRoutes.a, noisyRoutes.b, route("judge", s), { cases: many, noisyTools: 0.5 }),
    );
    expect(again.a.noisyToolResults).toBe(noisy.a.noisyToolResults);

    // The judge always says "1": B wins one order and loses the other on every case.
    for (const r of [noisy, clean]) {
      expect(r.pairwise.compared).toBe(many.length);
      expect(r.pairwise.judged).toBe(many.length);
      expect(r.pairwise.winRate).toBe(0.5);
      expect(r.pairwise.positionBias).toBe(1);
      expect(r.pairwise.splits).toBe(many.length);
      expect(r.pairwise.ties).toBe(many.length);
      expect(r.pairwise.wins + r.pairwise.losses).toBe(0);
      expect(r.pairwise.judgeFailures).toBe(0);
      expect(r.pairwise.verdicts).toBe(2 * many.length);
    }
    // Verdict requests: temperature 0, the pairwise_verdict schema, the judge's marker line.
    const verdicts = s.requests.filter((r) => r.body?.response_format?.json_schema?.name === PAIRWISE_VERDICT);
    expect(verdicts.length).toBe(3 * 2 * many.length);
    for (const v of verdicts) {
      expect(v.body.model).toBe("judge");
      expect(v.body.temperature).toBe(0);
      expect(String(v.body.messages[0].content).split("\n")[0]).toBe("Inkloom: judge");
    }
    // The two orders of one case show the same chapters, swapped.
    const [first, second] = verdicts.map((v) => String(v.body.messages[1].content));
    const chapters = (text: string | undefined) => (text ?? "").split(/# Chapter [12]\n/).slice(1);
    expect(chapters(first)).toHaveLength(2);
    expect(chapters(second)[0]?.trim().length).toBeGreaterThan(0);
    // Progress in a deterministic order: case by case, A then B.
    expect(progress.slice(0, 4)).toEqual(["write 1/12 a", "write 1/12 b", "write 2/12 a", "write 2/12 b"]);
    expect(progress.filter((p) => p === "judge")).toHaveLength(many.length);
  });

  it("renders a Markdown report naming both routes and every metric, with well-formed SVG charts", () => {
    const { markdown, charts } = renderReport(noisy, { title: "Noisy <tools> & judge", createdAt: new Date(0) });
    expect(markdown).toContain(formatRoute(noisyRoutes.a));
    expect(markdown).toContain(formatRoute(noisyRoutes.b));
    for (const metric of [
      "Finish rate",
      "Latency p50 (ms)",
      "Latency p95 (ms)",
      "Prompt tokens (total)",
      "Completion tokens (total)",
      "Prompt tokens per case",
      "Completion tokens per case",
      "Cost (USD)",
      "Continuity-check failures",
      "Tool calls",
      "Noisy tool results",
      "Judge failures",
      "Position bias",
    ]) {
      expect(markdown).toContain(metric);
    }
    expect(markdown).toContain("B's win rate against A: 50.0%");
    expect(markdown).toContain("Noisy tools: 50%");
    expect(markdown).toContain("Held-out cases: 12");
    expect(markdown).toContain("# Noisy &lt;tools> & judge");
    expect(charts.map((c) => c.name).sort()).toEqual(Object.values(CHART_FILES).sort());
    for (const chart of charts) {
      expect(markdown).toContain(`](${chart.name})`);
      expect(chart.svg.startsWith("<svg")).toBe(true);
      expect(wellFormed(chart.svg)).toEqual({ ok: true });
      expect(chart.svg).toContain("<text");
    }
    const latency = charts.find((c) => c.name === CHART_FILES.latency)?.svg ?? "";
    expect(latency).toContain(">p50</text>");
    expect(latency).toContain(">p95</text>");
    expect(latency).toContain(">milliseconds</text>");
    const win = charts.find((c) => c.name === CHART_FILES.winRate)?.svg ?? "";
    expect(win).toContain("tie or split: 12");
    expect(win).toContain(">100%</text>");

    // Text from routes is escaped in the SVG.
    const odd = { ...noisy, a: { ...noisy.a, route: { ...noisy.a.route, model: `a<b>&"c'` } } };
    for (const chart of renderReport(odd, { title: "t", createdAt: new Date(0) }).charts) {
      expect(wellFormed(chart.svg)).toEqual({ ok: true });
      expect(chart.svg).not.toContain("a<b>");
    }
  });

  it("a fine-tuned route sends no few-shot exemplars and fewer prompt tokens", async () => {
    const s = await server(withBiasedJudge());
    const report = await evaluate(options(route("prompted", s), route("tuned", s, true), route("judge", s)));
    const systemPrompts = (model: string) =>
      s.requests
        .filter((r) => r.path === "/chat/completions" && r.body?.model === model)
        .map((r) => String(r.body.messages.find((m: { role: string }) => m.role === "system")?.content ?? ""));
    const prompted = systemPrompts("prompted");
    const tuned = systemPrompts("tuned");
    expect(prompted.length).toBeGreaterThan(0);
    expect(tuned.length).toBeGreaterThan(0);
    expect(prompted.some((p) => p.includes("Example"))).toBe(true);
    expect(tuned.some((p) => p.includes("Example"))).toBe(false);
    expect(report.b.route.fineTuned).toBe(true);
    expect(report.b.tokens.prompt).toBeLessThan(report.a.tokens.prompt);
    expect(report.b.finishRate).toBe(1);
  });

  it("counts a judge that answers out of format as a judge failure, not a fatal error", async () => {
    const s = await server((req) =>
      req.body?.response_format?.json_schema?.name === PAIRWISE_VERDICT
        ? { kind: "text", text: "I cannot decide." }
        : storyResponder()(req),
    );
    const report = await evaluate(options(route("a", s), route("b", s), route("judge", s)));
    expect(report.pairwise.judgeFailures).toBe(cases.length);
    expect(report.pairwise.judged).toBe(0);
    expect(report.pairwise.winRate).toBeNull();
    expect(report.cases[0]?.judge?.error).toMatch(/pairwise_verdict/);
    expect(renderReport(report, { title: "t", createdAt: new Date(0) }).markdown).toContain(
      `Judge failures: ${cases.length} case(s)`,
    );
  });

  it("reports a side whose endpoint fails as unfinished", async () => {
    const good = await server(withBiasedJudge());
    const bad = await server(() => ({ kind: "error", status: 400, message: "no such model" }));
    const report = await evaluate(options(route("good", good), route("missing", bad), route("judge", good)));
    expect(report.a.finishRate).toBe(1);
    expect(report.b.finishRate).toBe(0);
    expect(report.b.latencyMs.p50).toBeNull();
    expect(report.cases[0]?.b.error).toMatch(/bad_request/);
    expect(report.pairwise.compared).toBe(0);
    expect(renderReport(report, { title: "t", createdAt: new Date(0) }).markdown).toContain("failed: bad_request");
  });

  it("scores verdict pairs and takes nearest-rank percentiles", () => {
    expect(pairScore("2", "1")).toEqual({ score: 1, split: false });
    expect(pairScore("1", "2")).toEqual({ score: 0, split: false });
    expect(pairScore("1", "1")).toEqual({ score: 0.5, split: true });
    expect(pairScore("tie", "tie")).toEqual({ score: 0.5, split: false });
    expect(pairScore("2", "tie")).toEqual({ score: 0.5, split: false });
    expect(percentile([], 50)).toBeNull();
    expect(percentile([30, 10, 20], 50)).toBe(20);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100], 95)).toBe(19);
    expect(percentile([5], 95)).toBe(5);
  });
});

function cli(args: string[], env: Record<string, string>) {
  return runTrainingCli("eval.ts", args, env);
}

describe("train:eval", { timeout: 60_000 }, () => {
  it("writes report.md and the charts, prints the path, exits 0; usage errors exit 2", async () => {
    const s = await server(withBiasedJudge());
    const env = { OPENAI_BASE_URL: s.baseUrl, OPENAI_MODEL: "fake", OPENAI_API_KEY: "test", OPENAI_MAX_RETRIES: "0" };
    const out = join(dir, "out");
    const run = await cli(["--a", "big", "--b", "small#ft", "--limit", "2", "--out", out, "--database", dbUrl], env);
    expect(run.stderr).toContain("case 1/2 A: done");
    expect(run.stderr).toContain("case 2/2 B: done");
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(join(out, "report.md"));
    const markdown = readFileSync(join(out, "report.md"), "utf8");
    expect(markdown).toContain(`big@${s.baseUrl}`);
    expect(markdown).toContain(`small@${s.baseUrl}#ft`);
    expect(markdown).toContain("Held-out cases: 2");
    const svgs = readdirSync(out).filter((f) => f.endsWith(".svg"));
    expect(svgs.sort()).toEqual(Object.values(CHART_FILES).sort());
    for (const f of svgs) expect(wellFormed(readFileSync(join(out, f), "utf8"))).toEqual({ ok: true });
    // The default judge is the configuration's check route.
    expect(s.requests.some((r) => r.body?.response_format?.json_schema?.name === PAIRWISE_VERDICT)).toBe(true);
    expect(s.requests.filter((r) => r.body?.model === "small").length).toBeGreaterThan(0);

    const noB = await cli(["--a", "big", "--database", dbUrl], env);
    expect(noB.code).toBe(2);
    expect(noB.stderr).toContain("--b is missing");

    const badRate = await cli(["--a", "big", "--b", "small", "--noisy-tools", "1.5", "--database", dbUrl], env);
    expect(badRate.code).toBe(2);
    expect(badRate.stderr).toContain("--noisy-tools must be a rate from 0 to 1");

    const local = await cli(["--a", "big", "--b", "local:./continue-lora.gguf", "--database", dbUrl], env);
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("--b: train:eval calls endpoints and does not run local: adapters in-process");

    const empty = await cli(["--a", "big", "--b", "small", "--database", await databases.url(dir, "empty")], env);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("run npm run train:heldout first");
  });
});

/** A tiny XML well-formedness check: balanced, properly nested tags; only known entities. */
function wellFormed(xml: string): { ok: true } | { ok: false; error: string } {
  const stack: string[] = [];
  let i = 0;
  let sawRoot = false;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    const badEntity = findBadEntity(text);
    if (badEntity !== undefined) return { ok: false, error: `bad entity in text: ${badEntity}` };
    if (lt === -1) break;
    if (stack.length === 0 && sawRoot) return { ok: false, error: "content after the root element" };
    const gt = xml.indexOf(">", lt);
    if (gt === -1) return { ok: false, error: "unclosed tag" };
    const tag = xml.slice(lt + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) return { ok: false, error: `unexpected </${name}>` };
      if (stack.length === 0) sawRoot = true;
    } else {
      const selfClosing = tag.endsWith("/");
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const name = /^[A-Za-z][\w:.-]*/.exec(body)?.[0];
      if (name === undefined) return { ok: false, error: `bad tag <${tag}>` };
      // Attributes: name="value" pairs only, values without "<" or raw "&".
      const attrs = body.slice(name.length).trim();
      const attrPattern = /^([A-Za-z_:][\w:.-]*)="([^"<]*)"\s*/;
      let rest = attrs;
      while (rest !== "") {
        const m = attrPattern.exec(rest);
        if (m === null) return { ok: false, error: `bad attributes in <${name}>: ${rest.slice(0, 40)}` };
        const bad = findBadEntity(m[2] ?? "");
        if (bad !== undefined) return { ok: false, error: `bad entity in attribute: ${bad}` };
        rest = rest.slice(m[0].length);
      }
      if (stack.length === 0 && sawRoot) return { ok: false, error: "second root element" };
      if (selfClosing) {
        if (stack.length === 0) sawRoot = true;
      } else stack.push(name);
    }
    i = gt + 1;
  }
  if (stack.length > 0) return { ok: false, error: `unclosed <${stack.join("><")}>` };
  if (!sawRoot) return { ok: false, error: "no root element" };
  return { ok: true };
}

function findBadEntity(text: string): string | undefined {
  for (let at = text.indexOf("&"); at !== -1; at = text.indexOf("&", at + 1)) {
    const m = /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/.exec(text.slice(at));
    if (m === null) return text.slice(at, at + 10);
  }
  return undefined;
}
