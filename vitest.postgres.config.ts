import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

/**
 * `npm run test:postgres`: the integration and end-to-end tests again, on PostgreSQL
 * (TEST_DATABASE=postgres). Only the files that take their database from
 * tests/helpers/database.ts can run on it; the others (fakes, HTTP clients, surfaces)
 * would run again unchanged, so they are left to `npm test`.
 */
const usesDatabase = ["tests/integration", "tests/e2e"].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => join(dir, f))
    .filter((file) => readFileSync(file, "utf8").includes("/helpers/database.ts")),
);

export default defineConfig({ ...base, test: { ...base.test, include: usesDatabase } });
