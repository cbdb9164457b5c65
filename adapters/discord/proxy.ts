/**
 * `npm run discord:proxy`: the one process in front of Discord's REST API that every process
 * of the bot points DISCORD_API_ROOT at (fronts holding the gateway, chapter workers writing
 * through `discordSurfaceFor`), so that they share one budget: Discord counts 50 requests/s
 * for the bot across all its processes, and per-route buckets per channel.
 *
 * It is `@discordjs/proxy` (maintained in the discord.js monorepo), which speaks the REST API
 * as Discord does: each request is forwarded with its own Authorization header through ONE
 * `@discordjs/rest` client, whose queues follow the per-route buckets, keep the global 50/s and
 * wait out 429s for everyone (its request handler is reproduced below with the body buffered,
 * see `forward`). Interaction callbacks pass through its burst queue, outside the
 * global count, as at Discord. Requests carrying another bot's token are refused (one proxy,
 * one bot's budget); interaction callbacks and webhooks carry no token and pass.
 *
 * Settings (see src/app/config.ts): DISCORD_API_ROOT (where it forwards: Discord by default),
 * DISCORD_PROXY_PORT (8090), DISCORD_TOKEN (optional: the only bot token it forwards).
 */
import { existsSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { populateErrorResponse, populateSuccessfulResponse } from "@discordjs/proxy";
// The ESM build, as @discordjs/proxy's: its `instanceof DiscordAPIError` must see the same class.
import { REST, type RequestMethod } from "@discordjs/rest";
import { ConfigError, loadDiscordProxyConfig } from "../../src/app/config.ts";

export interface DiscordProxyOptions {
  /** Discord's REST API root (or a test fake's), e.g. https://discord.com/api. */
  upstream: string;
  /** 0 picks a free port. */
  port: number;
  /** Default: all interfaces (the bot's other processes reach it over the network). */
  host?: string;
  /** The bot token it forwards; requests carrying another are answered 401. */
  token?: string;
  log?: (message: string) => void;
}

export interface DiscordProxy {
  /** What the bot's processes set DISCORD_API_ROOT to: `http://<host>:<port>/api`. */
  readonly apiRoot: string;
  readonly port: number;
  /** Requests forwarded so far. */
  readonly forwarded: number;
  close(): Promise<void>;
}

export async function startDiscordProxy(options: DiscordProxyOptions): Promise<DiscordProxy> {
  const log = options.log ?? (() => {});
  // Retries and timeouts as @discordjs/rest's defaults; its queues are what matters here.
  const rest = new REST({ api: options.upstream });
  rest.on("rateLimited", (info) => {
    const scope = info.global ? " (global)" : "";
    log(`rate limited on ${info.method.toUpperCase()} ${info.route}${scope}: waiting ${info.timeToReset} ms`);
  });
  const expected = options.token === undefined ? undefined : `Bot ${options.token}`;
  let forwarded = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization;
    if (expected !== undefined && auth !== undefined && auth !== expected) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"message":"401: Unauthorized","code":0}');
      return;
    }
    forwarded++;
    void forward(rest, req, res, log);
  });
  const host = options.host ?? "0.0.0.0";
  await new Promise<void>((ready, fail) => {
    server.once("error", fail);
    server.listen(options.port, host, () => ready());
  });
  const { port } = server.address() as AddressInfo;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return {
    apiRoot: `http://${shown}:${port}/api`,
    port,
    get forwarded() {
      return forwarded;
    },
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

/**
 * `@discordjs/proxy`'s `proxyRequests`, with the body read first: it streams the request into
 * the REST client, so a request the client sends again (after a 429 or a 5xx) would go out
 * empty. Responses are written by the package's own helpers (rate-limit headers left out: the
 * proxy keeps the buckets). What no helper knows (Discord unreachable) is a 502.
 */
async function forward(rest: REST, req: IncomingMessage, res: ServerResponse, log: (m: string) => void) {
  const url = new URL(req.url ?? "/", "http://proxy.local");
  const fullRoute = url.pathname.replace(/^\/api(\/v\d+)?/, "") as `/${string}`;
  const headers: Record<string, string> = {};
  for (const name of ["content-type", "authorization", "x-audit-log-reason"]) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const response = await rest.queueRequest({
      fullRoute,
      method: (req.method ?? "GET") as RequestMethod,
      ...(body.length === 0 ? {} : { body, passThroughBody: true }),
      query: url.searchParams,
      headers,
      // The caller's own Authorization header (or none, for interaction callbacks) goes along.
      auth: false,
    });
    await populateSuccessfulResponse(res, response);
  } catch (error) {
    if (!populateErrorResponse(res, error)) {
      log(`${req.method} ${fullRoute.replace(/\/webhooks\/(\d+)\/[^/?]+/, "/webhooks/$1/:token")}: ${String(error)}`);
      res.statusCode = 502;
    }
  } finally {
    res.end();
  }
}

async function main(): Promise<number> {
  const log = (message: string) => process.stderr.write(`[discord-proxy] ${message}\n`);
  if (existsSync(".env")) process.loadEnvFile(".env");
  let config: ReturnType<typeof loadDiscordProxyConfig>;
  try {
    config = loadDiscordProxyConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const proxy = await startDiscordProxy({ ...config, log });
  log(`forwarding port ${proxy.port} to ${config.upstream}; set DISCORD_API_ROOT=http://<this host>:${proxy.port}/api`);
  if (config.token === undefined) log("DISCORD_TOKEN is not set: requests with any bot token are forwarded");
  await new Promise<void>((done) => {
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  await proxy.close();
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) process.exitCode = await main();
