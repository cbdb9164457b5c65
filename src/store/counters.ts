/**
 * Counters that must hold across processes (the `Counter` table): daily quotas,
 * daily budgets, cooldowns. A limit is never checked by counting and then
 * inserting, which two processes can both pass: a counter is taken by one
 * conditional UPDATE ("still within the limit and past the cooldown, then add"),
 * which SQLite and PostgreSQL both run atomically: PostgreSQL re-checks the
 * condition on the row another transaction just changed, once that one commits.
 */
import { type Db, isPrismaError, type PrismaPromise } from "./db.ts";

type Counters = Pick<Db, "counter">;

export interface Take {
  /** How many to take (default 1). */
  n?: number;
  /** The count may not go above this. */
  limit?: number;
  /** Milliseconds that must have passed since the counter was last taken. */
  cooldownMs?: number;
  now?: Date;
}

/**
 * Make sure the counter exists. A new one starts at `seed()`: the count so far, from
 * the rows it stands for (so a counter created mid-day knows the day's earlier ones).
 * When one is created, counters past their `expiresAt` are deleted.
 */
export async function ensureCounter(
  db: Counters,
  key: string,
  options: { seed?: () => Promise<number>; expiresAt?: Date } = {},
): Promise<void> {
  if ((await db.counter.findUnique({ where: { key }, select: { key: true } })) !== null) return;
  const count = (await options.seed?.()) ?? 0;
  try {
    await db.counter.create({
      data: { key, count, takenAt: new Date(0), expiresAt: options.expiresAt ?? null },
      select: { key: true },
    });
  } catch (error) {
    // Created meanwhile by another request or process: theirs counts.
    if (isPrismaError(error, "P2002")) return;
    throw error;
  }
  await db.counter.deleteMany({ where: { expiresAt: { lt: new Date() } } });
}

function takeWhere(key: string, { n = 1, limit, cooldownMs, now = new Date() }: Take) {
  return {
    key,
    ...(limit === undefined ? {} : { count: { lte: limit - n } }),
    ...(cooldownMs === undefined || cooldownMs <= 0 ? {} : { takenAt: { lte: new Date(now.getTime() - cooldownMs) } }),
  };
}

/**
 * Take from an existing counter, as one write of a batch transaction: when the limit
 * or the cooldown does not allow it, it throws P2025 and the whole transaction rolls back.
 */
export function takeCounter(db: Counters, key: string, take: Take = {}): PrismaPromise<{ key: string }> {
  return db.counter.update({
    where: takeWhere(key, take),
    data: { count: { increment: take.n ?? 1 }, takenAt: take.now ?? new Date() },
    select: { key: true },
  });
}

/** Take from an existing counter; false (and nothing taken) when the limit or the cooldown does not allow it. */
export async function tryTakeCounter(db: Counters, key: string, take: Take = {}): Promise<boolean> {
  const { count } = await db.counter.updateMany({
    where: takeWhere(key, take),
    data: { count: { increment: take.n ?? 1 }, takenAt: take.now ?? new Date() },
  });
  return count === 1;
}

/** Take as many as the limit allows, up to `n`; returns how many were taken. */
export async function takeUpTo(db: Counters, key: string, n: number, limit: number): Promise<number> {
  for (let k = Math.min(n, limit); k > 0; k--) {
    if (await tryTakeCounter(db, key, { n: k, limit })) return k;
  }
  return 0;
}

/** Give `n` back (a picture that failed, say), never below zero; a missing counter is left alone. */
export function giveBackCounter(db: Counters, key: string, n = 1): PrismaPromise<{ count: number }> {
  return db.counter.updateMany({ where: { key, count: { gte: n } }, data: { count: { decrement: n } } });
}

/** The counter's state, null when it does not exist. */
export function readCounter(db: Counters, key: string): Promise<{ count: number; takenAt: Date } | null> {
  return db.counter.findUnique({ where: { key }, select: { count: true, takenAt: true } });
}
