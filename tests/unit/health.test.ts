import { afterEach, describe, expect, it } from "vitest";
import { type HealthServer, startHealthServer } from "../../src/app/health.ts";

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const get = async (path: string, method = "GET") => {
  const response = await fetch(`http://127.0.0.1:${server?.port}${path}`, { method });
  const body = (method === "HEAD" ? undefined : await response.json()) as
    | { checks: Record<string, string> }
    | undefined;
  return { status: response.status, body };
};

describe("the health server", () => {
  it("is live while it runs, and ready only when every check passes", async () => {
    let redisUp = true;
    server = await startHealthServer(
      0,
      [
        { name: "database", check: async () => {} },
        {
          name: "redis",
          check: async () => {
            if (!redisUp) throw new Error("connect ECONNREFUSED 127.0.0.1:6390");
          },
        },
      ],
      { role: "worker" },
    );
    expect(await get("/healthz")).toEqual({ status: 200, body: { status: "ok", role: "worker" } });
    expect(await get("/readyz")).toEqual({
      status: 200,
      body: { status: "ready", role: "worker", checks: { database: "ok", redis: "ok" } },
    });
    redisUp = false;
    expect(await get("/readyz")).toEqual({
      status: 503,
      body: {
        status: "not ready",
        role: "worker",
        checks: { database: "ok", redis: "connect ECONNREFUSED 127.0.0.1:6390" },
      },
    });
    // Still alive: liveness does not depend on the checks.
    expect((await get("/healthz")).status).toBe(200);
  });

  it("counts a check that hangs as not ready, within its deadline", async () => {
    server = await startHealthServer(0, [{ name: "telegram", check: () => new Promise(() => {}) }], {
      role: "front",
      timeoutMs: 50,
    });
    const { status, body } = await get("/readyz");
    expect(status).toBe(503);
    expect(body?.checks.telegram).toBe("no answer within 50 ms");
  });

  it("answers HEAD, refuses other methods and unknown paths", async () => {
    server = await startHealthServer(0, [], { role: "all" });
    expect((await get("/readyz", "HEAD")).status).toBe(200);
    expect((await get("/readyz", "POST")).status).toBe(405);
    expect((await get("/metrics")).status).toBe(404);
  });
});
