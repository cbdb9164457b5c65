/**
 * Opens the database named by DATABASE_URL, applies its migrations, and returns a
 * Prisma client on the matching driver adapter:
 * - `file:./data/inkloom.db`: SQLite (the embedded default), better-sqlite3 adapter;
 * - `postgresql://user:password@host:5432/db`: PostgreSQL (scale-out), pg adapter.
 * Both clients are generated from one data model (src/store/schemas.ts) and have
 * the same API; the code is typed against the SQLite one.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import Database from "better-sqlite3";
import { Prisma, PrismaClient } from "../generated/prisma/client.ts";
import { isDatabaseUnavailable } from "./db-errors.ts";
import { ensureDir } from "./ensure-dir.ts";
import { applyMigrations, applyPostgresMigrations } from "./migrate.ts";

export type Db = PrismaClient;
export type { PrismaPromise } from "../generated/prisma/internal/prismaNamespace.ts";

export type DatabaseKind = "sqlite" | "postgresql";

/** Which database a DATABASE_URL names, undefined when neither. */
export function databaseKind(url: string): DatabaseKind | undefined {
  if (url.startsWith("file:")) return "sqlite";
  if (/^postgres(ql)?:\/\//.test(url)) return "postgresql";
  return undefined;
}

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

/** A PostgreSQL URL fit for messages and logs: the password is never shown. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "(an unparsable URL)";
  }
}

/** Apply the committed migrations (creating a SQLite file and its folder); throws DatabaseOpenError. */
export async function migrateDatabase(url: string): Promise<{ where: string; applied: string[] }> {
  switch (databaseKind(url)) {
    case "sqlite":
      return migrateSqlite(sqlitePath(url));
    case "postgresql":
      return migratePostgres(url);
    default:
      throw new DatabaseOpenError(
        "DATABASE_URL must name a SQLite file (file:./data/inkloom.db) or a PostgreSQL database " +
          "(postgresql://user:password@host:5432/inkloom).",
      );
  }
}

/** Migrate, then connect a client on the database's driver adapter. */
/** Connections a process keeps to PostgreSQL (DATABASE_POOL_SIZE). */
export const DEFAULT_POOL_SIZE = 20;

/**
 * How long a query or a transaction may wait for a pooled connection. Prisma's 2 s
 * `maxWait` refused most of a burst of 200 /starts on one front (npm run bench:scale), and
 * so did the pool's own 10 s wait on a machine under load (117 of 200): a burst queues for
 * the pool instead, and a reader waits rather than being refused. A server that is down
 * refuses connections at once and fails fast; this only bounds the wait in line.
 */
export const POOL_WAIT_MS = 30_000;

/** How long a transaction may wait for its connection (POOL_WAIT_MS), and run (Prisma's 5 s was too short under load). */
export const TRANSACTION_OPTIONS = { maxWait: POOL_WAIT_MS, timeout: 20_000 } as const;

export async function openDatabase(url: string, options: { poolSize?: number } = {}): Promise<Db> {
  await migrateDatabase(url);
  const db =
    databaseKind(url) === "postgresql"
      ? await postgresClient(url, options.poolSize ?? DEFAULT_POOL_SIZE)
      : sqliteClient(sqlitePath(url));
  await db.$connect();
  return db;
}

function migrateSqlite(path: string): { where: string; applied: string[] } {
  try {
    if (path !== ":memory:") ensureDir(dirname(path));
    const raw = new Database(path);
    try {
      // WAL lets readers go on while a chapter is being saved.
      raw.pragma("journal_mode = WAL");
      raw.pragma("busy_timeout = 5000");
      return { where: path, ...applyMigrations(raw) };
    } finally {
      raw.close();
    }
  } catch (error) {
    throw new DatabaseOpenError(
      `Cannot open the database at ${path}: ${reasonOf(error)}.\n` +
        "Set DATABASE_URL to a SQLite file in a folder you can write to, e.g. DATABASE_URL=file:./data/inkloom.db",
    );
  }
}

function sqliteClient(path: string): Db {
  return new PrismaClient({
    adapter: new PrismaBetterSQLite3({ url: `file:${path}`, timeout: 5000 }),
    transactionOptions: TRANSACTION_OPTIONS,
  });
}

/** How long the migrator waits for its PostgreSQL connection before giving up with a message. */
const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;

async function migratePostgres(url: string): Promise<{ where: string; applied: string[] }> {
  // Loaded only for PostgreSQL: the embedded default never pays for it.
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS });
  // A connection dropped while migrating surfaces as the failed query's error.
  client.on("error", () => {});
  try {
    await client.connect();
    return { where: redactUrl(url), ...(await applyPostgresMigrations(client)) };
  } catch (error) {
    throw new DatabaseOpenError(
      `Cannot open the database at ${redactUrl(url)}: ${reasonOf(error)}.\n` +
        "Set DATABASE_URL to a PostgreSQL database the bot can reach and create tables in, " +
        "e.g. DATABASE_URL=postgresql://inkloom:PASSWORD@localhost:5432/inkloom",
    );
  } finally {
    await client.end().catch(() => {});
  }
}

async function postgresClient(url: string, poolSize: number): Promise<Db> {
  const [{ default: pg }, { PrismaPg }, { PrismaClient: PostgresClient }] = await Promise.all([
    import("pg"),
    import("@prisma/adapter-pg"),
    import("../generated/prisma-pg/client.ts"),
  ]);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // pg-pool counts the wait for a free client in this too, not only the connect.
    connectionTimeoutMillis: POOL_WAIT_MS,
  });
  pool.on("connect", guardConnection);
  const adapter = new PrismaPg(pool, { disposeExternalPool: true });
  // Same data model, same API: the PostgreSQL client is used through the SQLite one's types.
  return new PostgresClient({ adapter, transactionOptions: TRANSACTION_OPTIONS }) as unknown as Db;
}

/**
 * Two fixes to how Prisma 6.19's pg adapter uses a pooled connection:
 * - It sends a transaction's queries without waiting for the one before (pg queues
 *   them, and pg 8.23 warns on stderr that pg 9 will not): they are queued here.
 * - A transaction whose connection dropped (PostgreSQL restarted, the connection was
 *   terminated) is already rolled back by the server, yet Prisma still sends ROLLBACK on
 *   the dead connection, and when that fails it never gives the connection back to the
 *   pool: one slot leaks per drop (then `$disconnect` waits forever), and the rejection
 *   can go unhandled. So a ROLLBACK that fails because the connection is gone succeeds:
 *   Prisma then releases the connection, and the pool discards it.
 */
function guardConnection(client: import("pg").PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  let previous: Promise<unknown> = Promise.resolve();
  (client as { query: unknown }).query = (...args: unknown[]) => {
    // Callback-style calls (none from the adapter) go straight through.
    if (typeof args.at(-1) === "function") return query(...args);
    const sql = typeof args[0] === "string" ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
    const run = previous.then(
      () => query(...args),
      () => query(...args),
    );
    previous = run.catch(() => {});
    if (sql !== "ROLLBACK") return run;
    return run.catch((error: unknown) => {
      if (isDatabaseUnavailable(error)) return { command: "ROLLBACK", rowCount: 0, rows: [], fields: [] };
      throw error;
    });
  };
}

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\.$/, "") || (error as { code?: string } | null)?.code || "unknown error";
}
