import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, POSTGRES_MIGRATIONS_DIR } from "../../src/store/migrate.ts";
import { POSTGRES_SCHEMA, postgresSchema, SQLITE_SCHEMA } from "../../src/store/schemas.ts";

const sqlite = readFileSync(SQLITE_SCHEMA, "utf8");

describe("one schema source for SQLite and PostgreSQL", () => {
  it("schema.postgresql.prisma is generated from schema.prisma (run npm run db:schemas after editing it)", () => {
    expect(readFileSync(POSTGRES_SCHEMA, "utf8")).toBe(postgresSchema(sqlite));
  });

  it("the PostgreSQL copy differs only in its datasource, its client's folder and its banner", () => {
    const pg = postgresSchema(sqlite);
    expect(pg).toMatch(/provider\s*=\s*"postgresql"/);
    expect(pg).toContain('output       = "../src/generated/prisma-pg"');
    const models = (text: string) => text.slice(text.indexOf("\nmodel "));
    expect(models(pg)).toBe(models(sqlite));
  });

  it("refuses a schema it cannot translate: a native type, or no SQLite datasource", () => {
    const nativeType = sqlite.replace(/(\n\s+premise\s+String)/, "$1 @db.Text");
    expect(nativeType).not.toBe(sqlite);
    expect(() => postgresSchema(nativeType)).toThrow(/native type/);
    expect(() => postgresSchema(sqlite.replace('provider = "sqlite"', 'provider = "mysql"'))).toThrow(/sqlite/);
  });

  it("each provider has its migrations folder and lock file", () => {
    for (const [dir, provider] of [
      [MIGRATIONS_DIR, "sqlite"],
      [POSTGRES_MIGRATIONS_DIR, "postgresql"],
    ] as const) {
      expect(readFileSync(join(dir, "migration_lock.toml"), "utf8")).toContain(`provider = "${provider}"`);
      const folders = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
      expect(folders.length).toBeGreaterThan(0);
      for (const f of folders) expect(existsSync(join(dir, f.name, "migration.sql")), f.name).toBe(true);
    }
  });
});
