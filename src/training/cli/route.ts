/**
 * `npm run train:route` — show or set which model serves each task.
 *
 *   npm run train:route                                   list every task's route
 *   npm run train:route -- continue inkloom-lora@http://localhost:8000/v1#ft
 *   npm run train:route -- continue --model M [--base-url URL] [--fine-tuned]
 *   npm run train:route -- continue local:./adapters/continue.gguf   a LoRA adapter on LOCAL_MODEL
 *   npm run train:route -- continue --clear               back to the configuration
 *
 * A stored route overrides MODEL_<TASK> from the configuration at the next start. A
 * `local:` route is checked here (a LoRA adapter GGUF, for LOCAL_MODEL's architecture
 * when LOCAL_MODEL is set) and again when the bot starts.
 */
import { parseArgs } from "node:util";
import { adapterPathOf, loraAdapterProblem } from "../../llm/local-adapters.ts";
import { TASKS } from "../../llm/types.ts";
import { formatRoute, isTask, parseRouteSpec, RouteStore } from "../routes.ts";
import { loadEnvFile, openTrainingDb, runCli, tryConfig, UsageError } from "./common.ts";

const USAGE = `usage: npm run train:route [-- <task> (<model[@baseUrl][#ft]> | local:<adapter.gguf> | --model M [--base-url URL] [--fine-tuned] | --clear)]
tasks: ${TASKS.join(", ")}`;

async function main(): Promise<number> {
  loadEnvFile();
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: "string" },
      "base-url": { type: "string" },
      "fine-tuned": { type: "boolean", default: false },
      clear: { type: "boolean", default: false },
      database: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const config = tryConfig();
  const defaultBaseUrl = values["base-url"] ?? config?.models.continue.baseUrl ?? "https://api.openai.com/v1";
  const db = await openTrainingDb(values.database);
  try {
    const store = new RouteStore(db);
    const [task, spec] = positionals;
    if (task === undefined) {
      const stored = new Map((await store.all()).map((r) => [r.task, r]));
      for (const t of TASKS) {
        const route = stored.get(t) ?? config?.models[t];
        const from = stored.has(t) ? `set by ${stored.get(t)?.source}` : "configuration";
        process.stdout.write(
          `${t.padEnd(10)} ${route === undefined ? "(not configured)" : formatRoute(route)}  [${from}]\n`,
        );
      }
      return 0;
    }
    if (!isTask(task)) throw new UsageError(`unknown task "${task}"\n${USAGE}`);
    if (values.clear) {
      const cleared = await store.clear(task);
      process.stdout.write(cleared ? `${task}: back to the configuration\n` : `${task}: had no stored route\n`);
      return 0;
    }
    const text = spec ?? values.model;
    if (text === undefined) throw new UsageError(`name the model for ${task}\n${USAGE}`);
    let route: ReturnType<typeof parseRouteSpec>;
    try {
      route = parseRouteSpec(text, defaultBaseUrl);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const adapter = adapterPathOf(route);
    if (adapter !== undefined) {
      if (values["base-url"] !== undefined) {
        throw new UsageError(`${text} is a LoRA adapter on the embedded model: it takes no --base-url`);
      }
      const problem = loraAdapterProblem(adapter, config?.local?.modelPath);
      if (problem !== undefined) throw new UsageError(problem);
    } else if (!/^https?:\/\/\S+$/.test(route.baseUrl)) {
      throw new UsageError(`"${route.baseUrl}" is not an http(s) URL`);
    }
    if (values["fine-tuned"]) route.fineTuned = true;
    await store.set(task, route, "cli");
    process.stdout.write(
      `${task} -> ${formatRoute(route)}${route.fineTuned ? " (fine-tuned: zero-shot prompt)" : ""}\n`,
    );
    if (adapter !== undefined && config?.local === undefined) {
      process.stdout.write(
        "note: a local: adapter runs on the embedded model: set LOCAL_MODEL to its base model's .gguf before the bot starts\n",
      );
    }
    return 0;
  } finally {
    await db.$disconnect();
  }
}

runCli(main);
