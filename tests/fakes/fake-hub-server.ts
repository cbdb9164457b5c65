/**
 * A fake Hugging Face Hub over real HTTP, two servers as in production: the Hub, which
 * answers `HEAD`/`GET /{owner}/{repo}/resolve/{revision}/{file}` of an LFS file with a 302
 * to a signed URL on its CDN (another port), and the CDN, which serves the bytes.
 *
 * What the Hub does as the real one does:
 * - the 302 carries `X-Linked-Size`, `X-Linked-Etag` (the sha256, quoted), `ETag`,
 *   `X-Repo-Commit` and `Location`; a renamed repository answers 307 to its new name
 *   (a relative `Location`);
 * - errors carry `X-Error-Code` and `X-Error-Message`: an unknown repository is 401
 *   `RepoNotFound` without a token (404 with one), a gated one is 401 `GatedRepo` without
 *   a token and 403 with a token that was not granted access, an unknown revision is 404
 *   `RevisionNotFound`, a missing file 404 `EntryNotFound`; a token the Hub does not know
 *   is 401 "Invalid credentials in Authorization header".
 *
 * What the CDN does as S3/CloudFront does: it checks the URL's signature and expiry (403
 * otherwise) and refuses a request that also carries `Authorization` (400, "Only one auth
 * mechanism allowed"), so a client that forwards the Hub token to it fails here too; it
 * honours `Range: bytes=N-`, `bytes=N-M` and `bytes=-K` (206 with `Content-Range`, 416
 * with `Content-Range: bytes *\/size` past the end; several ranges or a malformed header
 * get the whole file, 200), with `Accept-Ranges: bytes` and an `ETag`.
 *
 * Knobs for tests (`faults`): the Hub fails `hubFailures.times` requests with a status
 * (503, 429, with an optional `Retry-After`); the CDN cuts the connection after N bytes,
 * stalls after N bytes (the socket stays open, silent), serves corrupt bytes, or sends
 * slowly (a delay per chunk). Every request is recorded with what was sent.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface HubRequest {
  readonly server: "hub" | "cdn";
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
  status: number;
  /** Body bytes written to the client. */
  bytesSent: number;
}

export interface FakeHubFaults {
  /** The next `times` Hub requests are answered with `status` (and `Retry-After`, if given). */
  hubFailures?: { status: number; times: number; retryAfter?: string };
  /** The next `times` CDN transfers stop after `bytes` bytes: the connection is destroyed. */
  cutAfter?: { bytes: number; times: number };
  /** The next `times` CDN transfers send `bytes` bytes, then nothing (the connection stays open). */
  stallAfter?: { bytes: number; times: number };
  /** The CDN serves the file with one byte flipped in its middle. */
  corrupt?: boolean;
  /** A pause between the CDN's chunks. */
  chunkDelayMs?: number;
}

interface FakeRepo {
  readonly files: Map<string, Buffer>;
  readonly commit: string;
  readonly gated: boolean;
  readonly granted: Set<string>;
}

const CHUNK = 64 * 1024;

export class FakeHubServer {
  readonly requests: HubRequest[] = [];
  faults: FakeHubFaults = {};
  private readonly repos = new Map<string, FakeRepo>();
  private readonly renamed = new Map<string, string>();
  private readonly blobs = new Map<string, Buffer>();
  private readonly secret = randomBytes(16).toString("hex");
  private readonly tokens: Set<string>;

  private constructor(
    private readonly hub: Server,
    private readonly cdn: Server,
    tokens: readonly string[],
    private readonly urlTtlSeconds: number,
  ) {
    this.tokens = new Set(tokens);
  }

  /** Both servers on loopback, on free ports. `tokens` are the access tokens the Hub knows. */
  static async start(options: { tokens?: readonly string[]; urlTtlSeconds?: number } = {}): Promise<FakeHubServer> {
    const hub = createServer();
    const cdn = createServer();
    const fake = new FakeHubServer(hub, cdn, options.tokens ?? [], options.urlTtlSeconds ?? 3600);
    hub.on("request", (req, res) => fake.onHub(req, res));
    cdn.on("request", (req, res) => {
      fake.onCdn(req, res).catch(() => res.destroy());
    });
    await Promise.all([hub, cdn].map((s) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()))));
    return fake;
  }

  /** HF_ENDPOINT of this Hub. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
  }

  /** The CDN's origin (the host the 302 leads to). */
  get cdnOrigin(): string {
    return `http://127.0.0.1:${(this.cdn.address() as AddressInfo).port}`;
  }

  /** A repository; `gated` ones serve only the `granted` tokens. */
  addRepo(repo: string, options: { gated?: boolean; granted?: readonly string[] } = {}): void {
    if (this.repos.has(repo)) return;
    this.repos.set(repo, {
      files: new Map(),
      commit: randomBytes(20).toString("hex"),
      gated: options.gated ?? false,
      granted: new Set(options.granted ?? []),
    });
  }

  /** An LFS file in `repo` (created if needed). Returns its sha256. */
  addFile(repo: string, path: string, bytes: Buffer): string {
    this.addRepo(repo);
    this.repos.get(repo)?.files.set(path, bytes);
    const sha = createHash("sha256").update(bytes).digest("hex");
    this.blobs.set(sha, bytes);
    return sha;
  }

  /** `from` was renamed `to`: its URLs redirect to the new name. */
  renameRepo(from: string, to: string): void {
    this.renamed.set(from, to);
  }

  /** The requests one server received. */
  requestsTo(server: "hub" | "cdn"): HubRequest[] {
    return this.requests.filter((r) => r.server === server);
  }

  async close(): Promise<void> {
    for (const s of [this.hub, this.cdn]) s.closeAllConnections();
    await Promise.all([this.hub, this.cdn].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private record(server: "hub" | "cdn", req: IncomingMessage): HubRequest {
    const entry: HubRequest = {
      server,
      method: req.method ?? "",
      url: req.url ?? "",
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytesSent: 0,
    };
    this.requests.push(entry);
    return entry;
  }

  private onHub(req: IncomingMessage, res: ServerResponse) {
    const entry = this.record("hub", req);
    const reply = (status: number, headers: Record<string, string> = {}, body = "") => {
      entry.status = status;
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...headers });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const error = (status: number, code: string | undefined, message: string) =>
      reply(status, { ...(code === undefined ? {} : { "X-Error-Code": code }), "X-Error-Message": message }, message);

    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, {}, "Method Not Allowed");
    const failure = this.faults.hubFailures;
    if (failure !== undefined && failure.times > 0) {
      failure.times -= 1;
      return reply(failure.status, failure.retryAfter === undefined ? {} : { "Retry-After": failure.retryAfter });
    }
    const url = new URL(req.url ?? "/", "http://hub");
    const match = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (match === null) return reply(404, {}, "Not Found");
    const [, owner = "", name = "", rawRevision = "", rawFile = ""] = match;
    const repoId = `${decodeURIComponent(owner)}/${decodeURIComponent(name)}`;
    const revision = decodeURIComponent(rawRevision);
    const file = rawFile.split("/").map(decodeURIComponent).join("/");

    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length) : undefined;
    if (auth !== undefined && (token === undefined || !this.tokens.has(token))) {
      return error(401, undefined, "Invalid credentials in Authorization header");
    }
    const newName = this.renamed.get(repoId);
    if (newName !== undefined) {
      entry.status = 307;
      res.writeHead(307, { Location: `/${newName}/resolve/${rawRevision}/${rawFile}` });
      res.end();
      return;
    }
    const repo = this.repos.get(repoId);
    if (repo === undefined) {
      return error(token === undefined ? 401 : 404, "RepoNotFound", "Repository not found");
    }
    if (repo.gated && token === undefined) {
      return error(
        401,
        "GatedRepo",
        `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
    }
    if (repo.gated && token !== undefined && !repo.granted.has(token)) {
      return error(
        403,
        "GatedRepo",
        `Access to model ${repoId} is restricted and you are not in the authorized list. Visit ${this.endpoint}/${repoId} to ask for access.`,
      );
    }
    if (revision !== "main" && revision !== repo.commit) {
      return error(404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    }
    const bytes = repo.files.get(file);
    if (bytes === undefined) return error(404, "EntryNotFound", "Entry not found");
    const sha = createHash("sha256").update(bytes).digest("hex");
    const location = this.signedUrl(sha);
    reply(
      302,
      {
        Location: location,
        "X-Linked-Size": String(bytes.length),
        "X-Linked-Etag": `"${sha}"`,
        ETag: `"${sha}"`,
        "X-Repo-Commit": repo.commit,
      },
      `Found. Redirecting to ${location}`,
    );
  }

  private signature(sha: string, expires: number): string {
    return createHmac("sha256", this.secret).update(`${sha}:${expires}`).digest("hex");
  }

  private signedUrl(sha: string): string {
    const expires = Math.floor(Date.now() / 1000) + this.urlTtlSeconds;
    return `${this.cdnOrigin}/repos/${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}?Expires=${expires}&Signature=${this.signature(sha, expires)}`;
  }

  private async onCdn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const entry = this.record("cdn", req);
    const xml = (status: number, code: string, message: string) => {
      entry.status = status;
      res.writeHead(status, { "Content-Type": "application/xml" });
      res.end(req.method === "HEAD" ? undefined : `<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return xml(405, "MethodNotAllowed", "Method not allowed");
    const url = new URL(req.url ?? "/", "http://cdn");
    const match = /^\/repos\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(url.pathname);
    const sha = match?.[1];
    const blob = sha === undefined ? undefined : this.blobs.get(sha);
    if (sha === undefined || blob === undefined) return xml(404, "NoSuchKey", "The specified key does not exist.");
    if (req.headers.authorization !== undefined) {
      return xml(
        400,
        "InvalidArgument",
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      );
    }
    const expires = Number(url.searchParams.get("Expires"));
    if (url.searchParams.get("Signature") !== this.signature(sha, expires)) {
      return xml(403, "AccessDenied", "Access denied");
    }
    if (expires * 1000 < Date.now()) return xml(403, "AccessDenied", "Request has expired");

    let bytes = blob;
    if (this.faults.corrupt) {
      bytes = Buffer.from(blob);
      const middle = Math.floor(bytes.length / 2);
      bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    }
    const size = bytes.length;
    const etag = `"${createHash("md5").update(blob).digest("hex")}"`;
    const common = { "Accept-Ranges": "bytes", ETag: etag, "Content-Type": "application/octet-stream" };
    const range = parseRange(req.headers.range, size);
    if (range === "unsatisfiable") {
      entry.status = 416;
      res.writeHead(416, { ...common, "Content-Range": `bytes */${size}` });
      res.end();
      return;
    }
    const [start, end] = range ?? [0, size - 1];
    entry.status = range === undefined ? 200 : 206;
    res.writeHead(entry.status, {
      ...common,
      "Content-Length": String(end - start + 1),
      ...(range === undefined ? {} : { "Content-Range": `bytes ${start}-${end}/${size}` }),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    await this.send(res, entry, bytes.subarray(start, end + 1));
  }

  /** Write the body in chunks, with the faults that apply to this transfer. */
  private async send(res: ServerResponse, entry: HubRequest, body: Buffer): Promise<void> {
    const cut = this.faults.cutAfter;
    const cutAt = cut !== undefined && cut.times > 0 ? cut.bytes : undefined;
    if (cut !== undefined && cutAt !== undefined) cut.times -= 1;
    const stall = this.faults.stallAfter;
    const stallAt = stall !== undefined && stall.times > 0 ? stall.bytes : undefined;
    if (stall !== undefined && stallAt !== undefined) stall.times -= 1;
    const limit = Math.min(body.length, cutAt ?? Number.POSITIVE_INFINITY, stallAt ?? Number.POSITIVE_INFINITY);
    let offset = 0;
    const closed = new Promise<void>((resolve) => res.once("close", resolve));
    while (offset < limit && !res.destroyed) {
      const chunk = body.subarray(offset, Math.min(offset + CHUNK, limit));
      offset += chunk.length;
      entry.bytesSent += chunk.length;
      const flushed = new Promise<void>((resolve) => res.write(chunk, () => resolve()));
      await Promise.race([flushed, closed]);
      if (this.faults.chunkDelayMs !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, this.faults.chunkDelayMs));
      }
    }
    if (res.destroyed) return;
    if (cutAt !== undefined && offset >= cutAt && offset < body.length) {
      res.socket?.destroy();
      return;
    }
    // A stall: the connection stays open and silent until the client gives up (or close()).
    if (stallAt !== undefined && offset >= stallAt && offset < body.length) return;
    res.end();
  }
}

/** One byte range of a `Range` header: `[start, end]`, undefined for the whole file, or unsatisfiable. */
function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, from = "", to = ""] = match;
  if (from === "" && to === "") return undefined;
  if (from === "") {
    const suffix = Number(to);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(from);
  if (start >= size) return "unsatisfiable";
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1);
  if (end < start) return undefined;
  return [start, end];
}
