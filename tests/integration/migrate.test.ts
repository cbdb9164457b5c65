/**
 * The migrator, on the database under test: SQLite (prisma/migrations, over
 * better-sqlite3) or, with TEST_DATABASE=postgres, PostgreSQL
 * (prisma/migrations-postgresql, over pg).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
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
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../helpers/database.ts";

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

describe.runIf(testDatabaseKind() === "postgresql")("the migrator on PostgreSQL", () => {
  it("two processes starting at once apply each migration once (Prisma's advisory lock)", async () => {
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    try {
      const [a, b] = await Promise.all([raw.migrate(raw.migrationsDir), applyPostgresMigrations(other)]);
      // One applied them all while the other waited, then found them done.
      const all = readdirSync(POSTGRES_MIGRATIONS_DIR, { withFileTypes: true }).filter((d) => d.isDirectory());
      expect([a.applied.length, b.applied.length].sort()).toEqual([0, all.length]);
      const rows = await raw.rows<{ n: string }>(`SELECT count(*) AS n FROM "_prisma_migrations"`);
      expect(Number(rows[0]?.n)).toBe(all.length);
    } finally {
      await other.end();
    }
  });
});

describe.runIf(testDatabaseKind() === "sqlite")("the migrator on SQLite", () => {
  /** A migrations folder whose first migration makes a parent row and a child row pointing at it. */
  function migrationsAfterParentAndChild(next: Record<string, string>): string {
    const migrations = join(dir, "migrations");
    const all: Record<string, string> = {
      "001_tables": `CREATE TABLE "parent" ("id" TEXT NOT NULL PRIMARY KEY);
        CREATE TABLE "child" ("id" TEXT NOT NULL PRIMARY KEY, "parentId" TEXT NOT NULL,
          CONSTRAINT "child_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "parent" ("id") ON DELETE CASCADE);
        INSERT INTO "parent" ("id") VALUES ('p');
        INSERT INTO "child" ("id", "parentId") VALUES ('c', 'p');`,
      ...next,
    };
    for (const [name, sql] of Object.entries(all)) {
      mkdirSync(join(migrations, name), { recursive: true });
      writeFileSync(join(migrations, name, "migration.sql"), sql);
    }
    return migrations;
  }

  it("a migration that redefines a table, as Prisma writes it, keeps the rows pointing at it", async () => {
    // `prisma migrate diff`'s RedefineTables: its PRAGMA foreign_keys=OFF does nothing in a transaction.
    const migrations = migrationsAfterParentAndChild({
      "002_redefine": `PRAGMA defer_foreign_keys=ON;
        PRAGMA foreign_keys=OFF;
        CREATE TABLE "new_parent" ("id" TEXT NOT NULL PRIMARY KEY, "extra" INTEGER NOT NULL DEFAULT 0);
        INSERT INTO "new_parent" ("id") SELECT "id" FROM "parent";
        DROP TABLE "parent";
        ALTER TABLE "new_parent" RENAME TO "parent";
        PRAGMA foreign_keys=ON;
        PRAGMA defer_foreign_keys=OFF;`,
    });
    expect((await raw.migrate(migrations)).applied).toEqual(["001_tables", "002_redefine"]);
    expect(await raw.rows(`SELECT * FROM "child"`)).toEqual([{ id: "c", parentId: "p" }]);
    expect(await raw.rows(`SELECT * FROM "parent"`)).toEqual([{ id: "p", extra: 0 }]);
    expect(await raw.rows("PRAGMA foreign_keys")).toEqual([{ foreign_keys: 1 }]);
  });

  it("a migration that leaves a key pointing nowhere is rolled back", async () => {
    const migrations = migrationsAfterParentAndChild({ "002_orphan": `DELETE FROM "parent";` });
    await expect(raw.migrate(migrations)).rejects.toThrow(/002_orphan leaves 1 row\(s\) whose foreign key/);
    expect(await raw.rows(`SELECT "id" FROM "parent"`)).toEqual([{ id: "p" }]);
  });
});
