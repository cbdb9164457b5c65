/**
 * Downloading one file of a Hugging Face Hub repository, the way huggingface_hub's
 * `hf_hub_download` does:
 *
 * 1. `HEAD {endpoint}/{repo}/resolve/{revision}/{file}`, redirects not followed (but one
 *    to the same host, a renamed repository): a large file answers 302 to its CDN with
 *    `X-Linked-Size` and `X-Linked-Etag`, the size and sha256 of the LFS object.
 * 2. `GET` the same URL, following the 302 to the CDN (a fresh signed URL on every
 *    attempt; `Authorization` goes to the Hub's own host only), into `<file>.part`; an
 *    existing part is resumed with `Range: bytes=N-` and hashed again first.
 * 3. Size and sha256 checked, the part renamed into place, and a sidecar `<file>.json`
 *    written, so a later start trusts a file of the recorded size without reading 1 GB.
 *
 * Two processes share the work through `<file>.lock` (created with O_EXCL; a holder
 * refreshes it, a dead or silent holder's lock is taken over): the second waits, then finds
 * the file. A cancelled download keeps its part for the next start.
 *
 * Every request has a response timeout and, while the body flows, an idle timeout; network
 * errors, timeouts, 408/429/5xx and cut connections are retried with backoff, resuming from
 * what is on disk, up to `maxAttempts` failures in a row without progress. What cannot be
 * fixed by retrying is a `ModelDownloadError` whose message says what to do.
 */
import { createHash, type Hash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, statfs, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname } from "node:path";
import type { DownloadProgress } from "./download-progress.ts";
import { sizeText } from "./download-progress.ts";
import { isRetryableStatus, parseRetryAfter, retryDelayMs } from "./retry.ts";

/** A file of a Hub repository. */
export interface HubFile {
  /** `owner/name`. */
  readonly repo: string;
  /** Path of the file in the repository (may contain `/`). */
  readonly file: string;
  /** Branch, tag or commit (default `main`). */
  readonly revision?: string;
}

export const DOWNLOAD_DEFAULTS = {
  endpoint: "https://huggingface.co",
  revision: "main",
  /** From sending a request to its response's headers (DNS, connect, TLS, the server). */
  responseTimeoutMs: 30_000,
  /** The longest silence while a body flows. */
  idleTimeoutMs: 30_000,
  /** Failures in a row without a byte of progress before giving up. */
  maxAttempts: 5,
  backoffBaseMs: 1_000,
  backoffCapMs: 30_000,
  maxRedirects: 5,
  /** A lock not refreshed for this long is a dead holder's. */
  lockStaleMs: 60_000,
  lockRefreshMs: 10_000,
  lockPollMs: 1_000,
} as const;

export type DownloadTuning = {
  -readonly [K in Exclude<keyof typeof DOWNLOAD_DEFAULTS, "endpoint" | "revision">]: number;
};

export interface DownloadOptions extends Partial<DownloadTuning> {
  /** Where the file ends up; `.part`, `.lock` and `.json` live next to it. */
  readonly path: string;
  /** HF_ENDPOINT (default https://huggingface.co). */
  readonly endpoint?: string;
  /** HF_TOKEN, sent as `Authorization: Bearer` to the endpoint's host only. */
  readonly token?: string;
  /** How the file is named in the log and in errors ("Qwen2.5 1.5B Instruct (Q4_K_M)"); `repo/file` by default. */
  readonly describe?: string;
  /** Told when the download starts, after the name (its licence, say). */
  readonly about?: string;
  readonly log?: (message: string) => void;
  readonly progress?: DownloadProgress;
  /** Stops the download (or the wait for another process's); the part is kept. */
  readonly signal?: AbortSignal;
  /** Jitter source for the backoff (tests). */
  readonly random?: () => number;
}

export interface HubFileOnDisk {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** False when the file was already there (trusted from its sidecar, or checked). */
  readonly downloaded: boolean;
}

/** Why a download failed, for the one message the user sees. */
export type ModelDownloadErrorKind =
  /** Nothing came back: DNS, refused connections, timeouts, 5xx, after the retries. */
  | "unreachable"
  /** 401: a private or gated repository and no (or a refused) token. */
  | "unauthorized"
  /** 403: the token has no access (a gated repository whose terms were not accepted). */
  | "forbidden"
  /** 404: no such repository, revision or file. */
  | "not_found"
  /** The bytes do not have the Hub's size or sha256. */
  | "integrity"
  /** An answer that is not the Hub's protocol (no size or hash, an unexpected status). */
  | "protocol"
  /** The disk: no space, no permission. */
  | "disk"
  /** Stopped by the signal. */
  | "cancelled";

export class ModelDownloadError extends Error {
  override readonly name = "ModelDownloadError";
  constructor(
    readonly kind: ModelDownloadErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What is written next to a downloaded file (`<file>.json`). */
export interface HubFileRecord {
  readonly repo: string;
  readonly file: string;
  readonly revision: string;
  /** The commit the Hub resolved the revision to (`X-Repo-Commit`), when it said. */
  readonly commit?: string;
  readonly size: number;
  readonly sha256: string;
  readonly url: string;
  /** False while the `.part` is being filled: the hash it is for. */
  readonly complete: boolean;
  readonly time: string;
}

/** The resolve URL of a Hub file. */
export function hubFileUrl(endpoint: string, ref: HubFile): string {
  const path = ref.file.split("/").map(encodeURIComponent).join("/");
  const revision = encodeURIComponent(ref.revision ?? DOWNLOAD_DEFAULTS.revision);
  return `${endpoint.replace(/\/+$/, "")}/${ref.repo}/resolve/${revision}/${path}`;
}

/** The sidecar of a downloaded file. */
export const recordPath = (path: string): string => `${path}.json`;

/**
 * The file at `options.path`, downloaded from the Hub unless it is already there: a file
 * whose size its sidecar records is trusted without a request.
 */
export async function ensureHubFile(ref: HubFile, options: DownloadOptions): Promise<HubFileOnDisk> {
  const o = settle(ref, options);
  const known = await trusted(ref, o);
  if (known !== undefined) return known;
  await mkdir(dirname(o.path), { recursive: true }).catch((error: unknown) => {
    throw diskError(`cannot create ${dirname(o.path)}`, error);
  });
  const lock = await acquireLock(o);
  try {
    // Another process may have finished it while this one waited.
    const done = await trusted(ref, o);
    if (done !== undefined) return done;
    return await download(ref, o, lock.lost);
  } finally {
    await lock.release();
  }
}

/** The tuned options, with everything filled in. */
interface Settled extends DownloadTuning {
  readonly ref: HubFile;
  readonly path: string;
  readonly part: string;
  readonly url: string;
  readonly endpoint: string;
  readonly token: string | undefined;
  readonly describe: string;
  readonly about: string | undefined;
  readonly log: (message: string) => void;
  readonly progress: DownloadProgress | undefined;
  readonly signal: AbortSignal | undefined;
  readonly random: () => number;
}

function settle(ref: HubFile, options: DownloadOptions): Settled {
  const endpoint = (options.endpoint ?? DOWNLOAD_DEFAULTS.endpoint).replace(/\/+$/, "");
  const tuning = Object.fromEntries(
    (Object.keys(DOWNLOAD_DEFAULTS) as (keyof typeof DOWNLOAD_DEFAULTS)[])
      .filter((k): k is keyof DownloadTuning => k !== "endpoint" && k !== "revision")
      .map((k) => [k, options[k] ?? DOWNLOAD_DEFAULTS[k]]),
  ) as DownloadTuning;
  return {
    ...tuning,
    ref,
    path: options.path,
    part: `${options.path}.part`,
    url: hubFileUrl(endpoint, ref),
    endpoint,
    token: options.token,
    describe: options.describe ?? `${ref.repo}/${ref.file}`,
    about: options.about,
    log: options.log ?? (() => {}),
    progress: options.progress,
    signal: options.signal,
    random: options.random ?? Math.random,
  };
}

async function readRecord(path: string): Promise<HubFileRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(recordPath(path), "utf8")) as Partial<HubFileRecord>;
    if (typeof record.size !== "number" || typeof record.sha256 !== "string") return undefined;
    return record as HubFileRecord;
  } catch {
    return undefined;
  }
}

async function writeRecord(path: string, record: HubFileRecord): Promise<void> {
  const temporary = `${recordPath(path)}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
  await rename(temporary, recordPath(path));
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

/** The file, when its complete sidecar names this Hub file and its size matches. */
async function trusted(ref: HubFile, o: Settled): Promise<HubFileOnDisk | undefined> {
  const record = await readRecord(o.path);
  if (record === undefined || !record.complete || record.repo !== ref.repo || record.file !== ref.file)
    return undefined;
  if ((ref.revision ?? DOWNLOAD_DEFAULTS.revision) !== record.revision) return undefined;
  const size = await sizeOf(o.path);
  if (size !== record.size) return undefined;
  return { path: o.path, size, sha256: record.sha256, downloaded: false };
}

// ---------------------------------------------------------------------------------------
// The lock: one process downloads, the others wait.

interface HeldLock {
  /** Aborted if another process took the lock over (it judged this one dead). */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

interface LockHolder {
  readonly pid?: number;
  readonly host?: string;
  readonly token?: string;
  readonly raw: string;
  readonly mtimeMs: number;
}

async function readLock(path: string): Promise<LockHolder | undefined> {
  try {
    const [raw, s] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    let parsed: { pid?: unknown; host?: unknown; token?: unknown } = {};
    try {
      parsed = JSON.parse(raw) as typeof parsed;
    } catch {
      // Created, not yet written: judged by its age alone.
    }
    return {
      ...(typeof parsed.pid === "number" ? { pid: parsed.pid } : {}),
      ...(typeof parsed.host === "string" ? { host: parsed.host } : {}),
      ...(typeof parsed.token === "string" ? { token: parsed.token } : {}),
      raw,
      mtimeMs: s.mtimeMs,
    };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function stale(holder: LockHolder, o: Settled): boolean {
  if (Date.now() - holder.mtimeMs > o.lockStaleMs) return true;
  return holder.pid !== undefined && holder.host === hostname() && !alive(holder.pid);
}

async function acquireLock(o: Settled): Promise<HeldLock> {
  const path = `${o.path}.lock`;
  const token = randomUUID();
  const body = JSON.stringify({ pid: process.pid, host: hostname(), token, since: new Date().toISOString() });
  let told = false;
  let unreadable = 0;
  for (;;) {
    if (o.signal?.aborted) throw cancelled(o, 0);
    try {
      const handle = await open(path, "wx");
      try {
        await handle.writeFile(body);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw diskError(`cannot create ${path}`, error);
    }
    const holder = await readLock(path);
    if (holder === undefined) {
      // Gone between the two calls (its holder finished): try again, unless it cannot be read at all.
      unreadable += 1;
      if (unreadable > 100) throw diskError(`cannot read ${path}`, new Error("the lock file is unreadable"));
      continue;
    }
    unreadable = 0;
    if (stale(holder, o)) {
      // Remove it only if it is still the lock judged stale (not a new holder's).
      const again = await readLock(path);
      if (again !== undefined && again.raw === holder.raw) {
        await rm(path, { force: true });
        o.log(
          `took over the download lock of ${basename(o.path)} from a process that stopped (pid ${holder.pid ?? "?"})`,
        );
      }
      continue;
    }
    if (!told) {
      told = true;
      o.log(
        `another process (pid ${holder.pid ?? "?"}${holder.host !== undefined && holder.host !== hostname() ? ` on ${holder.host}` : ""}) ` +
          `is downloading ${basename(o.path)}; waiting for it (${path})`,
      );
    }
    await sleep(o.lockPollMs, o.signal).catch(() => {
      throw cancelled(o, 0);
    });
  }
  const lost = new AbortController();
  const refresh = setInterval(() => {
    void (async () => {
      const holder = await readLock(path);
      if (holder?.token !== token) {
        lost.abort(
          new ModelDownloadError(
            "cancelled",
            `another process took over the download of ${basename(o.path)} (${path}); this one stopped`,
          ),
        );
        return;
      }
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined);
    })();
  }, o.lockRefreshMs);
  refresh.unref();
  return {
    lost: lost.signal,
    async release() {
      clearInterval(refresh);
      const holder = await readLock(path);
      if (holder?.token === token) await rm(path, { force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// Requests.

/** A retryable failure of one attempt (the rest are thrown as `ModelDownloadError`). */
class Transient extends Error {
  override readonly name = "Transient";
  constructor(
    message: string,
    readonly url: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** What the Hub says about a file. */
interface HubMetadata {
  readonly size: number;
  readonly sha256: string;
  readonly commit: string | undefined;
}

const USER_AGENT = "inkloom (model download; node)";

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The network error's code (`ENOTFOUND`, `ECONNREFUSED`, `UND_ERR_SOCKET`...) and text. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  switch (code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "the host name could not be resolved (no network, or no DNS)";
    case "ECONNREFUSED":
      return "the connection was refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "the connection was closed";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return "the connection timed out";
    case "ENETUNREACH":
    case "EHOSTUNREACH":
      return "the network is unreachable";
    default:
      return cause?.message ?? (error instanceof Error ? error.message : String(error));
  }
}

/**
 * One request with the response timeout; the caller's `signal` cancels it. Returns the
 * response and a controller that aborts its body (the idle timeout uses it).
 */
async function request(
  o: Settled,
  method: "HEAD" | "GET",
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<{ response: Response; abort: AbortController }> {
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new Transient(`no answer within ${o.responseTimeoutMs / 1000} s`, url)),
    o.responseTimeoutMs,
  );
  try {
    const response = await fetch(url, {
      method,
      headers: { "User-Agent": USER_AGENT, "Accept-Encoding": "identity", ...headers },
      redirect: "manual",
      signal: AbortSignal.any([signal, abort.signal]),
    });
    return { response, abort };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (abort.signal.aborted) throw abort.signal.reason;
    throw new Transient(networkReason(error), url);
  } finally {
    clearTimeout(timer);
  }
}

/** Authorization for the Hub's own host only: a CDN's signed URL must not get the token. */
function authFor(o: Settled, url: string): Record<string, string> {
  if (o.token === undefined) return {};
  return new URL(url).origin === new URL(o.endpoint).origin ? { Authorization: `Bearer ${o.token}` } : {};
}

/** The Hub's refusal, as the message a person can act on; retryable statuses as `Transient`. */
function refusal(o: Settled, response: Response, url: string): Error {
  const status = response.status;
  if (isRetryableStatus(status)) {
    return new Transient(`${hostOf(url)} answered ${status}`, url, parseRetryAfter(response.headers));
  }
  // Past the Hub's redirect: the CDN refusing its signed URL (expired, say). The next attempt
  // asks the Hub for a fresh one; the Hub's own answers below do not apply.
  if (new URL(url).origin !== new URL(o.endpoint).origin) {
    return new Transient(`${hostOf(url)} answered ${status} ${response.statusText}`.trim(), url);
  }
  const code = response.headers.get("x-error-code") ?? "";
  const said = response.headers.get("x-error-message");
  const detail = said ? ` (${hostOf(url)}: "${said}")` : "";
  const { repo, file } = o.ref;
  const revision = o.ref.revision ?? DOWNLOAD_DEFAULTS.revision;
  const page = `${o.endpoint}/${repo}`;
  if (status === 401) {
    if (o.token !== undefined) {
      return new ModelDownloadError(
        "unauthorized",
        `${hostOf(url)} refused HF_TOKEN for ${repo} (401)${detail}. Check the token ` +
          `(${o.endpoint}/settings/tokens), and that ${repo} exists.`,
      );
    }
    return new ModelDownloadError(
      "unauthorized",
      code === "GatedRepo"
        ? `${repo} is a gated repository: it needs a token of an account that accepted its terms at ${page}. ` +
            `Set HF_TOKEN to such a token (${o.endpoint}/settings/tokens)${detail}.`
        : `${repo} was not found on ${hostOf(url)}, or it is private or gated (401)${detail}. Check the name in ` +
            `LOCAL_MODEL; for a private or gated repository, set HF_TOKEN to a token that may read it.`,
    );
  }
  if (status === 403) {
    return new ModelDownloadError(
      "forbidden",
      `HF_TOKEN may not read ${repo} (403)${detail}. ` +
        (code === "GatedRepo"
          ? `It is gated: accept its terms at ${page} with the token's account, then start again.`
          : "Use a token with read access to it."),
    );
  }
  if (status === 404) {
    if (code === "RepoNotFound") {
      return new ModelDownloadError(
        "not_found",
        `${repo} was not found on ${hostOf(url)}${detail}: check LOCAL_MODEL.`,
      );
    }
    if (code === "RevisionNotFound") {
      return new ModelDownloadError("not_found", `${repo} has no revision ${revision}${detail}.`);
    }
    return new ModelDownloadError(
      "not_found",
      `${file} is not in ${repo} (revision ${revision})${detail}: check the file name in LOCAL_MODEL ` +
        `against ${page}/tree/${revision}.`,
    );
  }
  return new ModelDownloadError(
    "protocol",
    `${hostOf(url)} answered ${status} ${response.statusText} for ${url}${detail}; the download cannot go on.`,
  );
}

function unquote(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** HEAD of the resolve URL: the size and sha256 of the file (redirects to the same host followed). */
async function metadata(o: Settled, signal: AbortSignal): Promise<HubMetadata> {
  let url = o.url;
  for (let hop = 0; ; hop++) {
    const { response } = await request(o, "HEAD", url, authFor(o, url), signal);
    const location = response.headers.get("location");
    // A renamed repository redirects within the Hub, with a relative Location: follow it (as
    // huggingface_hub does); a redirect to another host (the CDN) is the answer.
    const relative = location !== null && !/^[a-z][a-z0-9+.-]*:|^\/\//i.test(location);
    if (response.status >= 300 && response.status < 400 && location !== null && relative) {
      if (hop >= o.maxRedirects) throw new ModelDownloadError("protocol", `too many redirects from ${o.url}`);
      url = new URL(location, url).href;
      continue;
    }
    if (!(response.status >= 200 && response.status < 400)) throw refusal(o, response, url);
    const linkedSize = response.headers.get("x-linked-size");
    const size = Number(linkedSize ?? (response.status === 200 ? response.headers.get("content-length") : null));
    const sha256 = unquote(response.headers.get("x-linked-etag") ?? response.headers.get("etag"))?.toLowerCase();
    if (!Number.isSafeInteger(size) || size <= 0 || sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) {
      throw new ModelDownloadError(
        "protocol",
        `${hostOf(url)} did not give the size and sha256 of ${o.ref.file} (X-Linked-Size, X-Linked-Etag), so ` +
          "the download could not be verified. Is HF_ENDPOINT a Hugging Face Hub (or a mirror of it)?",
      );
    }
    return { size, sha256, commit: response.headers.get("x-repo-commit") ?? undefined };
  }
}

// ---------------------------------------------------------------------------------------
// The download.

/** The part being filled: its handle, how much it holds, and the hash of that. */
interface Part {
  handle: FileHandle;
  written: number;
  hash: Hash;
}

function cancelled(o: Settled, written: number): ModelDownloadError {
  return new ModelDownloadError(
    "cancelled",
    written > 0
      ? `The download of ${basename(o.path)} was stopped at ${sizeText(written)}; ${o.part} is kept and the next start resumes it.`
      : `The download of ${basename(o.path)} was stopped.`,
  );
}

function diskError(what: string, error: unknown): ModelDownloadError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ModelDownloadError("disk", `${what} (${reason}). Set LOCAL_MODEL_DIR to a folder you can write to.`, {
    cause: error,
  });
}

function unreachable(o: Settled, failure: Transient, attempts: number): ModelDownloadError {
  const host = hostOf(failure.url);
  return new ModelDownloadError(
    "unreachable",
    [
      `The model ${o.describe} could not be downloaded from ${host}: ${failure.message} (${attempts} attempts).`,
      "What to do:",
      "  - play on a model endpoint instead: set OPENAI_BASE_URL (and OPENAI_MODEL), or OPENAI_API_KEY for OpenAI; or",
      `  - download ${basename(o.ref.file)} yourself from ${o.url}`,
      `    and set LOCAL_MODEL=/path/to/${basename(o.ref.file)}; or`,
      "  - start again when the network is back: the download resumes where it stopped.",
    ].join("\n"),
    { cause: failure },
  );
}

/** Read the existing part through the hash (resuming needs the hash of all the bytes). */
async function hashFile(path: string, hash: Hash, signal: AbortSignal): Promise<number> {
  let bytes = 0;
  for await (const chunk of createReadStream(path, { signal }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return bytes;
}

async function download(ref: HubFile, o: Settled, lost: AbortSignal): Promise<HubFileOnDisk> {
  const signal = AbortSignal.any([lost, ...(o.signal === undefined ? [] : [o.signal])]);
  const stopped = (written: number): Error =>
    lost.aborted && !(o.signal?.aborted ?? false) ? (lost.reason as Error) : cancelled(o, written);
  let meta: HubMetadata | undefined;
  let part: Part | undefined;
  let failures = 0;
  try {
    for (;;) {
      const before = part?.written ?? 0;
      try {
        if (meta === undefined) {
          meta = await metadata(o, signal);
          const ready = await prepare(o, meta, signal);
          if ("path" in ready) return ready;
          part = ready;
          o.log(
            `downloading ${o.describe}${o.about === undefined ? "" : ` (${o.about})`}: ${sizeText(meta.size)} from ${hostOf(o.endpoint)} into ${o.path}` +
              (part.written > 0 ? ` (resuming at ${sizeText(part.written)})` : ""),
          );
          o.progress?.start(meta.size, part.written);
        }
        if (part === undefined) throw new Error("unreachable: no part");
        await transfer(o, meta, part, signal);
        break;
      } catch (error) {
        if (signal.aborted) throw stopped(part?.written ?? 0);
        if (!(error instanceof Transient)) throw error;
        if ((part?.written ?? 0) > before) failures = 0;
        failures += 1;
        if (failures >= o.maxAttempts) throw unreachable(o, error, failures);
        const wait = retryDelayMs(failures - 1, {
          baseMs: o.backoffBaseMs,
          capMs: o.backoffCapMs,
          retryAfterMs: error.retryAfterMs,
          random: o.random,
        });
        const log = () =>
          o.log(
            `download of ${basename(o.path)}: ${error.message}; trying again in ${(wait / 1000).toFixed(1)} s ` +
              `(attempt ${failures + 1} of ${o.maxAttempts}${part !== undefined && part.written > 0 ? `, from ${sizeText(part.written)}` : ""})`,
          );
        if (o.progress === undefined) log();
        else o.progress.above(log);
        await sleep(wait, signal).catch(() => {
          throw stopped(part?.written ?? 0);
        });
      }
    }
    return await finish(ref, o, meta, part);
  } finally {
    o.progress?.end();
    await part?.handle.close().catch(() => undefined);
  }
}

/**
 * Before the first byte: a file already in place is checked (kept or removed), a part of
 * another version of the file is dropped, and the disk has room for the rest.
 */
async function prepare(o: Settled, meta: HubMetadata, signal: AbortSignal): Promise<HubFileOnDisk | Part> {
  const record = (complete: boolean): HubFileRecord => ({
    repo: o.ref.repo,
    file: o.ref.file,
    revision: o.ref.revision ?? DOWNLOAD_DEFAULTS.revision,
    ...(meta.commit === undefined ? {} : { commit: meta.commit }),
    size: meta.size,
    sha256: meta.sha256,
    url: o.url,
    complete,
    time: new Date().toISOString(),
  });
  // A file in place with no (or a wrong) sidecar: put there by hand, or by an older run.
  const present = await sizeOf(o.path);
  if (present !== undefined) {
    if (present === meta.size) {
      o.log(`checking ${o.path} against the Hub's sha256 (${sizeText(present)})`);
      const digest = createHash("sha256");
      await hashFile(o.path, digest, signal);
      if (digest.digest("hex") === meta.sha256) {
        await writeRecord(o.path, record(true));
        return { path: o.path, size: present, sha256: meta.sha256, downloaded: false };
      }
    }
    o.log(`${o.path} is not the Hub's ${o.ref.file} (size or sha256 differ): downloading it again`);
    await rm(o.path, { force: true });
  }
  // A part left by an earlier run of another version of the file cannot be resumed.
  const previous = await readRecord(o.path);
  let partSize = (await sizeOf(o.part)) ?? 0;
  if (partSize > 0 && (previous === undefined || previous.sha256 !== meta.sha256 || partSize > meta.size)) {
    o.log(`${o.part} is not a part of this version of the file: starting over`);
    await rm(o.part, { force: true });
    partSize = 0;
  }
  try {
    const free = await statfs(dirname(o.path));
    const room = free.bavail * free.bsize;
    if (room < meta.size - partSize) {
      throw new ModelDownloadError(
        "disk",
        `${o.ref.file} needs ${sizeText(meta.size - partSize)} more in ${dirname(o.path)}, which has ${sizeText(room)} ` +
          "free. Free some space, or set LOCAL_MODEL_DIR to another disk.",
      );
    }
    await writeRecord(o.path, record(false));
    const handle = await open(o.part, "a");
    const hash = createHash("sha256");
    if (partSize > 0) {
      o.log(`checking the ${sizeText(partSize)} already downloaded in ${o.part}`);
      partSize = await hashFile(o.part, hash, signal);
    }
    return { handle, written: partSize, hash };
  } catch (error) {
    if (error instanceof ModelDownloadError || signal.aborted) throw error;
    throw diskError(`cannot write ${o.part}`, error);
  }
}

/** Empty the part: the server sends the whole file, or a part that does not fit. */
async function restart(part: Part): Promise<void> {
  await part.handle.truncate(0);
  part.written = 0;
  part.hash = createHash("sha256");
}

/** One GET: the rest of the file appended to the part (or all of it, when the server says so). */
async function transfer(o: Settled, meta: HubMetadata, part: Part, signal: AbortSignal): Promise<void> {
  const range: Record<string, string> = part.written > 0 ? { Range: `bytes=${part.written}-` } : {};
  let url = o.url;
  let response: Response | undefined;
  let abort: AbortController | undefined;
  for (let hop = 0; ; hop++) {
    ({ response, abort } = await request(o, "GET", url, { ...authFor(o, url), ...range }, signal));
    const location = response.headers.get("location");
    if (response.status < 300 || response.status >= 400 || location === null) break;
    // The Hub's redirect names the file it leads to: another version means starting over.
    const linked = unquote(response.headers.get("x-linked-etag"));
    if (linked !== undefined && linked.toLowerCase() !== meta.sha256) {
      await response.body?.cancel();
      throw new ModelDownloadError(
        "integrity",
        `${o.ref.file} changed on the Hub during the download (sha256 ${linked}, was ${meta.sha256}); start again.`,
      );
    }
    await response.body?.cancel();
    if (hop >= o.maxRedirects) throw new ModelDownloadError("protocol", `too many redirects from ${o.url}`);
    url = new URL(location, url).href;
  }
  const body = response.body;
  if (response.status === 416) {
    await body?.cancel();
    // The part holds at least the whole file: finish() checks it.
    if (part.written >= meta.size) return;
    await restart(part);
    throw new Transient(`${hostOf(url)} refused the range from ${part.written}`, url);
  }
  if (response.status === 206) {
    const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
    if (
      match?.[1] === undefined ||
      Number(match[1]) !== part.written ||
      (match[3] !== "*" && Number(match[3]) !== meta.size)
    ) {
      await body?.cancel();
      await restart(part);
      throw new Transient(`${hostOf(url)} sent another range than asked for`, url);
    }
  } else if (response.status === 200) {
    if (part.written > 0) {
      o.progress?.above(() => o.log(`${hostOf(url)} sent the whole file again: starting over`));
      await restart(part);
    }
  } else {
    await body?.cancel();
    throw refusal(o, response, url);
  }
  if (body === null) throw new Transient(`${hostOf(url)} sent no body`, url);
  const timeout = () => abort?.abort(new Transient(`no data for ${o.idleTimeoutMs / 1000} s`, url));
  let idle = setTimeout(timeout, o.idleTimeoutMs);
  try {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      clearTimeout(idle);
      if (part.written + chunk.length > meta.size) {
        throw new ModelDownloadError(
          "integrity",
          `${hostOf(url)} sent more than the ${meta.size} bytes the Hub announced for ${o.ref.file}; nothing was kept.`,
        );
      }
      await part.handle.write(chunk);
      part.hash.update(chunk);
      part.written += chunk.length;
      o.progress?.update(part.written);
      idle = setTimeout(timeout, o.idleTimeoutMs);
    }
  } catch (error) {
    if (error instanceof ModelDownloadError) {
      await restart(part);
      throw error;
    }
    if (signal.aborted) throw signal.reason;
    if (abort?.signal.aborted) throw abort.signal.reason;
    throw new Transient(networkReason(error), url);
  } finally {
    clearTimeout(idle);
  }
  if (part.written < meta.size) {
    throw new Transient(`the connection closed at ${sizeText(part.written)} of ${sizeText(meta.size)}`, url);
  }
}

/** Size and sha256 checked; the part renamed into place and the sidecar completed. */
async function finish(
  ref: HubFile,
  o: Settled,
  meta: HubMetadata | undefined,
  part: Part | undefined,
): Promise<HubFileOnDisk> {
  if (meta === undefined || part === undefined) throw new Error("unreachable: finished without a part");
  // The part holds more than the file (a 416 on a part too big): count what is on disk.
  const size = (await sizeOf(o.part)) ?? part.written;
  const sha256 = size === part.written ? part.hash.digest("hex") : "";
  if (size !== meta.size || sha256 !== meta.sha256) {
    await part.handle.close().catch(() => undefined);
    await rm(o.part, { force: true });
    throw new ModelDownloadError(
      "integrity",
      `The downloaded ${ref.file} is not the Hub's: ` +
        (size !== meta.size
          ? `${size} bytes instead of ${meta.size}`
          : `its sha256 is ${sha256}, the Hub's is ${meta.sha256}`) +
        `. The partial file ${o.part} was deleted; start again to download it afresh.`,
    );
  }
  await part.handle.sync();
  await part.handle.close();
  await rename(o.part, o.path);
  await writeRecord(o.path, {
    repo: ref.repo,
    file: ref.file,
    revision: ref.revision ?? DOWNLOAD_DEFAULTS.revision,
    ...(meta.commit === undefined ? {} : { commit: meta.commit }),
    size: meta.size,
    sha256: meta.sha256,
    url: o.url,
    complete: true,
    time: new Date().toISOString(),
  });
  o.progress?.end();
  o.log(`${o.describe} is ready: ${o.path} (${sizeText(meta.size)}, sha256 ${meta.sha256.slice(0, 12)}… checked)`);
  return { path: o.path, size: meta.size, sha256: meta.sha256, downloaded: true };
}
