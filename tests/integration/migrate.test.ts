import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { applyMigrations, MIGRATIONS_DIR } from "../../src/store/migrate.ts";

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("applyMigrations", () => {
  it("applies the committed migrations once and records them as Prisma does", () => {
    dir = mkdtempSync(join(tmpdir(), "inkloom-migrate-"));
    const db = new Database(join(dir, "a.db"));
    expect(applyMigrations(db, MIGRATIONS_DIR).applied.length).toBeGreaterThan(0);
    expect(applyMigrations(db, MIGRATIONS_DIR).applied).toEqual([]);
    const rows = db.prepare(`SELECT migration_name, finished_at FROM "_prisma_migrations"`).all() as {
      finished_at: string | null;
    }[];
    expect(rows.every((r) => r.finished_at !== null)).toBe(true);
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[];
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["Story", "Chapter", "AgentRun", "Choice"]));
    db.close();
  });

  it("a failing migration is rolled back whole and not recorded", () => {
    dir = mkdtempSync(join(tmpdir(), "inkloom-migrate-"));
    const migrations = join(dir, "migrations");
    mkdirSync(join(migrations, "001_ok"), { recursive: true });
    mkdirSync(join(migrations, "002_bad"), { recursive: true });
    writeFileSync(join(migrations, "001_ok", "migration.sql"), "CREATE TABLE a (id INTEGER);");
    writeFileSync(join(migrations, "002_bad", "migration.sql"), "CREATE TABLE b (id INTEGER); SELECT * FROM nope;");
    const db = new Database(join(dir, "b.db"));
    expect(() => applyMigrations(db, migrations)).toThrow(/nope/);
    const names = (
      db.prepare(`SELECT migration_name FROM "_prisma_migrations"`).all() as { migration_name: string }[]
    ).map((r) => r.migration_name);
    expect(names).toEqual(["001_ok"]);
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'b'`).get()).toBeUndefined();
    db.close();
  });
});
