/**
 * Downloading a model from the Hugging Face Hub (src/llm/model-download.ts) against a
 * fake Hub and CDN on loopback (tests/fakes/fake-hub-server.ts): the 302 to the CDN, the
 * size and sha256 from the Hub's headers, resuming a part with Range, the checks, the lock
 * between two downloaders, and the message for each way it can fail.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type DownloadProgress, progressDisplay } from "../../src/llm/download-progress.ts";
import {
  type DownloadOptions,
  type DownloadTuning,
  ensureHubFile,
  type HubFileRecord,
  ModelDownloadError,
} from "../../src/llm/model-download.ts";
import { FakeHubServer } from "../fakes/fake-hub-server.ts";
import { freePort } from "../helpers/redis.ts";

const REPO = "inkloom-test/tiny-GGUF";
const FILE = "tiny-q4.gguf";
const SIZE = 1_500_000;
const TOKEN = "hf_testtoken";

/** Short enough for tests: the defaults are seconds to a minute. */
const FAST: DownloadTuning = {
  responseTimeoutMs: 2_000,
  idleTimeoutMs: 2_000,
  maxAttempts: 3,
  backoffBaseMs: 10,
  backoffCapMs: 50,
  maxRedirects: 5,
  lockStaleMs: 2_000,
  lockRefreshMs: 50,
  lockPollMs: 20,
};

let hub: FakeHubServer;
let dir: string;
let bytes: Buffer;
let sha: string;
let logs: string[];

beforeAll(() => {
  bytes = randomBytes(SIZE);
  sha = createHash("sha256").update(bytes).digest("hex");
});

beforeEach(async () => {
  hub = await FakeHubServer.start({ tokens: [TOKEN] });
  hub.addFile(REPO, FILE, bytes);
  dir = mkdtempSync(join(tmpdir(), "inkloom-download-"));
  logs = [];
});

afterEach(async () => {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
});

const target = () => join(dir, "models", ...REPO.split("/"), FILE);

function options(extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return { ...FAST, path: target(), endpoint: hub.endpoint, log: (m) => logs.push(m), random: () => 0, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<ModelDownloadError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ModelDownloadError) return error;
    throw error;
  }
  throw new Error("the download did not fail");
}

const cdnGets = () => hub.requestsTo("cdn").filter((r) => r.method === "GET");
const record = (): HubFileRecord => JSON.parse(readFileSync(`${target()}.json`, "utf8")) as HubFileRecord;

describe("downloading a Hub file", () => {
  it("follows the Hub's 302 to the CDN, checks size and sha256, and shows progress every tenth", async () => {
    const out: string[] = [];
    const progress = progressDisplay({ isTTY: false, write: (t) => out.push(t) }, FILE);
    const result = await ensureHubFile({ repo: REPO, file: FILE }, options({ progress }));

    expect(result).toEqual({ path: target(), size: SIZE, sha256: sha, downloaded: true });
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    expect(existsSync(`${target()}.part`)).toBe(false);
    expect(existsSync(`${target()}.lock`)).toBe(false);
    expect(record()).toMatchObject({
      repo: REPO,
      file: FILE,
      revision: "main",
      size: SIZE,
      sha256: sha,
      complete: true,
    });
    expect(record().url).toBe(`${hub.endpoint}/${REPO}/resolve/main/${FILE}`);

    expect(hub.requests.map((r) => `${r.server} ${r.method} ${r.status}`)).toEqual([
      "hub HEAD 302",
      "hub GET 302",
      "cdn GET 200",
    ]);
    expect(hub.requestsTo("cdn")[0]?.range).toBeUndefined();
    const lines = out.join("").trim().split("\n");
    expect(lines[0]).toBe(`${FILE}: 0% of 1.5 MB`);
    expect(lines.slice(1).map((l) => l.replace(/ \(.*$/, ""))).toEqual(
      [10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map((p) => `${FILE}: ${p}%`),
    );
    expect(lines.at(-1)).toMatch(/100% \(1\.5 of 1\.5 MB, [\d.]+ MB\/s\)$/);
    expect(logs.join("\n")).toContain(`downloading ${REPO}/${FILE}: 1.5 MB from 127.0.0.1`);
    expect(logs.join("\n")).toContain("checked");
  });

  it("sends HF_TOKEN to the Hub for a gated repository, and never to the CDN", async () => {
    hub.addRepo("inkloom-test/gated", { gated: true, granted: [TOKEN] });
    hub.addFile("inkloom-test/gated", FILE, bytes);
    const path = join(dir, "gated.gguf");
    await ensureHubFile({ repo: "inkloom-test/gated", file: FILE }, options({ path, token: TOKEN }));
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(hub.requestsTo("hub").map((r) => r.authorization)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
    // The fake CDN answers 400 to a request that carries Authorization, as S3 does.
    expect(hub.requestsTo("cdn").map((r) => [r.authorization, r.status])).toEqual([[undefined, 200]]);
  });

  it("resumes after a cut connection: the second request asks for the rest only", async () => {
    hub.faults.cutAfter = { bytes: 600_000, times: 1 };
    await ensureHubFile({ repo: REPO, file: FILE }, options());

    expect(readFileSync(target()).equals(bytes)).toBe(true);
    const [first, second] = cdnGets();
    expect(first?.bytesSent).toBe(600_000);
    const from = Number(/^bytes=(\d+)-$/.exec(second?.range ?? "")?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(600_000);
    expect(second?.status).toBe(206);
    expect(second?.bytesSent).toBe(SIZE - from);
    expect(cdnGets().reduce((n, r) => n + r.bytesSent, 0)).toBeLessThanOrEqual(SIZE + 600_000);
    expect(logs.join("\n")).toMatch(/trying again in .* \(attempt 2 of 3, from /);
  });

  it("gives up on a stalled transfer after the idle timeout and resumes it", async () => {
    hub.faults.stallAfter = { bytes: 400_000, times: 1 };
    await ensureHubFile({ repo: REPO, file: FILE }, options({ idleTimeoutMs: 300 }));

    expect(readFileSync(target()).equals(bytes)).toBe(true);
    const [, second] = cdnGets();
    expect(second?.range).toMatch(/^bytes=\d+-$/);
    expect(second?.status).toBe(206);
    expect(logs.join("\n")).toContain("no data for 0.3 s");
  });

  it("keeps the part when stopped, and the next start hashes it and asks for the rest", async () => {
    hub.faults.chunkDelayMs = 5;
    const stop = new AbortController();
    const stopping: DownloadProgress = {
      start: () => undefined,
      update: (received) => {
        if (received >= 500_000) stop.abort(new Error("SIGINT"));
      },
      end: () => undefined,
      above: (print) => print(),
    };
    const error = await failure(
      ensureHubFile({ repo: REPO, file: FILE }, options({ progress: stopping, signal: stop.signal })),
    );
    expect(error.kind).toBe("cancelled");
    expect(error.message).toContain(".part is kept and the next start resumes it");
    const kept = statSync(`${target()}.part`).size;
    expect(kept).toBeGreaterThanOrEqual(500_000);
    expect(existsSync(`${target()}.lock`)).toBe(false);
    expect(existsSync(target())).toBe(false);

    delete hub.faults.chunkDelayMs;
    const before = cdnGets().length;
    const result = await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(result.downloaded).toBe(true);
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    const resumed = cdnGets().slice(before);
    expect(resumed.map((r) => [r.range, r.status, r.bytesSent])).toEqual([[`bytes=${kept}-`, 206, SIZE - kept]]);
    expect(logs.join("\n")).toContain("checking the 0.");
  });

  it("checks a complete part left before its rename (416 for the range past its end) without downloading", async () => {
    const path = target();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.part`, bytes);
    const partial: HubFileRecord = {
      repo: REPO,
      file: FILE,
      revision: "main",
      size: SIZE,
      sha256: sha,
      url: "x",
      complete: false,
      time: new Date().toISOString(),
    };
    writeFileSync(`${path}.json`, JSON.stringify(partial));
    const result = await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(result.downloaded).toBe(true);
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(cdnGets().map((r) => [r.range, r.status, r.bytesSent])).toEqual([[`bytes=${SIZE}-`, 416, 0]]);
    expect(record().complete).toBe(true);
  });

  it("drops a part of another version of the file and starts over", async () => {
    const path = target();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.part`, randomBytes(300_000));
    writeFileSync(
      `${path}.json`,
      JSON.stringify({ repo: REPO, file: FILE, revision: "main", size: SIZE, sha256: "0".repeat(64), complete: false }),
    );
    await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(cdnGets().map((r) => r.range)).toEqual([undefined]);
    expect(logs.join("\n")).toContain("is not a part of this version of the file");
  });

  it("refuses bytes whose sha256 is not the Hub's, and deletes the part", async () => {
    hub.faults.corrupt = true;
    const error = await failure(ensureHubFile({ repo: REPO, file: FILE }, options()));
    expect(error.kind).toBe("integrity");
    expect(error.message).toContain(`its sha256 is `);
    expect(error.message).toContain(`the Hub's is ${sha}`);
    expect(error.message).toContain(`The partial file ${target()}.part was deleted`);
    expect(existsSync(`${target()}.part`)).toBe(false);
    expect(existsSync(target())).toBe(false);
    expect(existsSync(`${target()}.lock`)).toBe(false);
  });

  it("retries a 503 and a 429, waiting as long as Retry-After says", async () => {
    hub.faults.hubFailures = { status: 503, times: 1, retryAfter: "0" };
    await ensureHubFile({ repo: REPO, file: FILE }, options({ path: join(dir, "a.gguf") }));
    expect(hub.requestsTo("hub").map((r) => r.status)).toEqual([503, 302, 302]);

    hub.faults.hubFailures = { status: 429, times: 1, retryAfter: "1" };
    const started = Date.now();
    await ensureHubFile({ repo: REPO, file: FILE }, options({ path: join(dir, "b.gguf"), backoffCapMs: 5_000 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(readFileSync(join(dir, "b.gguf")).equals(bytes)).toBe(true);
    expect(logs.join("\n")).toContain("answered 429; trying again in 1.0 s");
  });

  it("gives up after its attempts when the Hub keeps failing, and says what to do", async () => {
    hub.faults.hubFailures = { status: 503, times: 100 };
    const error = await failure(ensureHubFile({ repo: REPO, file: FILE }, options()));
    expect(error.kind).toBe("unreachable");
    expect(error.message).toContain(`could not be downloaded from ${new URL(hub.endpoint).host}: `);
    expect(error.message).toContain("answered 503 (3 attempts)");
    expect(hub.requestsTo("hub")).toHaveLength(3);
  });
});

describe("the CDN", () => {
  it("refusing its signed URL is retried with a fresh one, then named in the message", async () => {
    await hub.close();
    hub = await FakeHubServer.start({ urlTtlSeconds: -60 });
    hub.addFile(REPO, FILE, bytes);
    const error = await failure(ensureHubFile({ repo: REPO, file: FILE }, options()));
    expect(error.kind).toBe("unreachable");
    expect(error.message).toContain(`could not be downloaded from ${new URL(hub.cdnOrigin).host}: `);
    expect(error.message).toContain("answered 403 Forbidden (3 attempts)");
    // Every attempt went back to the Hub for a new URL.
    expect(hub.requestsTo("hub").filter((r) => r.method === "GET")).toHaveLength(3);
  });
});

describe("no network", () => {
  it("names the host and what to do when nothing listens on the port", async () => {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const error = await failure(ensureHubFile({ repo: REPO, file: FILE }, options({ endpoint })));
    expect(error.kind).toBe("unreachable");
    expect(error.message).toContain(
      `The model ${REPO}/${FILE} could not be downloaded from 127.0.0.1:${port}: the connection was refused (3 attempts).`,
    );
    expect(error.message).toContain("set OPENAI_BASE_URL");
    expect(error.message).toContain(`download ${FILE} yourself from ${endpoint}/${REPO}/resolve/main/${FILE}`);
    expect(error.message).toContain(`set LOCAL_MODEL=/path/to/${FILE}`);
    expect(existsSync(`${target()}.lock`)).toBe(false);
  });

  it("names the host when its name does not resolve", async () => {
    const error = await failure(
      ensureHubFile({ repo: REPO, file: FILE }, options({ endpoint: "http://inkloom-hub.invalid" })),
    );
    expect(error.kind).toBe("unreachable");
    expect(error.message).toContain("from inkloom-hub.invalid: the host name could not be resolved");
  });

  describe("a server that accepts connections and never answers", () => {
    let silent: Server;
    let port: number;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      silent = createServer((socket) => {
        sockets.push(socket);
      });
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      port = (silent.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it("times out each attempt and gives up with the message", async () => {
      const error = await failure(
        ensureHubFile(
          { repo: REPO, file: FILE },
          options({ endpoint: `http://127.0.0.1:${port}`, responseTimeoutMs: 200 }),
        ),
      );
      expect(error.kind).toBe("unreachable");
      expect(error.message).toContain(`from 127.0.0.1:${port}: no answer within 0.2 s (3 attempts)`);
    });
  });
});

describe("the Hub's refusals", () => {
  it("says which file is not in the repository (404 EntryNotFound), without retrying", async () => {
    const error = await failure(ensureHubFile({ repo: REPO, file: "absent.gguf" }, options()));
    expect(error.kind).toBe("not_found");
    expect(error.message).toContain(`absent.gguf is not in ${REPO} (revision main)`);
    expect(error.message).toContain(`${hub.endpoint}/${REPO}/tree/main`);
    expect(hub.requests).toHaveLength(1);
  });

  it("says an unknown repository may be private (401 RepoNotFound without a token)", async () => {
    const error = await failure(ensureHubFile({ repo: "nobody/nothing", file: FILE }, options()));
    expect(error.kind).toBe("unauthorized");
    expect(error.message).toContain("nobody/nothing was not found");
    expect(error.message).toContain("set HF_TOKEN");
  });

  it("says a gated repository needs HF_TOKEN (401 GatedRepo)", async () => {
    hub.addRepo("inkloom-test/gated", { gated: true });
    hub.addFile("inkloom-test/gated", FILE, bytes);
    const error = await failure(ensureHubFile({ repo: "inkloom-test/gated", file: FILE }, options()));
    expect(error.kind).toBe("unauthorized");
    expect(error.message).toContain("inkloom-test/gated is a gated repository");
    expect(error.message).toContain("Set HF_TOKEN");
    expect(error.message).toContain(`${hub.endpoint}/inkloom-test/gated`);
  });

  it("says the token's account must accept a gated repository's terms (403 GatedRepo)", async () => {
    hub.addRepo("inkloom-test/gated", { gated: true, granted: [] });
    hub.addFile("inkloom-test/gated", FILE, bytes);
    const error = await failure(ensureHubFile({ repo: "inkloom-test/gated", file: FILE }, options({ token: TOKEN })));
    expect(error.kind).toBe("forbidden");
    expect(error.message).toContain("HF_TOKEN may not read inkloom-test/gated (403)");
    expect(error.message).toContain("accept its terms");
  });

  it("says the token was refused (401 with a token the Hub does not know)", async () => {
    const error = await failure(ensureHubFile({ repo: REPO, file: FILE }, options({ token: "hf_wrong" })));
    expect(error.kind).toBe("unauthorized");
    expect(error.message).toContain(`refused HF_TOKEN for ${REPO} (401)`);
    expect(error.message).toContain("Invalid credentials in Authorization header");
  });

  it("follows a renamed repository's redirect", async () => {
    hub.renameRepo("inkloom-test/old-name", REPO);
    await ensureHubFile({ repo: "inkloom-test/old-name", file: FILE }, options());
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    expect(hub.requestsTo("hub").map((r) => r.status)).toEqual([307, 302, 307, 302]);
  });
});

describe("a model already there", () => {
  it("is trusted from its sidecar on the next start, with no request at all", async () => {
    await ensureHubFile({ repo: REPO, file: FILE }, options());
    const seen = hub.requests.length;
    const again = await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(again).toEqual({ path: target(), size: SIZE, sha256: sha, downloaded: false });
    expect(hub.requests).toHaveLength(seen);
  });

  it("is downloaded again when its size is not the one its sidecar records", async () => {
    await ensureHubFile({ repo: REPO, file: FILE }, options());
    writeFileSync(target(), bytes.subarray(0, 1000));
    const again = await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(again.downloaded).toBe(true);
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    expect(cdnGets()).toHaveLength(2);
  });

  it("is checked against the Hub's sha256 when put there by hand, not downloaded", async () => {
    mkdirSync(dirname(target()), { recursive: true });
    writeFileSync(target(), bytes);
    const result = await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(result.downloaded).toBe(false);
    expect(cdnGets()).toHaveLength(0);
    expect(record()).toMatchObject({ size: SIZE, sha256: sha, complete: true });
  });
});

describe("two downloaders", () => {
  it("download once when started together: the second waits for the first", async () => {
    hub.faults.chunkDelayMs = 10;
    const [a, b] = await Promise.all([
      ensureHubFile({ repo: REPO, file: FILE }, options()),
      ensureHubFile({ repo: REPO, file: FILE }, options()),
    ]);
    expect([a.path, b.path]).toEqual([target(), target()]);
    expect([a.downloaded, b.downloaded].sort()).toEqual([false, true]);
    expect(cdnGets()).toHaveLength(1);
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    expect(logs.join("\n")).toContain(`is downloading ${FILE}; waiting for it`);
  });

  it("take over the lock of a process that died", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    mkdirSync(dirname(target()), { recursive: true });
    writeFileSync(`${target()}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: "old" }));
    await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(readFileSync(target()).equals(bytes)).toBe(true);
    expect(logs.join("\n")).toContain(`from a process that stopped (pid ${dead})`);
    expect(existsSync(`${target()}.lock`)).toBe(false);
  });

  it("take over a lock nobody has refreshed for longer than the stale time", async () => {
    mkdirSync(dirname(target()), { recursive: true });
    const lock = `${target()}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: "another-machine", token: "old" }));
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(lock, hourAgo, hourAgo);
    await ensureHubFile({ repo: REPO, file: FILE }, options());
    expect(readFileSync(target()).equals(bytes)).toBe(true);
  });

  it("stop waiting for a live holder when cancelled", async () => {
    mkdirSync(dirname(target()), { recursive: true });
    writeFileSync(`${target()}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: "other" }));
    const error = await failure(
      ensureHubFile({ repo: REPO, file: FILE }, options({ signal: AbortSignal.timeout(200) })),
    );
    expect(error.kind).toBe("cancelled");
    expect(logs.join("\n")).toContain(`another process (pid ${process.pid}) is downloading ${FILE}; waiting for it`);
    expect(hub.requests).toHaveLength(0);
    // The other holder's lock is left alone.
    expect(JSON.parse(readFileSync(`${target()}.lock`, "utf8")).token).toBe("other");
  });
});
