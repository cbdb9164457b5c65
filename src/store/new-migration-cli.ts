/**
 * `npm run db:migration -- <name> [--from <git revision>]`: after editing
 * prisma/schema.prisma, write the migration for both databases:
 * prisma/migrations/<timestamp>_<name> (SQLite) and
 * prisma/migrations-postgresql/<timestamp>_<name> (PostgreSQL), each the SQL of
 * `prisma migrate diff` from the schema at <git revision> (default HEAD, i.e. the
 * schema before your uncommitted edit) to the working copy. It also brings
 * schema.postgresql.prisma up to date. Review the SQL before committing;
 * tests/integration/schema-migrations.test.ts checks that each database, migrated,
 * has exactly the schema's tables, columns, indexes and keys.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { MIGRATIONS_DIR, POSTGRES_MIGRATIONS_DIR } from "./migrate.ts";
import { POSTGRES_SCHEMA, PRISMA_DIR, postgresSchema, SQLITE_SCHEMA } from "./schemas.ts";

const { values, positionals } = parseArgs({
  options: { from: { type: "string", default: "HEAD" } },
  allowPositionals: true,
});
const name = positionals[0];
if (name === undefined || !/^[a-z0-9_]+$/.test(name)) {
  console.error("usage: npm run db:migration -- <name in lower_snake_case> [--from <git revision>]");
  process.exit(2);
}

const root = join(PRISMA_DIR, "..");
const current = readFileSync(SQLITE_SCHEMA, "utf8");
const before = execFileSync("git", ["show", `${values.from}:prisma/schema.prisma`], { cwd: root, encoding: "utf8" });
writeFileSync(POSTGRES_SCHEMA, postgresSchema(current));

const work = mkdtempSync(join(tmpdir(), "inkloom-migration-"));
try {
  writeFileSync(join(work, "before.sqlite.prisma"), before);
  writeFileSync(join(work, "before.postgresql.prisma"), postgresSchema(before));
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const folder = `${stamp}_${name}`;
  const targets = [
    { dir: MIGRATIONS_DIR, from: join(work, "before.sqlite.prisma"), to: SQLITE_SCHEMA },
    { dir: POSTGRES_MIGRATIONS_DIR, from: join(work, "before.postgresql.prisma"), to: POSTGRES_SCHEMA },
  ];
  const scripts = targets.map((t) => ({ ...t, sql: diff(t.from, t.to, work) }));
  if (scripts.every((s) => s.sql.trim() === "" || /^-- This is an empty migration\.\s*$/.test(s.sql.trim()))) {
    console.log(`prisma/schema.prisma has not changed since ${values.from}: no migration written`);
  } else {
    for (const { dir, sql } of scripts) {
      mkdirSync(join(dir, folder));
      writeFileSync(join(dir, folder, "migration.sql"), sql);
      console.log(`written ${relative(process.cwd(), join(dir, folder, "migration.sql"))}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** `prisma migrate diff` between two schema files, as SQL (offline: the config's adapter is a scratch SQLite file). */
function diff(from: string, to: string, scratch: string): string {
  return execFileSync(
    "npx",
    ["prisma", "migrate", "diff", "--from-schema-datamodel", from, "--to-schema-datamodel", to, "--script"],
    {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, DATABASE_URL: `file:${join(scratch, "scratch.db")}` },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
}
