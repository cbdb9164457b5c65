import { describe, expect, it } from "vitest";
import { Prisma } from "../../src/generated/prisma/client.ts";
import { isTransientDbError } from "../../src/store/db.ts";

const known = (code: string) => new Prisma.PrismaClientKnownRequestError(`error ${code}`, { code, clientVersion: "6" });

describe("isTransientDbError", () => {
  it("calls an unreachable, timed-out or busy database transient", () => {
    for (const code of ["P1001", "P1002", "P1008", "P1017", "P2024", "P2034"])
      expect(isTransientDbError(known(code))).toBe(true);
    expect(isTransientDbError(new Error("SQLITE_BUSY: database is locked"))).toBe(true);
    expect(isTransientDbError(new Prisma.PrismaClientInitializationError("down", "6", "P1001"))).toBe(true);
  });

  it("never retries what will fail again: a constraint, a missing row, bad credentials, a bug", () => {
    for (const code of ["P2002", "P2025", "P2003"]) expect(isTransientDbError(known(code))).toBe(false);
    expect(isTransientDbError(new Prisma.PrismaClientInitializationError("auth", "6", "P1000"))).toBe(false);
    expect(isTransientDbError(new TypeError("undefined is not a function"))).toBe(false);
    expect(isTransientDbError("SQLITE_BUSY")).toBe(false);
  });
});
