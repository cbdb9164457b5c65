/**
 * Model routes: which model and endpoint serve each task. The configuration gives
 * the defaults (OPENAI_MODEL, MODEL_<TASK>, MODEL_<TASK>_BASE_URL, MODEL_<TASK>_FINE_TUNED);
 * a route stored in the database (`npm run train:route`, or a finished fine-tuning job)
 * overrides the configuration for its task. A fine-tuned route gets the zero-shot
 * prompt; a prompted one the few-shot exemplars of its method (src/agent/prompts.ts).
 */
import { adapterPathOf, adapterRoute, LOCAL_ROUTE_PREFIX } from "../llm/local-adapters.ts";
import { type ModelRoute, TASKS, type Task } from "../llm/types.ts";
import type { Db } from "../store/db.ts";

export interface StoredRoute extends ModelRoute {
  task: Task;
  source: string;
  updatedAt: Date;
}

export function isTask(value: string): value is Task {
  return (TASKS as readonly string[]).includes(value);
}

/**
 * A route written on a command line: `model`, `model@baseUrl`, either with `#ft` for a
 * fine-tuned model ("ft:gpt-4.1-mini:acme::abc@https://api.openai.com/v1#ft",
 * "inkloom-lora@http://localhost:8000/v1#ft"). Without a base URL, `defaultBaseUrl`.
 * `local:<adapter.gguf>` is a LoRA adapter on the embedded model (LOCAL_MODEL), resolved
 * against the working directory and always fine-tuned (src/llm/local-adapters.ts).
 */
export function parseRouteSpec(spec: string, defaultBaseUrl: string): ModelRoute {
  let text = spec.trim();
  let fineTuned = false;
  if (text.endsWith("#ft")) {
    fineTuned = true;
    text = text.slice(0, -3);
  }
  if (text.startsWith(LOCAL_ROUTE_PREFIX)) {
    const path = text.slice(LOCAL_ROUTE_PREFIX.length).trim();
    if (path === "") throw new Error(`"${spec}" names no adapter: write local:<path/to/adapter.gguf>`);
    if (/@https?:\/\//.test(path)) {
      throw new Error(`"${spec}": a local: adapter runs in this process, on LOCAL_MODEL; it takes no base URL`);
    }
    return adapterRoute(path);
  }
  // The base URL starts at the last "@" followed by http(s)://: model names may hold "@" too.
  const at = text.search(/@https?:\/\/[^@]*$/);
  const model = (at === -1 ? text : text.slice(0, at)).trim();
  const baseUrl = at === -1 ? defaultBaseUrl : text.slice(at + 1).trim();
  if (model === "") throw new Error(`"${spec}" names no model: write model, model@http://host/v1, or add #ft`);
  return { model, baseUrl: baseUrl.replace(/\/+$/, ""), fineTuned };
}

export function formatRoute(route: ModelRoute): string {
  // An adapter as it is written (`local:<path>`); one made not fine-tuned by MODEL_<TASK>_FINE_TUNED says so.
  if (adapterPathOf(route) !== undefined) return `${route.model}${route.fineTuned ? "" : " (prompted)"}`;
  return `${route.model}@${route.baseUrl}${route.fineTuned ? "#ft" : ""}`;
}

export class RouteStore {
  constructor(private readonly db: Db) {}

  async all(): Promise<StoredRoute[]> {
    const rows = await this.db.modelRoute.findMany({ orderBy: { task: "asc" } });
    return rows.filter((r) => isTask(r.task)) as StoredRoute[];
  }

  async set(task: Task, route: ModelRoute, source: "cli" | "finetune"): Promise<void> {
    const data = { model: route.model, baseUrl: route.baseUrl, fineTuned: route.fineTuned, source };
    await this.db.modelRoute.upsert({ where: { task }, create: { task, ...data }, update: data });
  }

  /** Back to the configuration's route. True when there was a stored one. */
  async clear(task: Task): Promise<boolean> {
    const { count } = await this.db.modelRoute.deleteMany({ where: { task } });
    return count > 0;
  }

  /** The configuration's routes with the stored ones laid over them. */
  async resolve(configured: Record<Task, ModelRoute>): Promise<Record<Task, ModelRoute>> {
    const routes = { ...configured };
    for (const r of await this.all()) routes[r.task] = { model: r.model, baseUrl: r.baseUrl, fineTuned: r.fineTuned };
    return routes;
  }
}
