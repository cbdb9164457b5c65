/**
 * `npm run db:schemas`: write prisma/schema.postgresql.prisma from prisma/schema.prisma.
 * `--check`: exit 1 (and say so) when the written file is out of date, writing nothing.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";
import { POSTGRES_SCHEMA, postgresSchema, SQLITE_SCHEMA } from "./schemas.ts";

const wanted = postgresSchema(readFileSync(SQLITE_SCHEMA, "utf8"));
const current = existsSync(POSTGRES_SCHEMA) ? readFileSync(POSTGRES_SCHEMA, "utf8") : undefined;
const name = relative(process.cwd(), POSTGRES_SCHEMA);
if (current === wanted) {
  console.log(`${name}: up to date`);
} else if (process.argv.includes("--check")) {
  console.error(`${name} is out of date: run npm run db:schemas`);
  process.exitCode = 1;
} else {
  writeFileSync(POSTGRES_SCHEMA, wanted);
  console.log(`${name}: written`);
}
