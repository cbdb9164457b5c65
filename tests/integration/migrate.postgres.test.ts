/**
 * The migrator on PostgreSQL only (prisma/migrations-postgresql, over pg). Runs in
 * the PostgreSQL pass (`npm run test:postgres`): vitest.config.ts leaves
 * `*.postgres.test.ts` out of the SQLite one. What both databases do is in
 * migrate.test.ts.
 */
import { readdirSync } from "node:fs";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyPostgresMigrations, POSTGRES_MIGRATIONS_DIR } from "../../src/store/migrate.ts";
import { createPostgresDatabase, type TestDatabase } from "../helpers/database.ts";

let database: TestDatabase;
let client: pg.Client;

beforeEach(async () => {
  database = await createPostgresDatabase("migrate");
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
});

afterEach(async () => {
  await client.end();
  await database.drop();
});

describe("the migrator on PostgreSQL", () => {
  it("two processes starting at once apply each migration once (Prisma's advisory lock)", async () => {
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    try {
      const [a, b] = await Promise.all([applyPostgresMigrations(client), applyPostgresMigrations(other)]);
      // One applied them all while the other waited, then found them done.
      const all = readdirSync(POSTGRES_MIGRATIONS_DIR, { withFileTypes: true }).filter((d) => d.isDirectory());
      expect([a.applied.length, b.applied.length].sort()).toEqual([0, all.length]);
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "_prisma_migrations"`);
      expect(Number(rows[0]?.n)).toBe(all.length);
    } finally {
      await other.end();
    }
  });
});
