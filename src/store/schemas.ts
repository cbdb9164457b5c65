/**
 * One schema source for two databases. A Prisma schema names one provider, so
 * `prisma/schema.prisma` (SQLite, the source) is turned into
 * `prisma/schema.postgresql.prisma` by `npm run db:schemas`: the same models,
 * another datasource and another generated client. A unit test fails when the two
 * drift apart.
 */
import { join } from "node:path";

export const PRISMA_DIR = join(import.meta.dirname, "..", "..", "prisma");
export const SQLITE_SCHEMA = join(PRISMA_DIR, "schema.prisma");
export const POSTGRES_SCHEMA = join(PRISMA_DIR, "schema.postgresql.prisma");

/** Where each provider's generated client goes (git-ignored), relative to prisma/. */
const OUTPUT = { sqlite: "../src/generated/prisma", postgresql: "../src/generated/prisma-pg" } as const;

/**
 * A literal URL, never used to connect (the app passes its own to the driver adapter):
 * `prisma generate` downloads an engine when the datasource has no usable url
 * (see shared/ENVIRONMENT.md).
 */
const POSTGRES_PLACEHOLDER_URL = "postgresql://localhost:5432/inkloom";

const BANNER = [
  "// GENERATED from schema.prisma by `npm run db:schemas`: do not edit; edit schema.prisma instead.",
  "// PostgreSQL's copy of the data model (DATABASE_URL=postgresql://...); its migrations are in",
  "// prisma/migrations-postgresql and its client in src/generated/prisma-pg. See docs/architecture.md.",
  "",
].join("\n");

/** The PostgreSQL schema for the SQLite schema's text. Throws when the source has an unexpected shape. */
export function postgresSchema(sqlite: string): string {
  let body = replaceOnce(
    sqlite,
    /(datasource db \{[^}]*?provider\s*=\s*)"sqlite"/,
    `$1"postgresql"`,
    'datasource db { provider = "sqlite" }',
  );
  body = replaceOnce(
    body,
    /(datasource db \{[^}]*?url\s*=\s*)"file:[^"]*"/,
    `$1"${POSTGRES_PLACEHOLDER_URL}"`,
    'datasource db { url = "file:..." }',
  );
  body = replaceOnce(
    body,
    /(generator client \{[^}]*?output\s*=\s*)"[^"]*"/,
    `$1"${OUTPUT.postgresql}"`,
    `generator client { output = "${OUTPUT.sqlite}" }`,
  );
  if (/^[^/\n]*@db\./m.test(body)) {
    throw new Error("schema.prisma uses a native type (@db.*): it must stay provider-neutral");
  }
  return BANNER + body;
}

function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, "g"));
  if (matches?.length !== 1) throw new Error(`schema.prisma: expected exactly one ${what}`);
  return text.replace(pattern, replacement);
}
