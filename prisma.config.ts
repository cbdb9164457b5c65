import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { defineConfig } from "prisma/config";

// Prisma CLI configuration. The JavaScript engine keeps every CLI command
// offline (no engine download). The app itself applies migrations at start
// (src/store/migrate.ts); the CLI is for development.
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  async adapter() {
    return new PrismaBetterSQLite3({ url: process.env.DATABASE_URL ?? "file:./data/inkloom.db" });
  },
});
