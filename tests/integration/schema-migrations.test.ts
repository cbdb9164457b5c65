/**
 * The committed migrations build exactly the schema. On the database under test
 * (SQLite, or PostgreSQL with TEST_DATABASE=postgres), one database is migrated
 * as the app does it, another is built straight from the schema's DDL
 * (`prisma migrate diff --from-empty --to-schema-datamodel ... --script`), and their
 * catalogs (tables, columns with types, nullability and defaults, indexes, keys)
 * must be the same. A schema edit without its migration, or a migration written by
 * hand that differs, fails here. (`prisma migrate diff --from-migrations/--from-url`
 * would say it directly, but cannot run through the JavaScript engine.)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateDatabase } from "../../src/store/db.ts";
import { POSTGRES_SCHEMA, SQLITE_SCHEMA } from "../../src/store/schemas.ts";
import { TestDatabases, testDatabaseKind } from "../helpers/database.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const kind = testDatabaseKind();

type Catalog = Record<string, unknown[]>;

let dir: string;
const databases = new TestDatabases();
let migrated: Catalog;
let fromSchema: Catalog;

/** The schema's own DDL, as `prisma migrate diff` writes it from nothing. */
async function schemaDdl(): Promise<string> {
  const { stdout } = await promisify(execFile)(
    join(ROOT, "node_modules", ".bin", "prisma"),
    [
      "migrate",
      "diff",
      "--from-empty",
      "--to-schema-datamodel",
      kind === "sqlite" ? SQLITE_SCHEMA : POSTGRES_SCHEMA,
      "--script",
    ],
    // The CLI opens the config's adapter (SQLite) even for this offline diff.
    { cwd: ROOT, env: { ...process.env, DATABASE_URL: `file:${join(dir, "scratch.db")}` } },
  );
  return stdout;
}

function sqliteCatalog(url: string): Catalog {
  const db = new Database(url.replace(/^file:/, ""), { readonly: true });
  try {
    const tables = (
      db
        .prepare(
          `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_prisma_migrations' ORDER BY name`,
        )
        .all() as { name: string }[]
    ).map((t) => t.name);
    const catalog: Catalog = { tables };
    for (const table of tables) {
      const pragma = (what: string) => db.prepare(`SELECT * FROM pragma_${what}(?)`).all(table) as object[];
      // Column order differs after ALTER TABLE ... ADD COLUMN: compare by name.
      catalog[`${table}.columns`] = sortBy(
        pragma("table_info").map(({ cid: _, ...c }: { cid?: number }) => c),
        "name",
      );
      catalog[`${table}.indexes`] = sortBy(
        (pragma("index_list") as { name: string; unique: number }[]).map((i) => ({
          name: i.name,
          unique: i.unique,
          columns: (db.prepare(`SELECT name FROM pragma_index_info(?)`).all(i.name) as { name: string }[]).map(
            (c) => c.name,
          ),
        })),
        "name",
      );
      catalog[`${table}.foreignKeys`] = sortBy(
        pragma("foreign_key_list").map(({ id: _, seq: __, ...f }: { id?: number; seq?: number }) => f),
        "from",
      );
    }
    return catalog;
  } finally {
    db.close();
  }
}

async function postgresCatalog(url: string): Promise<Catalog> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const rows = async (sql: string) => (await client.query(sql)).rows;
    return {
      columns: await rows(`SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
          character_maximum_length, numeric_precision, datetime_precision
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'
        ORDER BY table_name, column_name`),
      indexes: await rows(`SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> '_prisma_migrations' ORDER BY tablename, indexname`),
      constraints:
        await rows(`SELECT conrelid::regclass::text AS "table", conname, contype, pg_get_constraintdef(oid) AS def
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_prisma_migrations'
        ORDER BY 1, 2`),
    };
  } finally {
    await client.end();
  }
}

async function execute(url: string, sql: string): Promise<void> {
  if (kind === "sqlite") {
    const db = new Database(url.replace(/^file:/, ""));
    db.exec(sql);
    db.close();
    return;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql).finally(() => client.end());
}

function catalogOf(url: string): Promise<Catalog> {
  return kind === "sqlite" ? Promise.resolve(sqliteCatalog(url)) : postgresCatalog(url);
}

function sortBy<T>(items: T[], key: string): T[] {
  return [...items].sort((a, b) =>
    String((a as Record<string, unknown>)[key]).localeCompare(String((b as Record<string, unknown>)[key])),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-schema-"));
  const [viaMigrations, viaSchema, ddl] = await Promise.all([
    databases.url(dir, "migrated"),
    databases.url(dir, "from_schema"),
    schemaDdl(),
  ]);
  await migrateDatabase(viaMigrations);
  await execute(viaSchema, ddl);
  [migrated, fromSchema] = await Promise.all([catalogOf(viaMigrations), catalogOf(viaSchema)]);
}, 60_000);

afterAll(async () => {
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

describe(`the ${kind} migrations`, () => {
  it("build exactly the tables, columns, indexes and keys of the schema", () => {
    expect(Object.keys(migrated).length).toBeGreaterThan(1);
    expect(migrated).toEqual(fromSchema);
  });
});
