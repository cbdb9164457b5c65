/**
 * A burst of commands on one process waits in line for a pooled PostgreSQL connection
 * rather than being refused: with every connection busy for longer than pg-pool's old
 * 10 s, a query and a transaction still get theirs once it frees (bench:scale lost 117 of
 * 200 /starts on a loaded machine before). PostgreSQL pass only (`npm run test:postgres`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { type Db, openDatabase, POOL_WAIT_MS } from "../../src/store/db.ts";
import { TestDatabases } from "../helpers/database.ts";

let dir: string;
const databases = new TestDatabases();
let db: Db;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-pool-"));
  db = await openDatabase(await databases.url(dir, "pool"), { poolSize: 1 });
});

afterEach(async () => {
  await db.$disconnect();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

it("a query and a transaction wait past 10 s for the only connection, then run", async () => {
  expect(POOL_WAIT_MS).toBeGreaterThan(12_000);
  const started = Date.now();
  // The pool's one connection is busy for 11 s.
  const busy = db.$transaction(async (tx) => {
    await tx.$executeRawUnsafe("SELECT pg_sleep(11)");
  });
  await new Promise((r) => setTimeout(r, 200));
  const [count, inTransaction] = await Promise.all([db.story.count(), db.$transaction(async (tx) => tx.story.count())]);
  await busy;
  expect(count).toBe(0);
  expect(inTransaction).toBe(0);
  expect(Date.now() - started).toBeGreaterThanOrEqual(10_500);
}, 40_000);
