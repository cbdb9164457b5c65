import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../../src/store/db.ts";
import {
  eventMetrics,
  FineTuneError,
  FineTuner,
  type FineTunerOptions,
  type FineTuningJobEvent,
  type JobStatus,
  recordJob,
  register,
} from "../../src/training/finetune.ts";
import { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { TestDatabases } from "../helpers/database.ts";
import { type CliResult, runTrainingCli } from "../helpers/run-cli.ts";

const BASE_MODEL = "gpt-4.1-mini-2025-04-14";

let server: FakeOpenAiServer;
let dir: string;
const databases = new TestDatabases();
let dbUrl: string;
let db: Db | undefined;
let trainPath: string;
let validationPath: string;

function example(user: string, assistant: string): string {
  return JSON.stringify({
    messages: [
      { role: "system", content: "You continue an interactive web novel." },
      { role: "user", content: user },
      { role: "assistant", content: assistant },
    ],
  });
}

beforeEach(async () => {
  server = await FakeOpenAiServer.start();
  dir = mkdtempSync(join(tmpdir(), "inkloom-finetune-"));
  dbUrl = await databases.url(dir);
  trainPath = join(dir, "train.jsonl");
  validationPath = join(dir, "validation.jsonl");
  writeFileSync(
    trainPath,
    `${example("Mira opens the archive door.", "Cold air breathed out of the dark, smelling of wet paper.")}\n` +
      `${example("She raises the lantern — «qui est là ?»", "Shelves leaned like tired giants; something moved between them.")}\n`,
  );
  writeFileSync(validationPath, `${example("Mira calls out.", "Only the river answered, far below the floor.")}\n`);
});

afterEach(async () => {
  await db?.$disconnect();
  db = undefined;
  await server.close();
  await databases.dropAll();
  rmSync(dir, { recursive: true, force: true });
});

async function database(): Promise<Db> {
  db ??= await openDatabase(dbUrl);
  return db;
}

function tuner(options: Partial<FineTunerOptions> = {}): FineTuner {
  return new FineTuner({
    baseUrl: server.baseUrl,
    apiKey: "sk-test",
    timeoutMs: 2_000,
    maxRetries: 3,
    retryBaseMs: 1,
    ...options,
  });
}

describe("FineTuner against the fake fine-tuning API", () => {
  it("uploads, creates, follows every event once in order, and registers the model as the task's route", async () => {
    const db = await database();
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const validation = await ft.upload(validationPath);
    expect(train).toMatchObject({ object: "file", purpose: "fine-tune", filename: "train.jsonl", status: "processed" });
    expect(train.bytes).toBe(readFileSync(trainPath).length);
    const uploads = server.uploadedFiles();
    expect(uploads.map((f) => f.id)).toEqual([train.id, validation.id]);
    expect(uploads[0]?.bytes.equals(readFileSync(trainPath))).toBe(true);
    expect(uploads[1]?.bytes.equals(readFileSync(validationPath))).toBe(true);

    const created = await ft.create({
      model: BASE_MODEL,
      trainingFileId: train.id,
      validationFileId: validation.id,
      suffix: "story",
      seed: 7,
    });
    expect(created).toMatchObject({
      object: "fine_tuning.job",
      model: BASE_MODEL,
      status: "validating_files",
      training_file: train.id,
      validation_file: validation.id,
      fine_tuned_model: null,
      seed: 7,
    });
    expect(created.id).toMatch(/^ftjob-/);
    expect(server.fineTuningJobs().map((j) => j.training_file)).toEqual([train.id]);

    const context = { task: "continue" as const, baseUrl: server.baseUrl };
    await recordJob(db, created, context);
    const events: FineTuningJobEvent[] = [];
    const statuses: JobStatus[] = [];
    const rowStatuses: string[] = [];
    const job = await ft.follow(created.id, {
      pollMs: 1,
      onEvent: (event) => {
        events.push(event);
      },
      onStatus: async (current) => {
        statuses.push(current.status);
        await recordJob(db, current, context);
        const row = await db.fineTuneJob.findUniqueOrThrow({ where: { providerJobId: current.id } });
        rowStatuses.push(row.status);
      },
    });

    expect(job.status).toBe("succeeded");
    expect(job.fine_tuned_model).toMatch(new RegExp(`^ft:${BASE_MODEL}:inkloom:story:[A-Za-z0-9]{8}$`));
    expect(job.trained_tokens).toBeGreaterThan(0);
    // The first poll already moves the job out of validating_files.
    expect(statuses).toEqual(["queued", "running", "succeeded"]);
    expect(rowStatuses).toEqual(statuses);
    // Every event the server has, oldest first, each once.
    expect(events.map((e) => e.id)).toEqual(server.fineTuningEvents(created.id).map((e) => e.id));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events[0]?.message).toBe(`Created fine-tuning job: ${created.id}`);
    expect(events.at(-1)?.message).toBe("The job has successfully completed");
    const metrics = events.map(eventMetrics).filter((m) => m !== undefined);
    expect(metrics.map((m) => [m.step, m.totalSteps])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(metrics.every((m) => m.trainLoss !== undefined && m.validLoss !== undefined)).toBe(true);
    expect(events.find((e) => e.type === "metrics")?.message).toMatch(/^Step 1\/3: training loss=\d+\.\d+/);

    const registration = await register(db, job, context);
    expect(registration).toEqual({
      registered: true,
      task: "continue",
      route: { model: job.fine_tuned_model, baseUrl: server.baseUrl, fineTuned: true },
    });
    const row = await db.fineTuneJob.findUniqueOrThrow({ where: { providerJobId: job.id } });
    expect(row).toMatchObject({
      baseUrl: server.baseUrl,
      baseModel: BASE_MODEL,
      trainingFileId: train.id,
      validationFileId: validation.id,
      status: "succeeded",
      fineTunedModel: job.fine_tuned_model,
      task: "continue",
      error: "",
    });
    const route = await db.modelRoute.findUniqueOrThrow({ where: { task: "continue" } });
    expect(route).toMatchObject({
      model: job.fine_tuned_model,
      baseUrl: server.baseUrl,
      fineTuned: true,
      source: "finetune",
    });
  });

  it("serves the route from another base URL when asked", async () => {
    const db = await database();
    server.fineTuningSteps = 1;
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    const job = await ft.follow(created.id, { pollMs: 1 });
    const registration = await register(db, job, {
      task: "rewrite",
      baseUrl: server.baseUrl,
      serveBaseUrl: "http://127.0.0.1:8000/v1/",
    });
    expect(registration.registered && registration.route.baseUrl).toBe("http://127.0.0.1:8000/v1");
    expect(job.fine_tuned_model).toMatch(new RegExp(`^ft:${BASE_MODEL}:inkloom::[A-Za-z0-9]{8}$`));
    expect(await db.modelRoute.findUnique({ where: { task: "continue" } })).toBeNull();
  });

  it("registers no route for a failed job and says why", async () => {
    const db = await database();
    server.failFineTuning("Training diverged: loss became NaN.", { code: "training_diverged" });
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    const events: FineTuningJobEvent[] = [];
    const job = await ft.follow(created.id, { pollMs: 1, onEvent: (e) => void events.push(e) });

    expect(job.status).toBe("failed");
    expect(job.fine_tuned_model).toBeNull();
    expect(job.error).toEqual({
      code: "training_diverged",
      message: "Training diverged: loss became NaN.",
      param: null,
    });
    expect(events.at(-1)).toMatchObject({ level: "error" });
    const registration = await register(db, job, { task: "continue", baseUrl: server.baseUrl });
    expect(registration.registered).toBe(false);
    expect(!registration.registered && registration.reason).toContain("Training diverged: loss became NaN.");
    expect(await db.modelRoute.count()).toBe(0);
    expect(await db.fineTuneJob.findUniqueOrThrow({ where: { providerJobId: job.id } })).toMatchObject({
      status: "failed",
      fineTunedModel: "",
      error: expect.stringContaining("training_diverged"),
    });
  });

  it("fails a job whose files do not validate, and a cancelled job registers nothing either", async () => {
    const db = await database();
    server.failFineTuning("The file has too few examples.", { during: "validating_files" });
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const failing = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    const failed = await ft.follow(failing.id, { pollMs: 1 });
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "invalid_training_file", param: "training_file" });

    const other = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    expect((await ft.cancel(other.id)).status).toBe("cancelled");
    const cancelled = await ft.follow(other.id, { pollMs: 1 });
    expect(cancelled.status).toBe("cancelled");
    const registration = await register(db, cancelled, { task: "open", baseUrl: server.baseUrl });
    expect(registration).toEqual({ registered: false, task: "open", reason: "the job was cancelled" });
    expect(await db.modelRoute.count()).toBe(0);
  });

  it("retries a poll that fails with 5xx or 429, without losing or repeating events", async () => {
    const retries: string[] = [];
    const ft = tuner({ onRetry: ({ what, error }) => void retries.push(`${what}: ${error.status}`) });
    const train = await ft.upload(trainPath);
    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    server.enqueueFineTuningError(
      { route: "retrieve", status: 500 },
      { route: "events", status: 503 },
      { route: "retrieve", status: 429, headers: { "retry-after-ms": "5" } },
    );
    const events: FineTuningJobEvent[] = [];
    const job = await ft.follow(created.id, { pollMs: 1, onEvent: (e) => void events.push(e) });

    expect(job.status).toBe("succeeded");
    // Each scripted error answers the next request of its route: the retry of the first poll gets the 429.
    expect(retries).toEqual([
      `reading ${created.id}: 500`,
      `reading ${created.id}: 429`,
      `reading the events of ${created.id}: 503`,
    ]);
    expect(events.map((e) => e.id)).toEqual(server.fineTuningEvents(created.id).map((e) => e.id));
  });

  it("gives up after its retries, and never retries creating a job on a 500", async () => {
    const ft = tuner({ maxRetries: 1 });
    const train = await ft.upload(trainPath);
    server.enqueueFineTuningError({ route: "create", status: 500 });
    const err = await ft.create({ model: BASE_MODEL, trainingFileId: train.id }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FineTuneError);
    expect(err).toMatchObject({ kind: "server", status: 500 });
    expect(server.requests.filter((r) => r.path === "/fine_tuning/jobs")).toHaveLength(1);
    expect(server.fineTuningJobs()).toHaveLength(0);

    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    server.enqueueFineTuningError({ route: "retrieve", status: 502 }, { route: "retrieve", status: 502 });
    await expect(ft.follow(created.id, { pollMs: 1 })).rejects.toMatchObject({ kind: "server", status: 502 });
  });

  it("refuses a job on a file it does not know", async () => {
    const ft = tuner();
    await expect(ft.create({ model: BASE_MODEL, trainingFileId: "file-nope" })).rejects.toMatchObject({
      kind: "bad_request",
      status: 400,
      message: expect.stringContaining("file-nope"),
    });
    const train = await ft.upload(trainPath);
    await expect(
      ft.create({ model: BASE_MODEL, trainingFileId: train.id, validationFileId: "file-missing" }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it("stops following on abort without cancelling the job", async () => {
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id });
    const controller = new AbortController();
    const following = ft.follow(created.id, {
      pollMs: 10_000,
      signal: controller.signal,
      onStatus: () => controller.abort(new Error("stop")),
    });
    await expect(following).rejects.toThrow("stop");
    expect(server.fineTuningJobs()[0]?.status).toBe("queued");
    expect(server.requests.some((r) => r.path.endsWith("/cancel"))).toBe(false);
  });
});

function runCli(
  args: string[],
  env: Record<string, string> = {},
  onStdout?: (stdout: string, child: ChildProcess) => void,
): Promise<CliResult> {
  return runTrainingCli(
    "finetune.ts",
    args,
    { OPENAI_BASE_URL: server.baseUrl, OPENAI_API_KEY: "sk-test", DATABASE_URL: dbUrl, ...env },
    onStdout,
  );
}

describe("npm run train:finetune", () => {
  it("fine-tunes, shows progress, registers the route and records the job", async () => {
    const result = await runCli([
      "--train",
      trainPath,
      "--validation",
      validationPath,
      "--model",
      BASE_MODEL,
      "--poll-ms",
      "10",
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const model = new RegExp(`ft:${BASE_MODEL}:inkloom:inkloom:[A-Za-z0-9]{8}`).exec(result.stdout)?.[0];
    expect(model).toBeDefined();
    expect(result.stdout).toContain(`Registered route: continue -> ${model}@${server.baseUrl} (fine-tuned)`);
    // Not a terminal: one progress line per metrics event, and the status changes.
    expect(result.stdout).toContain("1/3 steps (33%)");
    expect(result.stdout).toContain("[##############################] 3/3 steps (100%)");
    expect(result.stdout).toContain("Status: running -> succeeded");
    expect(result.stdout).not.toContain("\r");

    const uploads = server.uploadedFiles();
    expect(uploads.map((f) => f.filename)).toEqual(["train.jsonl", "validation.jsonl"]);
    expect(uploads[0]?.bytes.equals(readFileSync(trainPath))).toBe(true);
    const [job] = server.fineTuningJobs();
    expect(job).toMatchObject({ user_provided_suffix: "inkloom", training_file: uploads[0]?.id });

    const db = await database();
    expect(await db.fineTuneJob.findMany()).toEqual([
      expect.objectContaining({
        providerJobId: job?.id,
        status: "succeeded",
        fineTunedModel: model,
        task: "continue",
        validationFileId: uploads[1]?.id,
      }),
    ]);
    expect(await db.modelRoute.findUnique({ where: { task: "continue" } })).toMatchObject({
      model,
      baseUrl: server.baseUrl,
      fineTuned: true,
      source: "finetune",
    });
  });

  it("exits 2 on usage errors and invalid data, uploading nothing", async () => {
    const missing = await runCli(["--model", BASE_MODEL]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--train <file> is required");

    const badTask = await runCli(["--train", trainPath, "--model", BASE_MODEL, "--task", "dance"]);
    expect(badTask.code).toBe(2);
    expect(badTask.stderr).toContain("--task must be one of");

    const invalid = join(dir, "invalid.jsonl");
    writeFileSync(invalid, `${example("a", "b")}\n{"messages": []}\nnot json\n`);
    const refused = await runCli(["--train", invalid, "--model", BASE_MODEL]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("line 2: messages must be a non-empty array");
    expect(refused.stderr).toContain("line 3:");
    expect(server.uploadedFiles()).toHaveLength(0);
  });

  it("exits 1 when the job fails, registering nothing", async () => {
    server.failFineTuning("Too many examples were flagged by moderation.", { code: "moderation_flagged" });
    const result = await runCli(["--train", trainPath, "--model", BASE_MODEL, "--poll-ms", "10", "--task", "open"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Too many examples were flagged by moderation.");
    expect(result.stderr).toContain("No route was registered.");
    const db = await database();
    expect(await db.modelRoute.count()).toBe(0);
    expect(await db.fineTuneJob.findFirst()).toMatchObject({ status: "failed", task: "open" });
  });

  it("stops following on Ctrl-C, leaving the job running, and says how to resume", async () => {
    let interrupted = false;
    const result = await runCli(
      ["--train", trainPath, "--model", BASE_MODEL, "--poll-ms", "60000"],
      {},
      (out, child) => {
        if (!interrupted && out.includes("Status: validating_files -> queued")) {
          interrupted = true;
          child.kill("SIGINT");
        }
      },
    );
    expect(result.code).toBe(130);
    const [job] = server.fineTuningJobs();
    expect(job?.status).toBe("queued");
    expect(server.requests.some((r) => r.path.endsWith("/cancel"))).toBe(false);
    expect(result.stderr).toContain(`Stopped following ${job?.id}; the job goes on`);
    expect(result.stderr).toContain(`npm run train:finetune -- --resume ${job?.id} --task continue`);
    const db = await database();
    expect(await db.fineTuneJob.findFirst()).toMatchObject({ providerJobId: job?.id, status: "queued" });
    expect(await db.modelRoute.count()).toBe(0);
  });

  it("resumes following a job it did not start", async () => {
    server.fineTuningSteps = 1;
    const ft = tuner();
    const train = await ft.upload(trainPath);
    const created = await ft.create({ model: BASE_MODEL, trainingFileId: train.id, suffix: "later" });
    const result = await runCli([
      "--resume",
      created.id,
      "--task",
      "summarize",
      "--serve-base-url",
      "http://127.0.0.1:9/v1",
      "--poll-ms",
      "10",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /Registered route: summarize -> ft:\S+:inkloom:later:\S+@http:\/\/127\.0\.0\.1:9\/v1 \(fine-tuned\)/,
    );
    // The whole history, from the job's creation on.
    expect(result.stdout).toContain(`Created fine-tuning job: ${created.id}`);
  });
});
