/**
 * `npm run train:eval` — run two model configurations on the held-out story states and
 * write a Markdown report with SVG charts (FireAct's evaluation: latency, tokens, cost,
 * finish rate, continuity failures, pairwise judge win rate; optionally noisy tools).
 *
 *   npm run train:eval -- --a gpt-4.1@https://api.openai.com/v1 --b inkloom-lora@http://localhost:8000/v1#ft
 *     [--judge <route>] [--noisy-tools 0.5] [--limit 20] [--seed 1] [--out ./data/eval/<time>] [--database URL]
 *
 * A route is `model`, `model@baseUrl`, either with `#ft` for a fine-tuned model (zero-shot
 * prompt). The judge (continuity checks of both sides, pairwise verdicts) defaults to the
 * configuration's `check` route.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../../app/config.ts";
import { adapterPathOf } from "../../llm/local-adapters.ts";
import type { ModelRoute } from "../../llm/types.ts";
import { evaluate } from "../eval.ts";
import { renderReport } from "../eval-report.ts";
import { loadHeldout } from "../heldout.ts";
import { formatRoute, parseRouteSpec } from "../routes.ts";
import { loadEnvFile, openTrainingDb, runCli, tryConfig, UsageError } from "./common.ts";

const USAGE = `usage: npm run train:eval -- --a <route> --b <route> [--judge <route>] [--noisy-tools 0..1]
       [--limit N] [--seed N] [--out DIR] [--database URL]
a route: model, model@http://host/v1, either with #ft for a fine-tuned model`;

function route(flag: string, spec: string, defaultBaseUrl: string): ModelRoute {
  let parsed: ModelRoute;
  try {
    parsed = parseRouteSpec(spec, defaultBaseUrl);
  } catch (error) {
    throw new UsageError(`--${flag}: ${(error as Error).message}`);
  }
  if (adapterPathOf(parsed) !== undefined) {
    throw new UsageError(
      `--${flag}: train:eval calls endpoints and does not run local: adapters in-process; ` +
        "serve the adapter with llama.cpp's server (llama-server -m <base.gguf> --lora <adapter.gguf>) " +
        "and name it model@http://host:port/v1#ft",
    );
  }
  if (!/^https?:\/\/\S+$/.test(parsed.baseUrl)) {
    throw new UsageError(`--${flag}: "${parsed.baseUrl}" is not an http(s) URL`);
  }
  return parsed;
}

function timestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
}

async function main(): Promise<number> {
  loadEnvFile();
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        a: { type: "string" },
        b: { type: "string" },
        judge: { type: "string" },
        "noisy-tools": { type: "string", default: "0" },
        limit: { type: "string" },
        seed: { type: "string", default: "1" },
        out: { type: "string" },
        database: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  const text = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const specA = text("a");
  const specB = text("b");
  if (specA === undefined || specB === undefined) {
    throw new UsageError(`name both configurations: ${specA === undefined ? "--a" : "--b"} is missing\n${USAGE}`);
  }
  const noisyTools = Number(text("noisy-tools"));
  if (text("noisy-tools")?.trim() === "" || !Number.isFinite(noisyTools) || noisyTools < 0 || noisyTools > 1) {
    throw new UsageError(`--noisy-tools must be a rate from 0 to 1, such as 0.5 (got "${text("noisy-tools")}")`);
  }
  const seed = Number(text("seed"));
  if (!Number.isInteger(seed)) throw new UsageError("--seed must be a whole number");
  const limitText = text("limit");
  const limit = limitText === undefined ? undefined : Number(limitText);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new UsageError("--limit must be a whole number of cases, 1 or more");
  }

  const config = tryConfig();
  if (config === undefined) {
    let problem = "";
    try {
      loadConfig(process.env);
    } catch (error) {
      if (error instanceof ConfigError) problem = error.message;
    }
    throw new UsageError(`the evaluation needs a model configuration for its defaults:\n${problem}`);
  }
  const defaultBaseUrl = config.models.continue.baseUrl;
  const a = route("a", specA, defaultBaseUrl);
  const b = route("b", specB, defaultBaseUrl);
  const judgeSpec = text("judge");
  const judge = judgeSpec === undefined ? config.models.check : route("judge", judgeSpec, defaultBaseUrl);

  const db = await openTrainingDb(text("database"));
  let cases: Awaited<ReturnType<typeof loadHeldout>>;
  try {
    cases = await loadHeldout(db);
  } finally {
    await db.$disconnect();
  }
  if (cases.length === 0) throw new UsageError("no held-out cases: run npm run train:heldout first");
  if (limit !== undefined) cases = cases.slice(0, limit);

  const createdAt = new Date();
  const out = resolve(text("out") ?? join("data", "eval", timestamp(createdAt)));
  process.stderr.write(
    `evaluating ${cases.length} case(s): A ${formatRoute(a)} vs B ${formatRoute(b)}, judge ${formatRoute(judge)}` +
      `${noisyTools > 0 ? `, noisy tools ${noisyTools}` : ""}\n`,
  );
  const report = await evaluate({
    cases,
    a,
    b,
    judge,
    apiKey: config.apiKey,
    methods: config.methods,
    maxSteps: config.reactMaxSteps,
    recentChapters: config.recentChapters,
    timeoutMs: config.timeoutMs,
    maxRetries: config.maxRetries,
    prices: config.prices,
    noisyTools,
    seed,
    onProgress: (e) => {
      if (e.phase === "write") {
        const what = e.outcome === "done" ? `done in ${e.latencyMs} ms` : `failed (${e.error ?? "unknown error"})`;
        process.stderr.write(`case ${e.index}/${e.total} ${e.side.toUpperCase()}: ${what}\n`);
      } else {
        const what = e.score === null ? `judge failed (${e.error ?? "unknown error"})` : `B scores ${e.score}`;
        process.stderr.write(`judge ${e.index}/${e.total}: ${what}\n`);
      }
    },
  });

  const rendered = renderReport(report, { title: `Inkloom evaluation: ${a.model} vs ${b.model}`, createdAt });
  mkdirSync(out, { recursive: true });
  for (const chart of rendered.charts) writeFileSync(join(out, chart.name), chart.svg);
  writeFileSync(join(out, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  const path = join(out, "report.md");
  writeFileSync(path, rendered.markdown);
  const { a: ma, b: mb, pairwise } = report;
  process.stderr.write(
    `finish rate A ${(ma.finishRate * 100).toFixed(0)}% B ${(mb.finishRate * 100).toFixed(0)}%; ` +
      `B's win rate ${pairwise.winRate === null ? "n/a" : `${(pairwise.winRate * 100).toFixed(1)}%`}\n`,
  );
  process.stdout.write(`${path}\n`);
  return 0;
}

runCli(main);
