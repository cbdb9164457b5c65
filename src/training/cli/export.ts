/**
 * `npm run train:export` — fine-tuning data from the recorded story runs.
 *
 *   npm run train:export -- [--out ./data/training/<time>] [--min-score 0.7] [--validation 0.1]
 *     [--tasks continue=0.5,open=0.2,choices=0.3] [--methods cot=1,react=1,reflexion=1]
 *     [--max 5000] [--seed 1] [--database file:./data/inkloom.db]
 *
 * Writes train.jsonl, validation.jsonl, preferences.jsonl and dataset-card.md, and checks
 * every line it wrote against the format (the same check as `npm run train:validate`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { exportTrainingData, renderCard } from "../export.ts";
import { validateJsonl } from "../jsonl-format.ts";
import { loadEnvFile, openTrainingDb, parseRatios, runCli, UsageError } from "./common.ts";

function number(flag: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${flag} must be a number from ${min} to ${max}`);
  return n;
}

async function main(): Promise<number> {
  loadEnvFile();
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      "min-score": { type: "string" },
      validation: { type: "string" },
      tasks: { type: "string" },
      methods: { type: "string" },
      max: { type: "string" },
      seed: { type: "string" },
      database: { type: "string" },
    },
  });
  const minScore = number("min-score", values["min-score"], 0, 1);
  const validationShare = number("validation", values.validation, 0, 0.5);
  const maxExamples = number("max", values.max, 1, 10_000_000);
  const seed = number("seed", values.seed, 0, 2 ** 31);
  const tasks = parseRatios("tasks", values.tasks);
  const methods = parseRatios("methods", values.methods);
  const out = resolve(values.out ?? join("data", "training", new Date().toISOString().replace(/[:.]/g, "-")));
  const db = await openTrainingDb(values.database);
  try {
    const data = await exportTrainingData(db, {
      ...(minScore === undefined ? {} : { minScore }),
      ...(validationShare === undefined ? {} : { validationShare }),
      ...(maxExamples === undefined ? {} : { maxExamples }),
      ...(seed === undefined ? {} : { seed }),
      ...(tasks === undefined && methods === undefined
        ? {}
        : { mix: { ...(tasks === undefined ? {} : { tasks }), ...(methods === undefined ? {} : { methods }) } }),
    });
    mkdirSync(out, { recursive: true });
    const files = {
      "train.jsonl": data.train,
      "validation.jsonl": data.validation,
      "preferences.jsonl": data.preferences,
    };
    let bad = 0;
    for (const [name, rows] of Object.entries(files)) {
      const text = rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length > 0 ? "\n" : "");
      writeFileSync(join(out, name), text);
      if (rows.length === 0) continue;
      const report = validateJsonl(text, name === "preferences.jsonl" ? "preference" : "chat");
      bad += report.errorCount;
      for (const e of report.errors) process.stderr.write(`${name} ${e.message}\n`);
    }
    writeFileSync(join(out, "dataset-card.md"), renderCard(data.card));
    process.stdout.write(
      `${data.train.length} train, ${data.validation.length} validation, ${data.preferences.length} preference example(s) in ${out}\n`,
    );
    if (data.train.length === 0) {
      process.stdout.write(
        "No run passed the filter: play more stories, or lower --min-score (see dataset-card.md).\n",
      );
    }
    return bad === 0 ? 0 : 1;
  } finally {
    await db.$disconnect();
  }
}

runCli(main);
