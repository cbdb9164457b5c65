/** `npm run db:migrate`: apply committed migrations to DATABASE_URL and print what was applied. */
import Database from "better-sqlite3";
import { DEFAULTS } from "../app/config.ts";
import { sqlitePath } from "./db.ts";
import { applyMigrations } from "./migrate.ts";

const path = sqlitePath(process.env.DATABASE_URL ?? DEFAULTS.DATABASE_URL);
const db = new Database(path);
const { applied } = applyMigrations(db);
db.close();
console.log(applied.length === 0 ? `${path}: up to date` : `${path}: applied ${applied.join(", ")}`);
