/**
 * A fresh database for one test. SQLite by default: `file:<dir>/<name>.db`. With
 * TEST_DATABASE=postgres (`npm run test:postgres`), a new PostgreSQL database with
 * a random name on the server at TEST_POSTGRES_URL (`.ci/services.sh` starts one),
 * dropped again by `drop()`. The app migrates either when it opens it.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

export type TestDatabaseKind = "sqlite" | "postgresql";

export interface TestDatabase {
  kind: TestDatabaseKind;
  /** DATABASE_URL of the new, empty database. */
  url: string;
  /** Remove it (PostgreSQL: drop it, closing what is still connected). */
  drop(): Promise<void>;
}

/** Which database this test run uses (TEST_DATABASE=postgres, else SQLite). */
export function testDatabaseKind(): TestDatabaseKind {
  const wanted = process.env.TEST_DATABASE ?? "sqlite";
  if (wanted === "sqlite") return "sqlite";
  if (wanted === "postgres" || wanted === "postgresql") return "postgresql";
  throw new Error(`TEST_DATABASE must be sqlite or postgres, not ${wanted}`);
}

/** The PostgreSQL server the tests may create databases on. */
export function testPostgresUrl(): string {
  const url = process.env.TEST_POSTGRES_URL;
  if (url === undefined || url === "") {
    throw new Error(
      'TEST_POSTGRES_URL is not set: start a server with `eval "$(bash .ci/services.sh start)"` ' +
        "(or point it at one where you may create databases).",
    );
  }
  return url;
}

/** A new empty database for a test whose files live in `dir`. */
export async function createTestDatabase(dir: string, name = "test"): Promise<TestDatabase> {
  if (testDatabaseKind() === "sqlite") {
    const path = join(dir, `${name}.db`);
    return {
      kind: "sqlite",
      url: `file:${path}`,
      drop: async () => {
        for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
      },
    };
  }
  return createPostgresDatabase(name);
}

/** A new, randomly named PostgreSQL database on TEST_POSTGRES_URL's server. */
export async function createPostgresDatabase(name = "test"): Promise<TestDatabase> {
  const server = testPostgresUrl();
  const database = `inkloom_${name.replace(/\W/g, "_").slice(0, 20)}_${randomBytes(6).toString("hex")}`.toLowerCase();
  await admin(server, `CREATE DATABASE "${database}"`);
  const url = new URL(server);
  url.pathname = `/${database}`;
  return {
    kind: "postgresql",
    url: url.toString(),
    drop: () => admin(server, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`),
  };
}

async function admin(server: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The databases of one test file, dropped together (in afterEach or afterAll). */
export class TestDatabases {
  private readonly created: TestDatabase[] = [];

  /** DATABASE_URL of a new empty database (see createTestDatabase). */
  async url(dir: string, name = "test"): Promise<string> {
    const database = await createTestDatabase(dir, name);
    this.created.push(database);
    return database.url;
  }

  async dropAll(): Promise<void> {
    await Promise.all(this.created.splice(0).map((d) => d.drop()));
  }
}
