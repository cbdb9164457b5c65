/**
 * The migrator on SQLite only (over better-sqlite3): Prisma's table redefinitions and
 * the foreign keys they must keep. Runs in the SQLite pass (`npm test`):
 * vitest.config.ts leaves `*.sqlite.test.ts` out of the PostgreSQL one. What both
 * databases do is in migrate.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyMigrations } from "../../src/store/migrate.ts";

let dir: string;
let db: Database.Database;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-migrate-sqlite-"));
  db = new Database(join(dir, "test.db"));
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function write(migrations: string, name: string, sql: string): void {
  mkdirSync(join(migrations, name), { recursive: true });
  writeFileSync(join(migrations, name, "migration.sql"), sql);
}

const rows = (sql: string): unknown[] => db.prepare(sql).all();

describe("the migrator on SQLite", () => {
  it("a migration that redefines a table, as Prisma writes it, keeps the rows pointing at it", () => {
    const migrations = join(dir, "migrations");
    write(
      migrations,
      "001_tables",
      `CREATE TABLE "parent" ("id" TEXT NOT NULL PRIMARY KEY);
       CREATE TABLE "child" ("id" TEXT NOT NULL PRIMARY KEY, "parentId" TEXT NOT NULL,
         CONSTRAINT "child_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "parent" ("id") ON DELETE CASCADE);
       INSERT INTO "parent" ("id") VALUES ('p');
       INSERT INTO "child" ("id", "parentId") VALUES ('c', 'p');`,
    );
    // `prisma migrate diff`'s RedefineTables: its PRAGMA foreign_keys=OFF does nothing in a transaction.
    write(
      migrations,
      "002_redefine",
      `PRAGMA defer_foreign_keys=ON;
       PRAGMA foreign_keys=OFF;
       CREATE TABLE "new_parent" ("id" TEXT NOT NULL PRIMARY KEY, "extra" INTEGER NOT NULL DEFAULT 0);
       INSERT INTO "new_parent" ("id") SELECT "id" FROM "parent";
       DROP TABLE "parent";
       ALTER TABLE "new_parent" RENAME TO "parent";
       PRAGMA foreign_keys=ON;
       PRAGMA defer_foreign_keys=OFF;`,
    );
    expect(applyMigrations(db, migrations).applied).toEqual(["001_tables", "002_redefine"]);
    expect(rows(`SELECT * FROM "child"`)).toEqual([{ id: "c", parentId: "p" }]);
    expect(rows(`SELECT * FROM "parent"`)).toEqual([{ id: "p", extra: 0 }]);
    expect(rows("PRAGMA foreign_keys")).toEqual([{ foreign_keys: 1 }]);
  });

  it("a migration that leaves a key pointing nowhere is rolled back", () => {
    const migrations = join(dir, "migrations");
    write(
      migrations,
      "001_tables",
      `CREATE TABLE "parent" ("id" TEXT NOT NULL PRIMARY KEY);
       CREATE TABLE "child" ("id" TEXT NOT NULL PRIMARY KEY, "parentId" TEXT NOT NULL REFERENCES "parent" ("id"));
       INSERT INTO "parent" ("id") VALUES ('p');
       INSERT INTO "child" ("id", "parentId") VALUES ('c', 'p');`,
    );
    write(migrations, "002_orphan", `DELETE FROM "parent";`);
    expect(() => applyMigrations(db, migrations)).toThrow(/002_orphan leaves 1 row\(s\) whose foreign key/);
    expect(rows(`SELECT "id" FROM "parent"`)).toEqual([{ id: "p" }]);
  });
});
