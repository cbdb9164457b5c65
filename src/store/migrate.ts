/**
 * Applies the committed migrations at start-up: prisma/migrations on SQLite,
 * prisma/migrations-postgresql on PostgreSQL.
 *
 * Why not `prisma migrate deploy`: spawning the CLI costs seconds on every start,
 * and the JavaScript engine cannot deploy to PostgreSQL (prisma/orm#27403).
 * This writes the same `_prisma_migrations` bookkeeping as Prisma, so
 * `prisma migrate status` agrees with it (on SQLite, where the CLI works).
 */
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import type pg from "pg";

export const MIGRATIONS_DIR = join(import.meta.dirname, "..", "..", "prisma", "migrations");
export const POSTGRES_MIGRATIONS_DIR = join(import.meta.dirname, "..", "..", "prisma", "migrations-postgresql");

/**
 * The advisory lock `prisma migrate` takes on PostgreSQL: holding the same one keeps
 * two processes starting at once (a front and a worker) from migrating side by side.
 */
const POSTGRES_MIGRATION_LOCK = 72707369;

export interface MigrationResult {
  applied: string[];
}

interface Migration {
  name: string;
  sql: string;
  /** Prisma's checksum: SHA-256 of the file, hex. */
  checksum: string;
}

/** The migration folders of `dir` (each with a migration.sql), in name order. */
function migrationsIn(dir: string): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "migration.sql")))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

/** Apply every migration folder not yet recorded, in name order, each in its own transaction. */
export function applyMigrations(db: Database.Database, dir: string = MIGRATIONS_DIR): MigrationResult {
  db.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "checksum" TEXT NOT NULL,
    "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL,
    "logs" TEXT,
    "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
  )`);
  const done = new Set(
    (
      db
        .prepare(
          `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
        )
        .all() as { migration_name: string }[]
    ).map((r) => r.migration_name),
  );
  const applied: string[] = [];
  // Prisma redefines SQLite tables (create a copy, DROP TABLE, rename) with
  // `PRAGMA foreign_keys=OFF` in the script, but that pragma does nothing inside a
  // transaction: with keys on (better-sqlite3's default), the DROP would cascade and
  // delete the rows that point at the table. So keys are off around the
  // transactions, and checked before each commits.
  const keysWereOn = db.pragma("foreign_keys", { simple: true }) === 1;
  db.pragma("foreign_keys = OFF");
  try {
    for (const { name, sql, checksum } of migrationsIn(dir)) {
      if (done.has(name)) continue;
      const now = new Date().toISOString();
      db.transaction(() => {
        db.exec(sql);
        const broken = db.pragma("foreign_key_check") as { table: string; parent: string }[];
        if (broken.length > 0) {
          const first = broken[0];
          throw new Error(
            `migration ${name} leaves ${broken.length} row(s) whose foreign key points nowhere (first: ${first?.table} -> ${first?.parent})`,
          );
        }
        db.prepare(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (?, ?, ?, ?, ?, 1)`,
        ).run(randomUUID(), checksum, now, name, now);
      })();
      applied.push(name);
    }
  } finally {
    if (keysWereOn) db.pragma("foreign_keys = ON");
  }
  return { applied };
}

/**
 * The same on PostgreSQL, over a connected `pg` client: under Prisma's migration
 * lock, every migration not yet recorded runs in its own transaction (PostgreSQL's
 * DDL is transactional: a failing migration leaves nothing behind).
 */
export async function applyPostgresMigrations(
  client: pg.ClientBase,
  dir: string = POSTGRES_MIGRATIONS_DIR,
): Promise<MigrationResult> {
  const migrations = migrationsIn(dir);
  await client.query("SELECT pg_advisory_lock($1)", [POSTGRES_MIGRATION_LOCK]);
  try {
    // Prisma's own definition of the table on PostgreSQL.
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const { rows } = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const done = new Set(rows.map((r) => r.migration_name));
    const applied: string[] = [];
    for (const { name, sql, checksum } of migrations) {
      if (done.has(name)) continue;
      await client.query("BEGIN");
      try {
        // No parameters: the simple query protocol runs every statement of the file.
        await client.query(sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [randomUUID(), checksum, name],
        );
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
      applied.push(name);
    }
    return { applied };
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [POSTGRES_MIGRATION_LOCK]).catch(() => {});
  }
}
