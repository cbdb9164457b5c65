/**
 * The migrator, on the database under test: SQLite (prisma/migrations, over
 * better-sqlite3) or, with TEST_DATABASE=postgres, PostgreSQL
 * (prisma/migrations-postgresql, over pg). What only one of them does is tested in
 * migrate.postgres.test.ts and migrate.sqlite.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  applyMigrations,
  applyPostgresMigrations,
  MIGRATIONS_DIR,
  type MigrationResult,
  POSTGRES_MIGRATIONS_DIR,
} from "../../src/store/migrate.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

/** The database under test, reached without Prisma. */
interface Raw {
  migrationsDir: string;
  migrate(dir: string): Promise<MigrationResult>;
  rows<T>(sql: string): Promise<T[]>;
  hasTable(name: string): Promise<boolean>;
  close(): Promise<void>;
}

async function connect(database: TestDatabase): Promise<Raw> {
  if (database.kind === "sqlite") {
    const db = new Database(database.url.replace(/^file:/, ""));
    return {
      migrationsDir: MIGRATIONS_DIR,
      migrate: async (dir) => applyMigrations(db, dir),
      rows: async <T>(sql: string) => db.prepare(sql).all() as T[],
      hasTable: async (name) =>
        db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined,
      close: async () => {
        db.close();
      },
    };
  }
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  return {
    migrationsDir: POSTGRES_MIGRATIONS_DIR,
    migrate: (dir) => applyPostgresMigrations(client, dir),
    rows: async <T>(sql: string) => (await client.query(sql)).rows as T[],
    hasTable: async (name) =>
      (await client.query(`SELECT to_regclass($1) IS NOT NULL AS found`, [`"${name}"`])).rows[0]?.found === true,
    close: () => client.end(),
  };
}

let dir: string;
let database: TestDatabase;
let raw: Raw;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-migrate-"));
  database = await createTestDatabase(dir);
  raw = await connect(database);
});

afterEach(async () => {
  await raw.close();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe(`the migrator (${process.env.TEST_DATABASE ?? "sqlite"})`, () => {
  it("applies the committed migrations once and records them as Prisma does", async () => {
    expect((await raw.migrate(raw.migrationsDir)).applied.length).toBeGreaterThan(0);
    expect((await raw.migrate(raw.migrationsDir)).applied).toEqual([]);
    const rows = await raw.rows<{ finished_at: unknown; checksum: string }>(
      `SELECT migration_name, finished_at, checksum FROM "_prisma_migrations"`,
    );
    expect(rows.every((r) => r.finished_at !== null && /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true);
    for (const table of ["Story", "Chapter", "AgentRun", "Choice"]) expect(await raw.hasTable(table)).toBe(true);
  });

  it("a failing migration is rolled back whole and not recorded", async () => {
    const migrations = join(dir, "migrations");
    mkdirSync(join(migrations, "001_ok"), { recursive: true });
    mkdirSync(join(migrations, "002_bad"), { recursive: true });
    writeFileSync(join(migrations, "001_ok", "migration.sql"), "CREATE TABLE a (id INTEGER);");
    writeFileSync(join(migrations, "002_bad", "migration.sql"), "CREATE TABLE b (id INTEGER); SELECT * FROM nope;");
    await expect(raw.migrate(migrations)).rejects.toThrow(/nope/);
    const names = (await raw.rows<{ migration_name: string }>(`SELECT migration_name FROM "_prisma_migrations"`)).map(
      (r) => r.migration_name,
    );
    expect(names).toEqual(["001_ok"]);
    expect(await raw.hasTable("a")).toBe(true);
    expect(await raw.hasTable("b")).toBe(false);
  });
});
