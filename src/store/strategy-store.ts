/**
 * Structured-output strategies learned per route, in the database, so a restart does
 * not learn them again (src/llm/structured-strategy.ts).
 */
import {
  type LearnedStrategy,
  STRUCTURED_STRATEGIES,
  StrategyMemory,
  type StructuredStrategy,
} from "../llm/structured-strategy.ts";
import type { Db } from "./db.ts";

/** The strategy book, with what earlier runs learned loaded, and what is learned now saved. */
export async function loadStrategyBook(
  db: Db,
  options: { override?: StructuredStrategy; log?: (message: string) => void } = {},
): Promise<StrategyMemory> {
  const rows = await db.structuredStrategy.findMany();
  const learned: LearnedStrategy[] = rows
    .filter((r) => (STRUCTURED_STRATEGIES as readonly string[]).includes(r.strategy))
    .map((r) => ({ key: r.routeKey, strategy: r.strategy as StructuredStrategy, reason: r.reason }));
  return new StrategyMemory(learned, {
    ...options,
    persist: async ({ key, strategy, reason }) => {
      await db.structuredStrategy.upsert({
        where: { routeKey: key },
        create: { routeKey: key, strategy, reason: reason.slice(0, 500) },
        update: { strategy, reason: reason.slice(0, 500) },
      });
    },
  });
}
