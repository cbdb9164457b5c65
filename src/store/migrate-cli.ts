/** `npm run db:migrate`: apply committed migrations to DATABASE_URL and print what was applied. */
import { DEFAULTS } from "../app/config.ts";
import { DatabaseOpenError, migrateDatabase } from "./db.ts";

try {
  const { where, applied } = await migrateDatabase(process.env.DATABASE_URL ?? DEFAULTS.DATABASE_URL);
  console.log(applied.length === 0 ? `${where}: up to date` : `${where}: applied ${applied.join(", ")}`);
} catch (error) {
  console.error(error instanceof DatabaseOpenError ? error.message : String(error));
  process.exitCode = 1;
}
