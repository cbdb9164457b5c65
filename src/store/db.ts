/**
 * Opens the SQLite database: creates its folder, applies migrations, returns a
 * Prisma client on the better-sqlite3 driver adapter.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import Database from "better-sqlite3";
import { Prisma, PrismaClient } from "../generated/prisma/client.ts";
import { ensureDir } from "./ensure-dir.ts";
import { applyMigrations } from "./migrate.ts";

export type Db = PrismaClient;
export type { PrismaPromise } from "../generated/prisma/internal/prismaNamespace.ts";

/** A Prisma error with this code (P2002 unique violation, P2025 record not found, ...). */
export function isPrismaError(error: unknown, code: string): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === code;
}

/**
 * Prisma codes of a database briefly unreachable or busy, where the same work may
 * succeed a moment later: P1001 unreachable, P1002 and P1008 timed out, P1017
 * connection closed, P2024 no pooled connection free, P2034 write conflict or deadlock.
 */
const TRANSIENT_DB_CODES: ReadonlySet<string> = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2034"]);

/** Whether a database error is worth another try a little later (a job retries it with backoff). */
export function isTransientDbError(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError) return TRANSIENT_DB_CODES.has(error.code);
  if (error instanceof Prisma.PrismaClientInitializationError) {
    return error.errorCode !== undefined && TRANSIENT_DB_CODES.has(error.errorCode);
  }
  // SQLite's lock, when another process held it longer than busy_timeout.
  return error instanceof Error && /SQLITE_BUSY|database is locked/.test(error.message);
}

/** The database could not be opened or created; `message` says where and why, for a person. */
export class DatabaseOpenError extends Error {
  override readonly name = "DatabaseOpenError";
}

/** `file:./data/x.db` -> absolute path (relative to `cwd`). ":memory:" stays as it is. */
export function sqlitePath(url: string, cwd: string = process.cwd()): string {
  const raw = url.replace(/^file:/, "").replace(/\?.*$/, "");
  if (raw === ":memory:") return raw;
  return isAbsolute(raw) ? raw : resolve(cwd, raw);
}

export async function openDatabase(url: string): Promise<Db> {
  const path = sqlitePath(url);
  try {
    if (path !== ":memory:") ensureDir(dirname(path));
    const raw = new Database(path);
    try {
      // WAL lets readers go on while a chapter is being saved.
      raw.pragma("journal_mode = WAL");
      raw.pragma("busy_timeout = 5000");
      applyMigrations(raw);
    } finally {
      raw.close();
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DatabaseOpenError(
      `Cannot open the database at ${path}: ${reason}.\n` +
        "Set DATABASE_URL to a SQLite file in a folder you can write to, e.g. DATABASE_URL=file:./data/inkloom.db",
    );
  }
  const db = new PrismaClient({ adapter: new PrismaBetterSQLite3({ url: `file:${path}`, timeout: 5000 }) });
  await db.$connect();
  return db;
}
