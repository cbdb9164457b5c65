/**
 * A fake OpenAI-compatible endpoint over real HTTP and SSE, so the real `openai` SDK
 * (and everything above it) runs unchanged in tests and benches. Replies are scripted:
 * one-shot replies from `enqueue` first, then the responder. The images endpoints
 * (`/images/generations`, `/images/edits`) have their own queue (`enqueueImage`) and
 * responder (`setImageResponder`); by default they draw a small PNG from the prompt.
 *
 * The Files API (`/files`) keeps what is uploaded (`uploadedFiles()`), and the fine-tuning
 * jobs API (`/fine_tuning/jobs`) runs a scripted job: each `GET /fine_tuning/jobs/{id}`
 * moves it one step, validating_files -> queued -> running (one `metrics` event per
 * training step, `fineTuningSteps` of them) -> succeeded, or failed after `failFineTuning`.
 * `enqueueFineTuningError` answers the next matching Files/fine-tuning request with an error.
 *
 * `/chat/completions` can imitate a real endpoint's quirks (`profile`: "openai" validates
 * strict schemas and tool_choice, "ollama" drops forced tool calls, "vllm" sends one tool call
 * a turn; see `FakeProfile`) and inject faults (`faults`: 429s, 500s, streams cut mid-text)
 * drawn from a generator seeded with `seed`, so a run is reproducible.
 *
 * Run it alone for manual play: `tsx tests/fakes/fake-openai-server.ts`.
 */

import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { pathToFileURL } from "node:url";
import { crc32, deflateSync } from "node:zlib";
import { seededRandom } from "../../src/training/random.ts";
import type {
  FakeFaultCounts,
  FakeFaults,
  FakeImageReply,
  FakeProfile,
  FakeProfileOptions,
  FakeReply,
  FakeRequest,
  FakeUploadedFile,
  ImageResponder,
  Responder,
} from "./fake-openai-types.ts";
import { strictSchemaErrors } from "./openai-strict-schema.ts";

const FAKE_MODEL = "fake-model";
const DEFAULT_CHUNK = 12;
/** Tool-call arguments go out in pieces this long, so clients must join deltas as with OpenAI. */
const ARGUMENT_CHUNK = 8;

const defaultResponder: Responder = () => ({ kind: "text", text: "OK" });

/** A picture drawn from the prompt, as a URL when the client asked for one. */
const defaultImageResponder: ImageResponder = (req) => ({
  kind: (req.body as ImageBody | undefined)?.response_format === "url" ? "url" : "image",
});

/** Where `url` replies point, outside `/v1` so `imageRequests()` only counts API calls. */
const IMAGE_FILES_PATH = "/fake-images/";

const SAFETY_MESSAGE =
  "Your request was rejected by the safety system. If you believe this is an error, " +
  "contact us at help.openai.com and include the request ID req_fake.";

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
  tools?: { type?: string; function?: { name?: string; parameters?: unknown; strict?: boolean } }[];
  tool_choice?: unknown;
  response_format?: { type?: string; json_schema?: { name?: string; schema?: unknown; strict?: boolean } };
}

const RATE_LIMIT_MESSAGE =
  `Rate limit reached for ${FAKE_MODEL} in organization org-inkloom-fake on requests per min (RPM): ` +
  "Limit 60, Used 60, Requested 1. Please try again in 50ms. " +
  "Visit https://platform.openai.com/account/rate-limits to learn more.";
const SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!";

/** `/images/generations` JSON, or `/images/edits` text fields (all strings) plus the uploads. */
interface ImageBody {
  model?: string;
  prompt?: string;
  n?: number | string;
  size?: string;
  response_format?: string;
  output_format?: string;
  images?: FakeUploadedFile[];
}

interface ErrorSpec {
  status: number;
  message?: string;
  /** `error.code`; derived from the status when omitted, null when null. */
  code?: string | null;
  type?: string;
  /** The request parameter at fault (`error.param`); null when omitted. */
  param?: string;
  headers?: Record<string, string>;
}

/** A file received by `POST /files`, bytes as received. */
export interface FakeStoredFile {
  id: string;
  filename: string;
  purpose: string;
  contentType: string;
  bytes: Buffer;
  createdAt: number;
}

export type FakeFineTuningStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** A fine-tuning job in OpenAI's `fine_tuning.job` shape, as the fake sends it. */
export interface FakeFineTuningJob {
  id: string;
  object: "fine_tuning.job";
  model: string;
  status: FakeFineTuningStatus;
  training_file: string;
  validation_file: string | null;
  fine_tuned_model: string | null;
  created_at: number;
  finished_at: number | null;
  estimated_finish: number | null;
  trained_tokens: number | null;
  error: { code: string; message: string; param: string | null } | null;
  hyperparameters: Hyperparameters;
  method: { type: string } & Record<string, unknown>;
  result_files: string[];
  seed: number;
  organization_id: string;
  user_provided_suffix: string | null;
  integrations: null;
  metadata: Record<string, string> | null;
}

/** One `fine_tuning.job.event`. Metrics events carry `{ step, total_steps, train_loss }` (and `valid_loss`). */
export interface FakeFineTuningEvent {
  id: string;
  object: "fine_tuning.job.event";
  created_at: number;
  level: "info" | "warn" | "error";
  message: string;
  type: "message" | "metrics";
  data: Record<string, unknown> | null;
}

/** Which Files / fine-tuning call a scripted error answers. */
export type FakeFineTuningRoute = "upload" | "file" | "create" | "retrieve" | "events" | "cancel";

/** A one-shot error for a Files / fine-tuning call (any of them when `route` is omitted). */
export type FakeFineTuningError = { route?: FakeFineTuningRoute } & (
  | (ErrorSpec & { hang?: false })
  /** Accept the request and never answer (timeouts). */
  | { hang: true }
);

/** How the next job ends in failure (`failFineTuning`). */
export interface FakeFineTuningFailure {
  /** While validating its files, or after its training steps (the default). */
  during?: "validating_files" | "running";
  code?: string;
  param?: string | null;
}

interface Hyperparameters {
  n_epochs: number | "auto";
  batch_size: number | "auto";
  learning_rate_multiplier: number | "auto";
}

interface JobState {
  job: FakeFineTuningJob;
  /** Oldest first. */
  events: FakeFineTuningEvent[];
  step: number;
  totalSteps: number;
  trainingBytes: number;
  failure: { during: "validating_files" | "running"; code: string; message: string; param: string | null } | undefined;
}

interface CreateJobBody {
  model?: unknown;
  training_file?: unknown;
  validation_file?: unknown;
  suffix?: unknown;
  seed?: unknown;
  hyperparameters?: Partial<Hyperparameters>;
  method?: { type?: string } & Record<string, { hyperparameters?: Partial<Hyperparameters> } | string | undefined>;
  metadata?: Record<string, string> | null;
}

const TERMINAL: readonly FakeFineTuningStatus[] = ["succeeded", "failed", "cancelled"];
const FILE_PURPOSES = ["fine-tune", "batch", "assistants", "vision", "user_data", "evals"];

interface Output {
  content: string | null;
  toolCalls: { id: string; name: string; arguments: string }[];
}

export class FakeOpenAiServer {
  /** Every request received, in order (including `/models` and unknown routes). */
  readonly requests: FakeRequest[] = [];
  readonly #queue: FakeReply[] = [];
  readonly #imageQueue: FakeImageReply[] = [];
  /** PNGs served by `url` replies, by file name. */
  readonly #files = new Map<string, Buffer>();
  readonly #sockets = new Set<Socket>();
  #responder: Responder;
  #imageResponder: ImageResponder = defaultImageResponder;
  /** False makes `/images/edits` answer 404, like servers that only generate. */
  imagesEditSupported = true;
  #injectedLatencyMs = 0;
  #ids = 0;
  readonly #uploads: FakeStoredFile[] = [];
  readonly #jobs = new Map<string, JobState>();
  readonly #fineTuningErrors: FakeFineTuningError[] = [];
  #nextFailure: JobState["failure"];
  /** Training steps of each job created from now on (each adds one `metrics` event). */
  fineTuningSteps = 3;
  /**
   * What moves a job one step: a `GET /fine_tuning/jobs/{id}` (the default), or a first page
   * (no `after`) of `GET /fine_tuning/jobs/{id}/events`.
   */
  fineTuningAdvanceOn: "retrieve" | "events" = "retrieve";
  #profile: FakeProfile = "openai";
  #dropForcedToolRate = 1;
  #faults: FakeFaults = {};
  #faultRandom: () => number = seededRandom(1);
  #profileRandom: () => number = seededRandom(profileSeed(1));
  #droppedForcedCalls = 0;
  /** Faults injected so far (`faults`), by kind. */
  readonly faultCounts: FakeFaultCounts = { cut: 0, rateLimit: 0, serverError: 0 };

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:PORT/v1`, ready for the SDK's `baseURL`. */
    readonly baseUrl: string,
    responder: Responder,
  ) {
    this.#responder = responder;
  }

  /** Listen on 127.0.0.1 (`port` 0, the default, picks a free one). */
  static async start(
    options: {
      responder?: Responder;
      imageResponder?: ImageResponder;
      port?: number;
      fineTuningSteps?: number;
      /** Which endpoint to imitate on `/chat/completions` (default "openai": as strict as the real one). */
      profile?: FakeProfile;
      /** Seeds the generators of faults and profile quirks (default 1). */
      seed?: number;
      /** Faults injected on `/chat/completions` (default none). */
      faults?: FakeFaults;
    } & FakeProfileOptions = {},
  ): Promise<FakeOpenAiServer> {
    let instance: FakeOpenAiServer | undefined;
    const server = createServer((req, res) => {
      instance?.handle(req, res).catch((err: unknown) => {
        // A throwing responder is a test bug: answer 500 so it shows up instead of a hang.
        if (!res.headersSent) sendError(res, { status: 500, message: String(err) });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    instance = new FakeOpenAiServer(server, `http://127.0.0.1:${port}/v1`, options.responder ?? defaultResponder);
    if (options.imageResponder !== undefined) instance.#imageResponder = options.imageResponder;
    if (options.fineTuningSteps !== undefined) instance.fineTuningSteps = options.fineTuningSteps;
    instance.setProfile(
      options.profile ?? "openai",
      options.dropForcedToolRate === undefined ? {} : { dropForcedToolRate: options.dropForcedToolRate },
    );
    instance.setFaults(options.faults ?? {}, options.seed ?? 1);
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

  /**
   * Imitate another endpoint from the next request on (see `FakeProfile`).
   * `dropForcedToolRate` ("ollama") defaults to 1 each time.
   */
  setProfile(profile: FakeProfile, options: FakeProfileOptions = {}): void {
    this.#profile = profile;
    this.#dropForcedToolRate = options.dropForcedToolRate ?? 1;
  }

  /** The endpoint imitated on `/chat/completions`. */
  get profile(): FakeProfile {
    return this.#profile;
  }

  /**
   * Inject these faults from the next request on (`{}` for none). With `seed` the
   * generators restart from it (of faults and of profile quirks), so what follows replays.
   */
  setFaults(faults: FakeFaults, seed?: number): void {
    this.#faults = { ...faults };
    if (seed !== undefined) {
      this.#faultRandom = seededRandom(seed);
      this.#profileRandom = seededRandom(profileSeed(seed));
    }
  }

  /** Forced or required tool calls the "ollama" profile answered with plain text instead. */
  get droppedForcedCalls(): number {
    return this.#droppedForcedCalls;
  }

  /** The recorded `POST /chat/completions` requests, in order (faulted and rejected ones included). */
  chatRequests(): FakeRequest[] {
    return this.requests.filter((r) => r.method === "POST" && r.path === "/chat/completions");
  }

  /** One-shot replies, consumed first-in first-out before the responder is asked. */
  enqueue(...replies: FakeReply[]): void {
    this.#queue.push(...replies);
  }

  /** Replace the responder for the images endpoints, consulted when `enqueueImage`'s queue is empty. */
  setImageResponder(responder: ImageResponder): void {
    this.#imageResponder = responder;
  }

  /** One-shot replies for `/images/generations` and `/images/edits`, first-in first-out. */
  enqueueImage(...replies: FakeImageReply[]): void {
    this.#imageQueue.push(...replies);
  }

  /** The recorded requests to `/images/*` (generations and edits, not the downloads of `url` replies). */
  imageRequests(): FakeRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/images/"));
  }

  /** Files received by `POST /files`, in order (copies: the bytes exactly as uploaded). */
  uploadedFiles(): FakeStoredFile[] {
    return this.#uploads.map((f) => ({ ...f, bytes: Buffer.from(f.bytes) }));
  }

  /** Every fine-tuning job created, in order, as a `GET` would return it now (without moving it). */
  fineTuningJobs(): FakeFineTuningJob[] {
    return [...this.#jobs.values()].map((s) => structuredClone(s.job));
  }

  /** A job's events, oldest first (the API lists them newest first). */
  fineTuningEvents(jobId: string): FakeFineTuningEvent[] {
    return structuredClone(this.#jobs.get(jobId)?.events ?? []);
  }

  /**
   * The next job created ends `failed` with `error: { code, message, param }`: after its
   * training steps by default, or while validating its files (`during: "validating_files"`).
   */
  failFineTuning(message: string, options: FakeFineTuningFailure = {}): void {
    const during = options.during ?? "running";
    const validating = during === "validating_files";
    this.#nextFailure = {
      during,
      message,
      code: options.code ?? (validating ? "invalid_training_file" : "training_failed"),
      param: options.param !== undefined ? options.param : validating ? "training_file" : null,
    };
  }

  /**
   * One-shot errors for the Files and fine-tuning routes: each answers, in order, the next
   * request of its `route` (of any when omitted) instead of the real answer; the job does not move.
   */
  enqueueFineTuningError(...errors: FakeFineTuningError[]): void {
    this.#fineTuningErrors.push(...errors);
  }

  /** Sum of every `delayMs`/`chunkDelayMs` slept: time a bench must not blame on the client. */
  get injectedLatencyMs(): number {
    return this.#injectedLatencyMs;
  }

  /**
   * Forget recorded requests, injected latency, fault counts and dropped forced calls
   * (the queue, responder, profile, faults and generators stay).
   */
  resetStats(): void {
    this.requests.length = 0;
    this.#injectedLatencyMs = 0;
    this.faultCounts.cut = 0;
    this.faultCounts.rateLimit = 0;
    this.faultCounts.serverError = 0;
    this.#droppedForcedCalls = 0;
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
    const method = req.method ?? "GET";
    const contentType = req.headers["content-type"] ?? "";
    let body: unknown;
    if (/^multipart\/form-data\b/i.test(contentType)) {
      body = parseMultipart(raw, contentType);
      if (body === undefined) {
        this.requests.push({ method, path, headers: req.headers, body: raw });
        sendError(res, { status: 400, message: "Request body is not valid multipart/form-data." });
        return;
      }
    } else {
      const text = raw.toString("utf8");
      try {
        body = text === "" ? undefined : JSON.parse(text);
      } catch {
        this.requests.push({ method, path, headers: req.headers, body: text });
        sendError(res, { status: 400, message: "Request body is not valid JSON." });
        return;
      }
    }
    const request: FakeRequest = { method, path, headers: req.headers, body };
    this.requests.push(request);

    if (req.method === "GET" && path === "/models") {
      sendJson(res, 200, {
        object: "list",
        data: [{ id: FAKE_MODEL, object: "model", created: 0, owned_by: "inkloom-fake" }],
      });
      return;
    }
    if (req.method === "POST" && path === "/chat/completions") {
      await this.chat(request, res);
      return;
    }
    if (method === "POST" && (path === "/images/generations" || path === "/images/edits")) {
      if (path === "/images/edits" && !this.imagesEditSupported) {
        sendError(res, { status: 404, message: `Unknown route ${method} ${url.pathname}` });
        return;
      }
      const reply = this.#imageQueue.shift() ?? (await this.#imageResponder(request));
      await this.replyImage(res, (body ?? {}) as ImageBody, reply);
      return;
    }
    if (this.handleFineTuning(method, path, url.searchParams, body, res)) return;
    if (method === "GET" && path.startsWith(IMAGE_FILES_PATH)) {
      const png = this.#files.get(path.slice(IMAGE_FILES_PATH.length));
      if (png !== undefined) {
        res.writeHead(200, { "content-type": "image/png", "content-length": png.length });
        res.end(png);
        return;
      }
    }
    sendError(res, { status: 404, message: `Unknown route ${method} ${url.pathname}` });
  }

  /** The Files and fine-tuning routes; false when the request is for none of them. */
  private handleFineTuning(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
    res: ServerResponse,
  ): boolean {
    const route = fineTuningRoute(method, path);
    if (route === undefined) return false;
    const index = this.#fineTuningErrors.findIndex((e) => e.route === undefined || e.route === route.name);
    if (index !== -1) {
      const [error] = this.#fineTuningErrors.splice(index, 1);
      if (error !== undefined && error.hang !== true) sendError(res, error);
      return true;
    }
    switch (route.name) {
      case "upload":
        this.uploadFile(body, res);
        return true;
      case "file": {
        const file = this.#uploads.find((f) => f.id === route.id);
        if (file === undefined)
          sendError(res, { status: 404, message: `No such File object: ${route.id}`, param: "id" });
        else if (route.content) {
          res.writeHead(200, { "content-type": "application/octet-stream", "content-length": file.bytes.length });
          res.end(file.bytes);
        } else sendJson(res, 200, fileObject(file));
        return true;
      }
      case "create":
        this.createJob((body ?? {}) as CreateJobBody, res);
        return true;
      default: {
        const state = this.#jobs.get(route.id);
        if (state === undefined) {
          sendError(res, { status: 404, message: `No fine-tuning job found with id ${route.id}.`, param: "id" });
          return true;
        }
        if (route.name === "retrieve") {
          if (this.fineTuningAdvanceOn === "retrieve") this.advanceJob(state);
          sendJson(res, 200, state.job);
        } else if (route.name === "events") {
          if (this.fineTuningAdvanceOn === "events" && !query.has("after")) this.advanceJob(state);
          sendJson(res, 200, listEvents(state.events, query));
        } else {
          if (TERMINAL.includes(state.job.status)) {
            sendError(res, { status: 400, message: `Job has already completed: ${state.job.id}` });
            return true;
          }
          state.job.status = "cancelled";
          state.job.finished_at = nowSeconds();
          state.job.estimated_finish = null;
          this.jobEvent(state, "Fine-tuning job cancelled");
          sendJson(res, 200, state.job);
        }
        return true;
      }
    }
  }

  private uploadFile(body: unknown, res: ServerResponse): void {
    const fields = (body ?? {}) as { purpose?: unknown; file?: unknown };
    if (typeof fields.purpose !== "string") {
      sendError(res, { status: 400, message: "Missing required parameter: 'purpose'.", param: "purpose" });
      return;
    }
    if (!FILE_PURPOSES.includes(fields.purpose)) {
      sendError(res, { status: 400, message: `'${fields.purpose}' is not a valid purpose.`, param: "purpose" });
      return;
    }
    const part = fields.file as FakeUploadedFile | undefined;
    if (part === undefined || typeof part !== "object" || !Buffer.isBuffer(part.bytes)) {
      sendError(res, { status: 400, message: "Missing required parameter: 'file'.", param: "file" });
      return;
    }
    const file: FakeStoredFile = {
      id: `file-${fakeId(`file ${++this.#ids}`, 22)}`,
      filename: part.filename,
      purpose: fields.purpose,
      contentType: part.contentType,
      bytes: part.bytes,
      createdAt: nowSeconds(),
    };
    this.#uploads.push(file);
    sendJson(res, 200, fileObject(file));
  }

  private createJob(body: CreateJobBody, res: ServerResponse): void {
    if (typeof body.model !== "string" || body.model === "") {
      sendError(res, { status: 400, message: "Missing required parameter: 'model'.", param: "model" });
      return;
    }
    const files: Partial<Record<"training_file" | "validation_file", FakeStoredFile>> = {};
    for (const param of ["training_file", "validation_file"] as const) {
      const id = body[param];
      if (param === "validation_file" && (id === undefined || id === null)) continue;
      if (typeof id !== "string") {
        sendError(res, { status: 400, message: `Missing required parameter: '${param}'.`, param });
        return;
      }
      const file = this.#uploads.find((f) => f.id === id);
      if (file === undefined) {
        sendError(res, { status: 400, message: `invalid ${param}: ${id}`, code: "invalid_file", param });
        return;
      }
      if (file.purpose !== "fine-tune") {
        sendError(res, {
          status: 400,
          message: `File ${id} has purpose '${file.purpose}'; fine-tuning needs purpose 'fine-tune'.`,
          code: "invalid_file_purpose",
          param,
        });
        return;
      }
      files[param] = file;
    }
    const training = files.training_file;
    if (training === undefined) return;
    if (
      body.suffix !== undefined &&
      body.suffix !== null &&
      (typeof body.suffix !== "string" || body.suffix.length > 64)
    ) {
      sendError(res, { status: 400, message: "suffix must be a string of at most 64 characters.", param: "suffix" });
      return;
    }
    const suffix = typeof body.suffix === "string" && body.suffix !== "" ? body.suffix : null;
    const type = body.method?.type ?? "supervised";
    const section = body.method?.[type];
    const given = (typeof section === "object" ? section.hyperparameters : undefined) ?? body.hyperparameters ?? {};
    const hyperparameters: Hyperparameters = {
      n_epochs: given.n_epochs ?? "auto",
      batch_size: given.batch_size ?? "auto",
      learning_rate_multiplier: given.learning_rate_multiplier ?? "auto",
    };
    const id = `ftjob-${fakeId(`ftjob ${++this.#ids}`, 24)}`;
    const state: JobState = {
      job: {
        id,
        object: "fine_tuning.job",
        model: body.model,
        status: "validating_files",
        training_file: training.id,
        validation_file: files.validation_file?.id ?? null,
        fine_tuned_model: null,
        created_at: nowSeconds(),
        finished_at: null,
        estimated_finish: null,
        trained_tokens: null,
        error: null,
        hyperparameters,
        method: { type, [type]: { hyperparameters } },
        result_files: [],
        seed:
          typeof body.seed === "number" ? body.seed : createHash("sha256").update(id).digest().readUInt32BE(0) >>> 1,
        organization_id: "org-inkloom-fake",
        user_provided_suffix: suffix,
        integrations: null,
        metadata: body.metadata ?? null,
      },
      events: [],
      step: 0,
      totalSteps: Math.max(1, Math.trunc(this.fineTuningSteps)),
      trainingBytes: training.bytes.length,
      failure: this.#nextFailure,
    };
    this.#nextFailure = undefined;
    this.#jobs.set(id, state);
    this.jobEvent(state, `Created fine-tuning job: ${id}`);
    const validation = state.job.validation_file;
    this.jobEvent(
      state,
      `Validating training file: ${training.id}${validation !== null ? ` and validation file: ${validation}` : ""}`,
    );
    sendJson(res, 200, state.job);
  }

  /** One step of the job's life; nothing once it has ended. */
  private advanceJob(state: JobState): void {
    const job = state.job;
    switch (job.status) {
      case "validating_files":
        if (state.failure?.during === "validating_files") {
          this.failJob(state);
          return;
        }
        job.status = "queued";
        this.jobEvent(state, "Files validated, moving job to queued state");
        return;
      case "queued": {
        job.status = "running";
        const h = job.hyperparameters;
        job.hyperparameters = {
          n_epochs: h.n_epochs === "auto" ? 3 : h.n_epochs,
          batch_size: h.batch_size === "auto" ? 1 : h.batch_size,
          learning_rate_multiplier: h.learning_rate_multiplier === "auto" ? 2 : h.learning_rate_multiplier,
        };
        job.method = { type: job.method.type, [job.method.type]: { hyperparameters: job.hyperparameters } };
        job.estimated_finish = nowSeconds() + 60 * state.totalSteps;
        this.jobEvent(state, "Fine-tuning job started");
        return;
      }
      case "running": {
        if (state.step < state.totalSteps) {
          state.step += 1;
          const trainLoss = round4(2.4 / (1 + 0.6 * state.step));
          const validLoss = job.validation_file !== null ? round4(trainLoss * 1.08) : undefined;
          this.jobEvent(
            state,
            `Step ${state.step}/${state.totalSteps}: training loss=${trainLoss.toFixed(4)}` +
              (validLoss !== undefined ? `, validation loss=${validLoss.toFixed(4)}` : ""),
            {
              type: "metrics",
              data: {
                step: state.step,
                total_steps: state.totalSteps,
                train_loss: trainLoss,
                ...(validLoss !== undefined && { valid_loss: validLoss }),
                train_mean_token_accuracy: round4(Math.min(0.99, 0.5 + (0.4 * state.step) / state.totalSteps)),
              },
            },
          );
          return;
        }
        if (state.failure !== undefined) {
          this.failJob(state);
          return;
        }
        const epochs = typeof job.hyperparameters.n_epochs === "number" ? job.hyperparameters.n_epochs : 3;
        job.status = "succeeded";
        job.fine_tuned_model = `ft:${job.model}:inkloom:${job.user_provided_suffix ?? ""}:${fakeId(job.id, 8)}`;
        job.trained_tokens = Math.ceil(state.trainingBytes / 4) * epochs;
        job.finished_at = nowSeconds();
        job.estimated_finish = null;
        job.result_files = [`file-${fakeId(`result ${job.id}`, 22)}`];
        this.jobEvent(state, `Checkpoint created at step ${state.totalSteps}`);
        this.jobEvent(state, `New fine-tuned model created: ${job.fine_tuned_model}`);
        this.jobEvent(state, "The job has successfully completed");
        return;
      }
      default:
        return;
    }
  }

  private failJob(state: JobState): void {
    const failure = state.failure;
    if (failure === undefined) return;
    state.job.status = "failed";
    state.job.error = { code: failure.code, message: failure.message, param: failure.param };
    state.job.finished_at = nowSeconds();
    state.job.estimated_finish = null;
    this.jobEvent(state, `The job failed due to an error: ${failure.message}`, { level: "error" });
  }

  private jobEvent(
    state: JobState,
    message: string,
    options: {
      level?: FakeFineTuningEvent["level"];
      type?: FakeFineTuningEvent["type"];
      data?: Record<string, unknown>;
    } = {},
  ): void {
    state.events.push({
      id: `ftevent-${fakeId(`event ${++this.#ids}`, 24)}`,
      object: "fine_tuning.job.event",
      created_at: nowSeconds(),
      level: options.level ?? "info",
      message,
      type: options.type ?? "message",
      data: options.data ?? null,
    });
  }

  private async replyImage(res: ServerResponse, body: ImageBody, reply: FakeImageReply): Promise<void> {
    if (reply.delayMs !== undefined && reply.delayMs > 0) await this.sleep(reply.delayMs);
    if (res.destroyed) return;
    switch (reply.kind) {
      case "hang":
        return;
      case "error":
        sendError(res, reply);
        return;
      case "refused":
        sendError(res, {
          status: 400,
          message: reply.message ?? SAFETY_MESSAGE,
          code: "moderation_blocked",
          type: "image_generation_user_error",
        });
        return;
      case "raw":
        sendJson(res, 200, reply.body);
        return;
      default: {
        const seed = reply.seed ?? body.prompt ?? "";
        const count = Math.min(10, Math.max(1, Math.trunc(Number(body.n ?? 1)) || 1));
        const pngs = Array.from({ length: count }, (_, i) => fakePng(i === 0 ? seed : `${seed}#${i}`));
        const data = pngs.map((png) => {
          if (reply.kind === "url") {
            const name = `img-${++this.#ids}.png`;
            this.#files.set(name, png);
            return { url: `${this.origin}${IMAGE_FILES_PATH}${name}` };
          }
          return {
            b64_json: png.toString("base64"),
            ...(reply.revisedPrompt !== undefined && { revised_prompt: reply.revisedPrompt }),
          };
        });
        const gptImage = body.model?.startsWith("gpt-image") === true;
        sendJson(res, 200, {
          created: nowSeconds(),
          data,
          ...(gptImage && {
            output_format: "png",
            usage: imageUsage(body.prompt ?? "", body.images?.length ?? 0, count),
          }),
        });
      }
    }
  }

  /** `http://127.0.0.1:PORT`, where `url` replies point. */
  private get origin(): string {
    return new URL(this.baseUrl).origin;
  }

  /** `POST /chat/completions`: faults first, then the profile's checks, then the scripted reply. */
  private async chat(request: FakeRequest, res: ServerResponse): Promise<void> {
    const body = (isObject(request.body) ? request.body : {}) as ChatBody;
    const fault = this.drawFault();
    if (fault === "rateLimit") {
      this.faultCounts.rateLimit += 1;
      sendError(res, {
        status: 429,
        message: RATE_LIMIT_MESSAGE,
        type: "requests",
        code: "rate_limit_exceeded",
        headers: { "retry-after-ms": "50", "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0" },
      });
      return;
    }
    if (fault === "serverError") {
      this.faultCounts.serverError += 1;
      sendError(res, { status: 500, message: SERVER_ERROR_MESSAGE, type: "server_error", code: null });
      return;
    }
    if (this.#profile === "openai") {
      const rejection = openAiRejection(body);
      if (rejection !== undefined) {
        sendError(res, rejection);
        return;
      }
    }
    // Ollama does not honour tool_choice "none": its responder decides as if it were "auto".
    const seen =
      this.#profile === "ollama" && body.tool_choice === "none"
        ? { ...request, body: { ...body, tool_choice: "auto" } }
        : request;
    const reply = this.#queue.shift() ?? (await this.#responder(seen));
    await this.reply(res, body, reply, fault === "cut");
  }

  /** One draw per request when faults are set: which fault, if any, this request gets. */
  private drawFault(): "rateLimit" | "serverError" | "cut" | undefined {
    const rateLimit = probability(this.#faults.rateLimit);
    const serverError = probability(this.#faults.serverError);
    const cut = probability(this.#faults.cut);
    if (rateLimit + serverError + cut === 0) return undefined;
    const u = this.#faultRandom();
    if (u < rateLimit) return "rateLimit";
    if (u < rateLimit + serverError) return "serverError";
    if (u < rateLimit + serverError + cut) return "cut";
    return undefined;
  }

  private async reply(res: ServerResponse, body: ChatBody, reply: FakeReply, cutFault = false): Promise<void> {
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
        const output = this.applyProfile(body, this.output(body, reply));
        const content = output.content ?? "";
        if (cutFault && body.stream === true && output.toolCalls.length === 0 && content.length >= 2) {
          // A prefix of at least one character that is never the whole text.
          const at = 1 + Math.floor(this.#faultRandom() * (content.length - 1));
          this.faultCounts.cut += 1;
          const chunkSize = reply.kind === "text" ? (reply.chunkSize ?? DEFAULT_CHUNK) : DEFAULT_CHUNK;
          await this.cut(res, body, content.slice(0, at), chunkSize);
          return;
        }
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

  private output(
    body: ChatBody,
    reply: Extract<FakeReply, { kind: "text" | "json" | "tool_calls" | "structured" }>,
  ): Output {
    switch (reply.kind) {
      case "text":
        return { content: reply.text, toolCalls: [] };
      case "json":
        return { content: JSON.stringify(reply.value), toolCalls: [] };
      case "structured": {
        if (forcedToolName(body, reply.name) === reply.name) {
          return {
            content: null,
            toolCalls: [{ id: `call_${++this.#ids}`, name: reply.name, arguments: JSON.stringify(reply.value) }],
          };
        }
        if (body.response_format?.type === "json_schema")
          return { content: JSON.stringify(reply.value), toolCalls: [] };
        // The json_text strategy: JSON asked for in the prompt. Small local models add a fence and a preamble.
        const content =
          this.#profile === "ollama"
            ? `Here is the ${reply.name} you asked for.\n\n\`\`\`json\n${JSON.stringify(reply.value, null, 2)}\n\`\`\``
            : JSON.stringify(reply.value);
        return { content, toolCalls: [] };
      }
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

  /** The profile's quirks on a rendered answer: ollama's dropped forced calls, vllm's one call a turn. */
  private applyProfile(body: ChatBody, output: Output): Output {
    if (output.toolCalls.length === 0) return output;
    if (this.#profile === "ollama" && forcesTool(body)) {
      const rate = this.#dropForcedToolRate;
      const drop = rate >= 1 || (rate > 0 && this.#profileRandom() < rate);
      if (drop) {
        this.#droppedForcedCalls += 1;
        const name = output.toolCalls[0]?.name ?? "the tool";
        return {
          content:
            `Sure! Here is what happens next: I would fill in ${name.replace(/_/g, " ")} with the details you gave, ` +
            "and the story carries on from there. Let me know if you want me to continue!",
          toolCalls: [],
        };
      }
    }
    if (this.#profile === "vllm" && output.toolCalls.length > 1) {
      return { ...output, toolCalls: output.toolCalls.slice(0, 1) };
    }
    return output;
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A probability from an option: 0 when absent or not a number, clamped to 0..1. */
function probability(value: number | undefined): number {
  return typeof value === "number" && Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}

/** The profile generator's seed: its own stream, so faults do not shift with profile draws. */
function profileSeed(seed: number): number {
  return (seed ^ 0x9e3779b9) >>> 0;
}

/** The function a named `tool_choice` forces, if any. */
function namedToolChoice(body: ChatBody): string | undefined {
  const choice = body.tool_choice;
  if (!isObject(choice) || !isObject(choice.function)) return undefined;
  return typeof choice.function.name === "string" ? choice.function.name : undefined;
}

/** Whether the request demands a tool call (a named tool_choice or "required"). */
function forcesTool(body: ChatBody): boolean {
  return body.tool_choice === "required" || namedToolChoice(body) !== undefined;
}

/** The tool this request forces for a `structured` reply `name`: the named one, or `name` under "required". */
function forcedToolName(body: ChatBody, name: string): string | undefined {
  const named = namedToolChoice(body);
  if (named !== undefined) return named;
  if (body.tool_choice === "required" && (body.tools ?? []).some((t) => t.function?.name === name)) return name;
  return undefined;
}

/** What OpenAI rejects with 400 before any model runs: strict schemas that break the rules, a dangling tool_choice. */
function openAiRejection(body: ChatBody): ErrorSpec | undefined {
  const tools = Array.isArray(body.tools) ? body.tools : [];
  for (const [i, tool] of tools.entries()) {
    const fn = tool.function;
    if (fn?.strict !== true) continue;
    const [first] = strictSchemaErrors(fn.parameters);
    if (first !== undefined) {
      return {
        status: 400,
        message: `Invalid schema for function '${fn.name ?? ""}': ${first}`,
        type: "invalid_request_error",
        param: `tools[${i}].function.parameters`,
        code: "invalid_function_parameters",
      };
    }
  }
  const format = body.response_format;
  if (format?.type === "json_schema" && format.json_schema?.strict === true) {
    const [first] = strictSchemaErrors(format.json_schema.schema);
    if (first !== undefined) {
      return {
        status: 400,
        message: `Invalid schema for response_format '${format.json_schema.name ?? ""}': ${first}`,
        type: "invalid_request_error",
        param: "response_format",
        code: null,
      };
    }
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    if (tools.length === 0) {
      return {
        status: 400,
        message: "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        type: "invalid_request_error",
        param: "tool_choice",
        code: null,
      };
    }
    const named = namedToolChoice(body);
    if (named !== undefined && !tools.some((t) => t.function?.name === named)) {
      return {
        status: 400,
        message: `Invalid value for 'tool_choice': function '${named}' is not one of the functions in 'tools'.`,
        type: "invalid_request_error",
        param: "tool_choice",
        code: null,
      };
    }
  }
  return undefined;
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

function sendError(res: ServerResponse, spec: ErrorSpec): void {
  const known = ERROR_TYPES[spec.status] ?? { type: "server_error", code: "server_error" };
  sendJson(
    res,
    spec.status,
    {
      error: {
        message: spec.message ?? `Fake error ${spec.status}`,
        type: spec.type ?? known.type,
        param: spec.param ?? null,
        code: spec.code === undefined ? known.code : spec.code,
      },
    },
    spec.headers,
  );
}

/** The raw bytes: multipart bodies carry binary files, so no decoding here. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const CRLF = Buffer.from("\r\n");

/**
 * A multipart/form-data body as `{ ...textFields, images }`: `image` and `image[]` file
 * parts go to `images` in order, bytes untouched; other file parts (a `mask`) are kept
 * under their field name. Undefined when the body does not follow the format.
 */
function parseMultipart(raw: Buffer, contentType: string): Record<string, unknown> | undefined {
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (boundary === undefined) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.concat([CRLF, delimiter]);
  const fields: Record<string, unknown> = {};
  const images: FakeUploadedFile[] = [];
  let pos = raw.indexOf(delimiter);
  if (pos < 0) return undefined;
  for (;;) {
    pos += delimiter.length;
    if (raw.subarray(pos, pos + 2).toString("latin1") === "--") break;
    // The rest of the delimiter line (optional whitespace), then the part's headers.
    const lineEnd = raw.indexOf(CRLF, pos);
    if (lineEnd < 0) return undefined;
    const headersEnd = raw.indexOf("\r\n\r\n", lineEnd);
    if (headersEnd < 0) return undefined;
    const headers = parsePartHeaders(raw.subarray(lineEnd + 2, headersEnd).toString("utf8"));
    const start = headersEnd + 4;
    const end = raw.indexOf(nextDelimiter, start);
    if (end < 0) return undefined;
    const content = raw.subarray(start, end);
    pos = end + CRLF.length;

    const disposition = headers["content-disposition"] ?? "";
    const name = /(?:^|;)\s*name="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined) continue;
    const filename = /(?:^|;)\s*filename="([^"]*)"/i.exec(disposition)?.[1];
    if (filename === undefined) {
      fields[name] = content.toString("utf8");
      continue;
    }
    const file: FakeUploadedFile = {
      field: name,
      filename,
      contentType: headers["content-type"] ?? "application/octet-stream",
      bytes: Buffer.from(content),
    };
    if (name === "image" || name === "image[]") images.push(file);
    else fields[name] = file;
  }
  return { ...fields, images };
}

function parsePartHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_SIDE = 16;
const PNG_CELL = 4;

/**
 * A valid 16x16 RGB PNG: a checkerboard of two colours taken from a hash of `seed`, so
 * equal seeds give identical bytes and different seeds (almost surely) different ones.
 */
export function fakePng(seed: string): Buffer {
  const hash = createHash("sha256").update(seed).digest();
  const colours = [hash.subarray(0, 3), hash.subarray(3, 6)] as const;
  const stride = 1 + PNG_SIDE * 3;
  const pixels = Buffer.alloc(stride * PNG_SIDE);
  for (let y = 0; y < PNG_SIDE; y++) {
    // Each scanline starts with its filter type, 0 (None), already zero from alloc.
    for (let x = 0; x < PNG_SIDE; x++) {
      const colour = colours[(Math.floor(x / PNG_CELL) + Math.floor(y / PNG_CELL)) % 2 === 0 ? 0 : 1];
      pixels.set(colour, y * stride + 1 + x * 3);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(PNG_SIDE, 0);
  header.writeUInt32BE(PNG_SIDE, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour RGB
  // Compression, filter and interlace methods: 0.
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(pixels)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length, 0);
  const typeAndData = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData), 0);
  return Buffer.concat([length, typeAndData, crc]);
}

/** Token usage as GPT image models report it (rough: 4 characters a token, flat image costs). */
function imageUsage(prompt: string, inputImages: number, outputImages: number) {
  const text_tokens = Math.ceil(prompt.length / 4);
  const image_tokens = inputImages * 323;
  const output_tokens = outputImages * 272;
  return {
    input_tokens: text_tokens + image_tokens,
    input_tokens_details: { text_tokens, image_tokens },
    output_tokens,
    total_tokens: text_tokens + image_tokens + output_tokens,
  };
}

type FineTuningRoute =
  | { name: "upload" | "create" }
  | { name: "file"; id: string; content: boolean }
  | { name: "retrieve" | "events" | "cancel"; id: string };

/** Which Files / fine-tuning call a request is, if any. */
function fineTuningRoute(method: string, path: string): FineTuningRoute | undefined {
  if (method === "POST" && path === "/files") return { name: "upload" };
  if (method === "POST" && path === "/fine_tuning/jobs") return { name: "create" };
  const file = /^\/files\/([^/]+)(\/content)?$/.exec(path);
  if (method === "GET" && file?.[1] !== undefined) {
    return { name: "file", id: decodeURIComponent(file[1]), content: file[2] !== undefined };
  }
  const job = /^\/fine_tuning\/jobs\/([^/]+)(?:\/(events|cancel))?$/.exec(path);
  const id = job?.[1] === undefined ? undefined : decodeURIComponent(job[1]);
  if (id === undefined) return undefined;
  if (method === "GET" && job?.[2] === undefined) return { name: "retrieve", id };
  if (method === "GET" && job?.[2] === "events") return { name: "events", id };
  if (method === "POST" && job?.[2] === "cancel") return { name: "cancel", id };
  return undefined;
}

function fileObject(file: FakeStoredFile) {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes.length,
    created_at: file.createdAt,
    filename: file.filename,
    purpose: file.purpose,
    status: "processed",
    status_details: null,
  };
}

/** A page of events, newest first like OpenAI: `after` is the last id of the previous page (older ones follow). */
function listEvents(events: readonly FakeFineTuningEvent[], query: URLSearchParams) {
  const requested = Math.trunc(Number(query.get("limit") ?? 20));
  const limit = Number.isFinite(requested) ? Math.min(100, Math.max(1, requested)) : 20;
  const newestFirst = [...events].reverse();
  const after = query.get("after");
  let start = 0;
  if (after !== null) {
    const index = newestFirst.findIndex((e) => e.id === after);
    start = index === -1 ? newestFirst.length : index + 1;
  }
  const data = newestFirst.slice(start, start + limit);
  return { object: "list", data, has_more: start + limit < newestFirst.length };
}

/** A stable id-like string of `length` letters and digits derived from `seed`. */
function fakeId(seed: string, length: number): string {
  let out = "";
  for (let round = 0; out.length < length; round++) {
    out += createHash("sha256")
      .update(`${seed}#${round}`)
      .digest("base64")
      .replace(/[^A-Za-z0-9]/g, "");
  }
  return out.slice(0, length);
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
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
