/**
 * Whether an error means the database could not be reached or dropped the
 * connection (PostgreSQL restarted, a connection terminated, the network cut, a
 * SQLite file locked past the timeout): the request may simply be tried again. What
 * the transaction had written is rolled back by the database, so nothing is half-done.
 * Duck-typed over the error and its causes, since it arrives as Prisma's error, the
 * driver adapter's, or pg's own.
 */

/** SQLSTATEs, Node socket codes and Prisma codes that mean "not reachable now". */
const UNAVAILABLE_CODES = new Set([
  "57P01", // admin_shutdown: terminating connection due to administrator command
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the server is starting up
  "08000",
  "08001",
  "08003",
  "08004",
  "08006", // connection exceptions
  "53300", // too_many_connections
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "SQLITE_BUSY",
  "P1001", // can't reach the database server
  "P1002", // the database server timed out
  "P1008", // operations timed out
  "P1017", // the server closed the connection
]);

/** Prisma driver adapters' error kinds for the same. */
const UNAVAILABLE_KINDS = new Set(["ConnectionClosed", "DatabaseNotReachable", "SocketTimeout", "TooManyConnections"]);

/** pg's own errors for a connection that went away carry no code. */
const UNAVAILABLE_MESSAGES =
  /^(Connection terminated|terminating connection due to|Client has encountered a connection error)/;

export function isDatabaseUnavailable(error: unknown): boolean {
  const pending: unknown[] = [error];
  const seen = new Set<object>();
  while (pending.length > 0) {
    const next = pending.shift();
    if (next === null || typeof next !== "object" || seen.has(next)) continue;
    seen.add(next);
    const e = next as Record<string, unknown>;
    for (const code of [e.code, e.originalCode])
      if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) return true;
    if (typeof e.kind === "string" && UNAVAILABLE_KINDS.has(e.kind)) return true;
    if (typeof e.message === "string" && UNAVAILABLE_MESSAGES.test(e.message)) return true;
    const meta = e.meta as Record<string, unknown> | undefined;
    pending.push(e.cause, meta?.driverAdapterError, ...(Array.isArray(e.errors) ? e.errors : []));
  }
  return false;
}
