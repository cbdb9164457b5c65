/**
 * A fake OpenAI-compatible endpoint over real HTTP and SSE, so the real `openai` SDK
 * (and everything above it) runs unchanged in tests and benches. Replies are scripted:
 * one-shot replies from `enqueue` first, then the responder.
 *
 * Run it alone for manual play: `tsx tests/fakes/fake-openai-server.ts`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { pathToFileURL } from "node:url";
import type { FakeReply, FakeRequest, Responder } from "./fake-openai-types.ts";

const FAKE_MODEL = "fake-model";
const DEFAULT_CHUNK = 12;
/** Tool-call arguments go out in pieces this long, so clients must join deltas as with OpenAI. */
const ARGUMENT_CHUNK = 8;

const defaultResponder: Responder = () => ({ kind: "text", text: "OK" });

const ERROR_TYPES: Record<number, { type: string; code: string }> = {
  400: { type: "invalid_request_error", code: "invalid_request" },
  401: { type: "authentication_error", code: "invalid_api_key" },
  403: { type: "permission_error", code: "forbidden" },
  404: { type: "invalid_request_error", code: "not_found" },
  422: { type: "invalid_request_error", code: "unprocessable_entity" },
  429: { type: "requests", code: "rate_limit_exceeded" },
};

interface ChatBody {
  model?: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  messages?: { content?: unknown; tool_calls?: { function?: { arguments?: unknown } }[] }[];
  tools?: unknown[];
}

interface Output {
  content: string | null;
  toolCalls: { id: string; name: string; arguments: string }[];
}

export class FakeOpenAiServer {
  /** Every request received, in order (including `/models` and unknown routes). */
  readonly requests: FakeRequest[] = [];
  readonly #queue: FakeReply[] = [];
  readonly #sockets = new Set<Socket>();
  #responder: Responder;
  #injectedLatencyMs = 0;
  #ids = 0;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:PORT/v1`, ready for the SDK's `baseURL`. */
    readonly baseUrl: string,
    responder: Responder,
  ) {
    this.#responder = responder;
  }

  /** Listen on 127.0.0.1 on a free port. */
  /** Listen on 127.0.0.1 (`port` 0, the default, picks a free one). */
  static async start(options: { responder?: Responder; port?: number } = {}): Promise<FakeOpenAiServer> {
    let instance: FakeOpenAiServer | undefined;
    const server = createServer((req, res) => {
      instance?.handle(req, res).catch((err: unknown) => {
        // A throwing responder is a test bug: answer 500 so it shows up instead of a hang.
        if (!res.headersSent) sendError(res, { kind: "error", status: 500, message: String(err) });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    instance = new FakeOpenAiServer(server, `http://127.0.0.1:${port}/v1`, options.responder ?? defaultResponder);
    const sockets = instance.#sockets;
    server.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    return instance;
  }

  /** Replace the responder consulted when the one-shot queue is empty. */
  setResponder(responder: Responder): void {
    this.#responder = responder;
  }

  /** One-shot replies, consumed first-in first-out before the responder is asked. */
  enqueue(...replies: FakeReply[]): void {
    this.#queue.push(...replies);
  }

  /** Sum of every `delayMs`/`chunkDelayMs` slept: time a bench must not blame on the client. */
  get injectedLatencyMs(): number {
    return this.#injectedLatencyMs;
  }

  /** Forget recorded requests and injected latency (the queue and responder stay). */
  resetStats(): void {
    this.requests.length = 0;
    this.#injectedLatencyMs = 0;
  }

  /** Stop listening and destroy every socket, including ones held by `hang` replies. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A client that goes away mid-reply must not crash the test process.
    res.on("error", () => {});
    const raw = await readBody(req);
    const url = new URL(req.url ?? "/", "http://fake");
    const path = url.pathname.replace(/^\/v1(?=\/)/, "");
    let body: unknown;
    try {
      body = raw === "" ? undefined : JSON.parse(raw);
    } catch {
      this.requests.push({ method: req.method ?? "GET", path, headers: req.headers, body: raw });
      sendError(res, { kind: "error", status: 400, message: "Request body is not valid JSON." });
      return;
    }
    const request: FakeRequest = { method: req.method ?? "GET", path, headers: req.headers, body };
    this.requests.push(request);

    if (req.method === "GET" && path === "/models") {
      sendJson(res, 200, {
        object: "list",
        data: [{ id: FAKE_MODEL, object: "model", created: 0, owned_by: "inkloom-fake" }],
      });
      return;
    }
    if (req.method === "POST" && path === "/chat/completions") {
      const reply = this.#queue.shift() ?? (await this.#responder(request));
      await this.reply(res, (body ?? {}) as ChatBody, reply);
      return;
    }
    sendError(res, { kind: "error", status: 404, message: `Unknown route ${req.method} ${url.pathname}` });
  }

  private async reply(res: ServerResponse, body: ChatBody, reply: FakeReply): Promise<void> {
    if (reply.delayMs !== undefined && reply.delayMs > 0) await this.sleep(reply.delayMs);
    if (res.destroyed) return;
    switch (reply.kind) {
      case "hang":
        return;
      case "error":
        sendError(res, reply);
        return;
      case "cut":
        await this.cut(res, body, reply.text, reply.chunkSize ?? DEFAULT_CHUNK);
        return;
      default: {
        const output = this.output(reply);
        if (body.stream === true) {
          const chunkSize = reply.kind === "text" ? (reply.chunkSize ?? DEFAULT_CHUNK) : DEFAULT_CHUNK;
          const chunkDelayMs = reply.kind === "text" ? (reply.chunkDelayMs ?? 0) : 0;
          await this.streamOutput(res, body, output, chunkSize, chunkDelayMs);
        } else {
          sendJson(res, 200, this.completion(body, output));
        }
      }
    }
  }

  private output(reply: Extract<FakeReply, { kind: "text" | "json" | "tool_calls" }>): Output {
    switch (reply.kind) {
      case "text":
        return { content: reply.text, toolCalls: [] };
      case "json":
        return { content: JSON.stringify(reply.value), toolCalls: [] };
      case "tool_calls":
        return {
          content: reply.content ?? null,
          toolCalls: reply.calls.map((c) => ({
            id: `call_${++this.#ids}`,
            name: c.name,
            arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
          })),
        };
    }
  }

  private completion(body: ChatBody, output: Output) {
    return {
      id: `chatcmpl-fake-${++this.#ids}`,
      object: "chat.completion",
      created: nowSeconds(),
      model: body.model ?? FAKE_MODEL,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: output.content,
            refusal: null,
            ...(output.toolCalls.length > 0 && {
              tool_calls: output.toolCalls.map((c) => ({
                id: c.id,
                type: "function",
                function: { name: c.name, arguments: c.arguments },
              })),
            }),
          },
          logprobs: null,
          finish_reason: output.toolCalls.length > 0 ? "tool_calls" : "stop",
        },
      ],
      usage: usage(body, output),
    };
  }

  private async streamOutput(
    res: ServerResponse,
    body: ChatBody,
    output: Output,
    chunkSize: number,
    chunkDelayMs: number,
  ): Promise<void> {
    const chunk = this.chunker(body);
    startSse(res);
    writeSse(res, chunk({ role: "assistant", content: "" }));
    for (const [i, piece] of split(output.content ?? "", chunkSize).entries()) {
      // Between chunks, not before the first: a fast first token then a stall is a case worth testing.
      if (i > 0 && chunkDelayMs > 0) await this.sleep(chunkDelayMs);
      if (res.destroyed) return;
      writeSse(res, chunk({ content: piece }));
    }
    output.toolCalls.forEach((call, index) => {
      writeSse(
        res,
        chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }),
      );
      for (const piece of split(call.arguments, ARGUMENT_CHUNK)) {
        writeSse(res, chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
      }
    });
    writeSse(res, chunk({}, output.toolCalls.length > 0 ? "tool_calls" : "stop"));
    if (body.stream_options?.include_usage === true) {
      writeSse(res, { ...chunk({}), choices: [], usage: usage(body, output) });
    }
    res.end("data: [DONE]\n\n");
  }

  /** Some text, then a dropped connection: no finish chunk, no [DONE]. */
  private async cut(res: ServerResponse, body: ChatBody, text: string, chunkSize: number): Promise<void> {
    if (body.stream === true) {
      const chunk = this.chunker(body);
      startSse(res);
      writeSse(res, chunk({ role: "assistant", content: "" }));
      for (const piece of split(text, chunkSize)) writeSse(res, chunk({ content: piece }));
    } else {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(JSON.stringify(this.completion(body, { content: text, toolCalls: [] })).slice(0, 40));
    }
    // Let the written bytes reach the client before the connection drops.
    await new Promise((resolve) => setTimeout(resolve, 20));
    res.socket?.destroy();
  }

  private chunker(body: ChatBody) {
    const id = `chatcmpl-fake-${++this.#ids}`;
    const created = nowSeconds();
    const model = body.model ?? FAKE_MODEL;
    return (delta: Record<string, unknown>, finishReason: string | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    });
  }

  private async sleep(ms: number): Promise<void> {
    this.#injectedLatencyMs += ms;
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

function usage(body: ChatBody, output: Output) {
  let promptChars = 0;
  for (const m of body.messages ?? []) {
    if (typeof m.content === "string") promptChars += m.content.length;
    for (const call of m.tool_calls ?? []) {
      if (typeof call.function?.arguments === "string") promptChars += call.function.arguments.length;
    }
  }
  if (body.tools !== undefined && body.tools.length > 0) promptChars += JSON.stringify(body.tools).length;
  let completionChars = output.content?.length ?? 0;
  for (const call of output.toolCalls) completionChars += call.name.length + call.arguments.length;
  const prompt_tokens = Math.ceil(promptChars / 4);
  const completion_tokens = Math.ceil(completionChars / 4);
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
}

function split(text: string, size: number): string[] {
  const step = Math.max(1, size);
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += step) pieces.push(text.slice(i, i + step));
  return pieces;
}

function startSse(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  res.flushHeaders();
}

function writeSse(res: ServerResponse, data: unknown): void {
  if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
}

function sendJson(res: ServerResponse, status: number, data: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(data));
}

function sendError(res: ServerResponse, reply: Extract<FakeReply, { kind: "error" }>): void {
  const known = ERROR_TYPES[reply.status] ?? { type: "server_error", code: "server_error" };
  sendJson(
    res,
    reply.status,
    { error: { message: reply.message ?? `Fake error ${reply.status}`, type: known.type, code: known.code } },
    reply.headers,
  );
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const server = await FakeOpenAiServer.start();
  console.log(`Fake OpenAI server listening at ${server.baseUrl} (Ctrl-C to stop)`);
  process.once("SIGINT", () => {
    void server.close().then(() => process.exit(0));
  });
}

/** `responder` with a fixed model latency: a delay before every reply and a pause between streamed chunks. */
export function withLatency(responder: Responder, latency: { delayMs: number; chunkDelayMs: number }): Responder {
  return async (req) => {
    const reply = await responder(req);
    return reply.kind === "text"
      ? { ...reply, delayMs: latency.delayMs, chunkDelayMs: latency.chunkDelayMs }
      : { ...reply, delayMs: latency.delayMs };
  };
}
