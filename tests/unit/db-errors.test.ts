import { describe, expect, it } from "vitest";
import { describeError } from "../../commands/dispatch.ts";
import { Prisma } from "../../src/generated/prisma/client.ts";
import { isDatabaseUnavailable } from "../../src/store/db-errors.ts";
import { UserFacingError } from "../../src/story/errors.ts";

/** The shapes a dropped or unreachable database arrives in (seen with Prisma 6.19, adapter-pg and pg). */
const terminated = {
  originalCode: "57P01",
  kind: "postgres",
  message: "terminating connection due to administrator command",
};
const adapterError = Object.assign(new Error(terminated.message), { name: "DriverAdapterError", cause: terminated });
const rawQueryError = new Prisma.PrismaClientKnownRequestError("Raw query failed. Code: `57P01`.", {
  code: "P2010",
  clientVersion: "6.19.3",
  meta: { driverAdapterError: adapterError },
});

describe("isDatabaseUnavailable", () => {
  it("recognises a dropped or unreachable database, however it is wrapped", () => {
    expect(isDatabaseUnavailable(adapterError)).toBe(true);
    expect(isDatabaseUnavailable(rawQueryError)).toBe(true);
    expect(isDatabaseUnavailable(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(
      isDatabaseUnavailable(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })),
    ).toBe(true);
    expect(isDatabaseUnavailable({ cause: { kind: "DatabaseNotReachable" } })).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" }))).toBe(true);
  });

  it("leaves every other error alone", () => {
    const unique = new Prisma.PrismaClientKnownRequestError("Unique constraint failed", {
      code: "P2002",
      clientVersion: "6.19.3",
    });
    expect(isDatabaseUnavailable(unique)).toBe(false);
    expect(isDatabaseUnavailable(new Error("Cannot read properties of undefined"))).toBe(false);
    expect(isDatabaseUnavailable(new UserFacingError("error.stale"))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });

  it("gives the reader a message to try again in a moment, in their language", () => {
    expect(describeError(adapterError, "en")).toBe(
      "The story database did not answer just now. Please try again in a moment.",
    );
    expect(describeError(new Error("Connection terminated unexpectedly"), "zh")).toBe(
      "故事数据库刚才没有响应，请稍后再试。",
    );
    expect(describeError(new Error("a bug"), "en")).toBe("Something went wrong on our side. Please try again.");
  });
});
