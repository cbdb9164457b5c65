import { dirname, resolve } from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { defineConfig } from "prisma/config";
import { ensureDir } from "./src/store/ensure-dir.ts";

// Prisma CLI configuration. The JavaScript engine keeps every CLI command
// offline (no engine download). The app itself applies migrations at start
// (src/store/migrate.ts); the CLI is for development: `prisma generate` (both
// schemas, see package.json), `prisma migrate diff` (new migrations, see
// docs/architecture.md) and, on SQLite only, `prisma migrate status`.
//
// The adapter is SQLite's even when DATABASE_URL names PostgreSQL: the CLI opens
// it for every command, and through the JavaScript engine its migrate commands
// cannot work on PostgreSQL (prisma/orm#27403); `npm run db:migrate` does.
const url = process.env.DATABASE_URL?.startsWith("file:") ? process.env.DATABASE_URL : "file:./data/inkloom.db";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  async adapter() {
    // The file is created on first use; its folder must exist.
    ensureDir(dirname(resolve(url.replace(/^file:/, "").replace(/\?.*$/, ""))));
    return new PrismaBetterSQLite3({ url });
  },
});
