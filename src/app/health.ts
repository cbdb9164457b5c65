/**
 * Liveness and readiness over HTTP for orchestrators (Docker, Kubernetes, a load balancer):
 *
 *   GET /healthz  200 while the process runs its event loop
 *   GET /readyz   200 when every readiness check passes (the database, Redis, and for a
 *                 front the platform connection), else 503 naming the ones that failed
 *
 * Each check has a deadline, so a hung dependency reads as "not ready" instead of hanging
 * the probe. Bodies are small JSON documents; nothing secret is in them.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReadinessCheck {
  /** Shown in /readyz's body: "database", "redis", "telegram"... */
  name: string;
  /** Resolves when ready; throws (or times out) when not. */
  check(): Promise<void>;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** How long one readiness check may take before it counts as failed. */
export const READINESS_TIMEOUT_MS = 2000;

/** Run one check with a deadline: "ok", or why it is not ready. */
async function probe(check: ReadinessCheck, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([
      check.check().then(
        () => "ok",
        (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 200),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Listen on `port` (0: any free port) and answer /healthz and /readyz. */
export async function startHealthServer(
  port: number,
  checks: readonly ReadinessCheck[],
  options: { role: string; timeoutMs?: number } = { role: "all" },
): Promise<HealthServer> {
  const timeoutMs = options.timeoutMs ?? READINESS_TIMEOUT_MS;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      response.end(request.method === "HEAD" ? undefined : JSON.stringify(body));
    };
    if (request.method !== "GET" && request.method !== "HEAD") return reply(405, { error: "method not allowed" });
    if (path === "/healthz") return reply(200, { status: "ok", role: options.role });
    if (path !== "/readyz") return reply(404, { error: "not found" });
    void Promise.all(checks.map(async (c) => [c.name, await probe(c, timeoutMs)] as const)).then((results) => {
      const ready = results.every(([, result]) => result === "ok");
      reply(ready ? 200 : 503, {
        status: ready ? "ready" : "not ready",
        role: options.role,
        checks: Object.fromEntries(results),
      });
    });
    return undefined;
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
