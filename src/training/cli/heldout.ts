/**
 * `npm run train:heldout` — freeze real story states for evaluation. Held-out stories
 * are never exported for training.
 *
 *   npm run train:heldout -- [--count 20] [--seed 1] [--list]
 */
import { parseArgs } from "node:util";
import { freezeHeldout, loadHeldout } from "../heldout.ts";
import { loadEnvFile, openTrainingDb, runCli, UsageError } from "./common.ts";

async function main(): Promise<number> {
  loadEnvFile();
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "20" },
      seed: { type: "string", default: "1" },
      list: { type: "boolean", default: false },
      database: { type: "string" },
    },
  });
  const count = Number(values.count);
  const seed = Number(values.seed);
  if (!Number.isInteger(count) || count < 0 || count > 10_000) throw new UsageError("--count must be 0-10000");
  if (!Number.isInteger(seed)) throw new UsageError("--seed must be a whole number");
  const db = await openTrainingDb(values.database);
  try {
    if (!values.list) {
      const { added, total } = await freezeHeldout(db, { count, seed });
      process.stdout.write(`held out ${added} more story state(s); ${total} in all\n`);
      if (added < count) {
        process.stdout.write(
          total === 0
            ? "No story has a finished chapter yet: play some stories first.\n"
            : "(fewer than asked: every story with finished chapters is held out already, one state each)\n",
        );
      }
    }
    if (values.list) {
      for (const c of await loadHeldout(db)) {
        process.stdout.write(`${c.id}  ${c.input.task} chapter ${c.input.chapterNumber} of story ${c.storyId}\n`);
      }
    }
    return 0;
  } finally {
    await db.$disconnect();
  }
}

runCli(main);
