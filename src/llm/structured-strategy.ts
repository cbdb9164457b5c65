/**
 * How a route is asked for structured output (a plan, a chapter's parts, a continuity
 * report). Endpoints differ in what they honour (PLATFORMS.md, docs/endpoints.md):
 *
 * - `tool`: a forced tool call (`tool_choice: { function: { name } }`). OpenAI, vLLM and
 *   llama.cpp server honour it; Ollama drops it and answers in text.
 * - `json_schema`: `response_format: json_schema` (strict on OpenAI; a grammar on vLLM,
 *   llama.cpp server and Ollama).
 * - `json_text`: the schema in the prompt and JSON in the answer's text, validated, with
 *   one repair. Works everywhere a model can write JSON.
 *
 * A route starts from its endpoint's default and only ever moves down this list, when
 * the endpoint shows it does not honour the current strategy (a forced call answered in
 * text, a 400 naming the parameter, a json_schema answer that is no JSON at all). What was
 * learned is remembered (`StrategyBook`), in the database, so a restart does not learn it again.
 */
import type { ModelRoute } from "./types.ts";

export const STRUCTURED_STRATEGIES = ["tool", "json_schema", "json_text"] as const;
export type StructuredStrategy = (typeof STRUCTURED_STRATEGIES)[number];

/** The key a route's strategy is remembered under: one model on one endpoint. */
export function routeKey(route: Pick<ModelRoute, "baseUrl" | "model">): string {
  return `${route.baseUrl.replace(/\/+$/, "")}#${route.model}`;
}

/**
 * Where a route starts before anything was learned: Ollama (its default port 11434, or
 * "ollama" in the address) with `json_schema`, which it honours while it drops forced
 * tool calls; every other endpoint with the forced tool call, which keeps the
 * trajectory in FireAct's tool-call shape and which OpenAI, vLLM and llama.cpp honour.
 */
export function defaultStrategy(route: Pick<ModelRoute, "baseUrl">): StructuredStrategy {
  let url: URL | undefined;
  try {
    url = new URL(route.baseUrl);
  } catch {
    return "tool";
  }
  if (url.port === "11434" || /ollama/i.test(url.hostname) || /ollama/i.test(url.pathname)) return "json_schema";
  return "tool";
}

/** The next strategy down, when `current` is not honoured; undefined after `json_text`. */
export function nextStrategy(current: StructuredStrategy): StructuredStrategy | undefined {
  return STRUCTURED_STRATEGIES[STRUCTURED_STRATEGIES.indexOf(current) + 1];
}

/** A 400 that blames the structured-output parameters (not the model name or the key). */
export function rejectsStructuredParameters(message: string): boolean {
  return /tool|function|response_format|json_schema|schema|grammar/i.test(message);
}

/** What each route does, learned once and remembered. */
export interface StrategyBook {
  /** The strategy to use for this route now. */
  get(route: ModelRoute): StructuredStrategy;
  /**
   * The route did not honour its strategy: use `strategy` from now on (never moves up),
   * and remember it across restarts.
   */
  learn(route: ModelRoute, strategy: StructuredStrategy, reason: string): void;
}

/** A learned strategy as stored. */
export interface LearnedStrategy {
  key: string;
  strategy: StructuredStrategy;
  reason: string;
}

/**
 * The strategy book: endpoint defaults, an operator's override (`STRUCTURED_OUTPUT`),
 * what was learned before (loaded at start), and a `persist` hook for what is learned now.
 */
export class StrategyMemory implements StrategyBook {
  readonly #learned = new Map<string, StructuredStrategy>();

  constructor(
    learned: Iterable<LearnedStrategy> = [],
    private readonly options: {
      /** Start every route here instead of its endpoint's default. */
      override?: StructuredStrategy;
      persist?: (learned: LearnedStrategy) => Promise<void>;
      log?: (message: string) => void;
    } = {},
  ) {
    for (const l of learned) this.#learned.set(l.key, l.strategy);
  }

  get(route: ModelRoute): StructuredStrategy {
    return this.#learned.get(routeKey(route)) ?? this.options.override ?? defaultStrategy(route);
  }

  learn(route: ModelRoute, strategy: StructuredStrategy, reason: string): void {
    const key = routeKey(route);
    const current = this.get(route);
    if (STRUCTURED_STRATEGIES.indexOf(strategy) <= STRUCTURED_STRATEGIES.indexOf(current)) return;
    this.#learned.set(key, strategy);
    this.options.log?.(`structured output for ${key}: ${strategy} from now on (${reason})`);
    this.options.persist?.({ key, strategy, reason }).catch((error: unknown) => {
      // Not fatal: the route relearns it after a restart.
      this.options.log?.(`could not remember the strategy of ${key}: ${String(error)}`);
    });
  }
}
