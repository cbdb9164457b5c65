/**
 * Composition root: builds the engine from configuration. Entry points
 * (src/app/main.ts, the benchmark) call this; nothing else imports src/app.
 */
import { createStoryAgent } from "../agent/story-agent.ts";
import type { StoryAgent } from "../agent/types.ts";
import type { ImageClient } from "../art/image-client.ts";
import { ImageStore } from "../art/image-store.ts";
import { OpenAiImageClient } from "../art/openai-image-client.ts";
import type { BullMqLane } from "../jobs/bullmq-queue.ts";
import { InProcessJobQueue } from "../jobs/in-process-queue.ts";
import { type CloseOptions, type JobQueue, retryOn } from "../jobs/job-queue.ts";
import { adapterPathOf, isLocalRoute, loraAdapterProblem } from "../llm/local-adapters.ts";
import { OpenAiModelClient } from "../llm/openai-client.ts";
import { RoutedModelClient } from "../llm/routed-client.ts";
import { type ModelClient, type ModelRoute, TASKS, type Task } from "../llm/types.ts";
import { type Db, isTransientDbError, openDatabase } from "../store/db.ts";
import { loadStrategyBook } from "../store/strategy-store.ts";
import { AudienceRegistry } from "../story/audience-registry.ts";
import { BALLOT_CLOSE_JOB, type BallotClosePayload, BallotService } from "../story/ballot-service.ts";
import { BookAssembler } from "../story/book-assembler.ts";
import { CardService } from "../story/cards.ts";
import { CHAPTER_JOB } from "../story/chapter-job.ts";
import { ChapterRecovery } from "../story/chapter-recovery.ts";
import { PartsRepairer, REPAIR_JOB, type RepairJobPayload } from "../story/chapter-repair.ts";
import { ChapterWriter, handleChapterJobs } from "../story/chapter-writer.ts";
import { ChoicePresenter } from "../story/choice-presenter.ts";
import { ILLUSTRATION_JOB, IllustrationJob, type IllustrationJobPayload } from "../story/illustration-job.ts";
import { IllustrationPlanning } from "../story/illustration-planning.ts";
import { LoreService } from "../story/lore-service.ts";
import { ModelModerator } from "../story/moderation.ts";
import { Preplanner } from "../story/preplanner.ts";
import { ChapterRatings } from "../story/ratings.ts";
import { StoryCommands } from "../story/story-commands.ts";
import { StoryQueries } from "../story/story-queries.ts";
import { TalkService } from "../story/talk.ts";
import { ThemeService } from "../story/themes.ts";
import { WorkspaceSettingsStore } from "../story/workspace-settings.ts";
import { RouteStore } from "../training/routes.ts";
import { type Config, ConfigError } from "./config.ts";

export interface Engine {
  db: Db;
  model: ModelClient;
  agent: StoryAgent;
  queue: JobQueue;
  /** The commands that change a story. */
  stories: StoryCommands;
  /** Where stories stand (and their choices offered again). */
  queries: StoryQueries;
  /** Readers' 👍 / 👎 on chapters. */
  ratings: ChapterRatings;
  /** /talk: a character answers a reader, outside the story. */
  talks: TalkService;
  /** A story's current branch as a book, for exports. */
  books: BookAssembler;
  ballots: BallotService;
  settings: WorkspaceSettingsStore;
  themes: ThemeService;
  /** Lore (world info) of stories and themes. */
  lore: LoreService;
  /** Which pictures are drawn: budgets, the agent's proposals, /illustrate, /character. */
  illustrations: IllustrationPlanning;
  /** Character cards in and out of stories (/card). */
  cards: CardService;
  /** The picture job: drawing, posting, and recovery after a restart. */
  illustrationJob: IllustrationJob;
  /** Where each conversation's chapters are shown (adapters register here). */
  audiences: AudienceRegistry;
  /** Speculative planning of offered choices, when PREPLAN is on. */
  preplanner?: Preplanner;
  /**
   * Resume what a restart interrupted: chapters (continued in the messages they had
   * shown), pictures, and parts to repair. Call once the adapters have registered.
   */
  resume(): Promise<void>;
  /** Stop: running jobs get `graceMs` to finish (then they stop and are resumed later), then the database closes. */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * What a process does. "all": everything in one process (the default, and the only role
 * without REDIS_URL). "front": the platform gateways only; it enqueues jobs and runs none.
 * "worker": runs the jobs (chapters, pictures, ballot closes) and streams through REST.
 */
export type ProcessRole = "all" | "front" | "worker";

export interface EngineHooks {
  /** This process's role (default "all"). */
  role?: ProcessRole;
  /** Wrap the model client (the benchmark times model calls with it). */
  decorateModel?: (model: ModelClient) => ModelClient;
  /** Replace the image client (tests). */
  images?: ImageClient;
}

export async function createEngine(
  config: Config,
  log: (message: string) => void,
  hooks: EngineHooks = {},
): Promise<Engine> {
  const db = await openDatabase(
    config.databaseUrl,
    config.databasePoolSize === undefined ? {} : { poolSize: config.databasePoolSize },
  );
  let client: ModelClient;
  try {
    // Routes set with `npm run train:route` (or by a fine-tuning job) win over the configuration.
    client = await createModelClient(config, await new RouteStore(db).resolve(config.models));
  } catch (error) {
    await db.$disconnect();
    throw error;
  }
  const model = hooks.decorateModel?.(client) ?? client;
  const strategies = await loadStrategyBook(db, {
    log,
    ...(config.structuredOutput === undefined ? {} : { override: config.structuredOutput }),
  });
  const agent = createStoryAgent(model, {
    maxSteps: config.reactMaxSteps,
    recentChapters: config.recentChapters,
    strategies,
  });
  const queue: JobQueue =
    config.redis === undefined
      ? new InProcessJobQueue({ concurrency: config.jobConcurrency, log })
      : // Loaded only when configured: BullMQ takes half a second to import.
        await (await import("../jobs/bullmq-queue.ts")).BullMqJobQueue.open({
          url: config.redis.url,
          prefix: config.redis.prefix,
          lanes: jobLanes(config.redis.workerConcurrency),
          role: hooks.role === "front" ? "producer" : "worker",
          log,
        });
  const moderator = config.moderation ? new ModelModerator(model) : undefined;
  // A front writes no chapter, so it plans none: plans live with the worker that writes.
  const preplanner =
    config.preplan.enabled && hooks.role !== "front"
      ? new Preplanner(db, agent, { method: config.methods.continue, concurrency: config.preplan.concurrency, log })
      : undefined;
  const stories = new StoryCommands(db, queue, moderator, preplanner);
  const audiences = new AudienceRegistry();
  const resolve = (id: string) => audiences.resolve(id);
  const ballots = new BallotService(db, queue, stories, resolve, {
    log,
    ...(moderator === undefined ? {} : { moderator }),
    ...(preplanner === undefined ? {} : { preplanner }),
  });
  // One presenter: the chapter writer offers a new chapter's choices with it, the
  // queries offer them again (after an undo, a branch or a resume).
  const presenter = new ChoicePresenter(
    db,
    resolve,
    { log, ...(preplanner === undefined ? {} : { preplanner }) },
    ballots,
  );
  const queries = new StoryQueries(db, presenter);
  const settings = new WorkspaceSettingsStore(db, {
    locale: config.locale,
    voteSeconds: config.voteSeconds,
    illustrations: true,
    imagesPerChapter: config.imagesPerChapter,
    imagesPerDay: config.imagesPerDay,
    rating: "general",
    chapterLength: "medium",
    dailyQuota: 0,
    allowedChannels: [],
    sharing: true,
  });
  const images =
    hooks.images ??
    (config.images === undefined
      ? undefined
      : new OpenAiImageClient({
          baseUrl: config.images.baseUrl,
          apiKey: config.images.apiKey,
          model: config.images.model,
          timeoutMs: config.images.timeoutMs,
          maxRetries: config.maxRetries,
        }));
  const imageStore = new ImageStore(config.imageDir);
  const illustrations = new IllustrationPlanning(
    db,
    queue,
    settings,
    { available: images !== undefined, cooldownSeconds: config.illustrateCooldownSeconds },
    moderator,
  );
  const illustrationJob = new IllustrationJob(
    db,
    queue,
    images,
    imageStore,
    resolve,
    { size: config.images?.size ?? "1024x1024", log },
    agent,
  );
  const repairs = new PartsRepairer(db, agent, queue, { method: config.methods.continue, log });
  const writer = new ChapterWriter(
    db,
    agent,
    resolve,
    {
      methods: config.methods,
      recentChapters: config.recentChapters,
      log,
      repairs,
      ...(preplanner === undefined ? {} : { preplanner }),
    },
    presenter,
    illustrations,
  );
  const recovery = new ChapterRecovery(db, queue);
  // A database briefly unreachable is retried with backoff; every job finds its own work done or half-done.
  handleChapterJobs(queue, writer, (handler) => retryOn(isTransientDbError, handler));
  queue.handle<IllustrationJobPayload>(
    ILLUSTRATION_JOB,
    retryOn(isTransientDbError, (payload, job) => illustrationJob.run(payload, job.attempt)),
    // Given up for good: the picture is marked failed and its readers told, never left waiting.
    { failed: (payload, failure) => illustrationJob.abandon(payload, failure.error.message) },
  );
  queue.handle<RepairJobPayload>(
    REPAIR_JOB,
    retryOn(isTransientDbError, (payload) => repairs.run(payload)),
  );
  queue.handle<BallotClosePayload>(
    BALLOT_CLOSE_JOB,
    retryOn(isTransientDbError, (payload) => ballots.closeOnTime(payload)),
  );
  await ballots.resume();
  return {
    db,
    model,
    agent,
    queue,
    stories,
    queries,
    ratings: new ChapterRatings(db),
    talks: new TalkService(db, agent, { cooldownSeconds: config.talkCooldownSeconds, log }, moderator),
    books: new BookAssembler(db, imageStore),
    ballots,
    settings,
    themes: new ThemeService(db, config.themeCatalogue),
    lore: new LoreService(db),
    illustrations,
    cards: new CardService(db, moderator),
    illustrationJob,
    audiences,
    ...(preplanner === undefined ? {} : { preplanner }),
    async resume() {
      const chapters = await recovery.resumeInterrupted();
      if (chapters > 0) log(`resuming ${chapters} chapter(s) a restart interrupted`);
      // On a shared queue other workers are live: their pictures are left to them.
      const pictures = await illustrationJob.recover({ shared: config.redis !== undefined });
      if (pictures > 0) log(`resuming ${pictures} illustration(s) a restart interrupted`);
      const parts = await repairs.recover();
      if (parts > 0) log(`repairing the parts of ${parts} chapter(s)`);
    },
    async close(options: CloseOptions = {}) {
      ballots.dispose();
      await preplanner?.close();
      await queue.close(options);
      // After the queue: no chapter is using the model any more.
      await client.close?.();
      await db.$disconnect();
    },
  };
}

/** Pictures drawn at once by one worker process: image endpoints are slow and rate-limited. */
const PICTURE_CONCURRENCY = 4;
/**
 * The model client for these routes: the endpoint's, the embedded model's, or both behind
 * a `RoutedModelClient` when some tasks run in-process (LOCAL_MODEL, or a `local:` LoRA
 * adapter on it) and others on the endpoint. node-llama-cpp is imported from its on-demand
 * prefix at the first local request, not here. Throws `ConfigError` for a local route that
 * cannot be served (no LOCAL_MODEL, or an adapter file that is gone or is not a LoRA adapter):
 * a stored route is checked only now.
 */
export async function createModelClient(config: Config, routes: Record<Task, ModelRoute>): Promise<ModelClient> {
  const problems: string[] = [];
  const adapterRoutes: Partial<Record<Task, ModelRoute>> = {};
  for (const task of TASKS) {
    const route = routes[task];
    if (!isLocalRoute(route)) continue;
    const adapter = adapterPathOf(route);
    const where = `the route of ${task} (${route.model}, from the configuration or \`npm run train:route\`; \`npm run train:route -- ${task} --clear\` drops a stored one)`;
    if (config.local === undefined) {
      problems.push(`${where} runs on the embedded model: set LOCAL_MODEL to the .gguf of its base model`);
      continue;
    }
    if (adapter === undefined) continue;
    const problem = loraAdapterProblem(adapter, config.local.modelPath);
    if (problem !== undefined) problems.push(`${where}: ${problem}`);
    adapterRoutes[task] = route;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const local =
    config.local !== undefined && TASKS.some((t) => isLocalRoute(routes[t]))
      ? new (await import("../llm/local-client.ts")).LocalModelClient({
          runtimeDir: config.local.runtimeDir,
          modelPath: config.local.modelPath,
          sequences: config.local.sequences,
          threads: config.local.threads,
          contextSize: config.local.contextSize,
          ...(config.local.seed === undefined ? {} : { seed: config.local.seed }),
          adapterRoutes,
        })
      : undefined;
  const remote = TASKS.some((t) => !isLocalRoute(routes[t]))
    ? new OpenAiModelClient({
        routes,
        apiKey: config.apiKey,
        timeoutMs: config.timeoutMs,
        maxRetries: config.maxRetries,
        prices: config.prices,
      })
    : undefined;
  if (local !== undefined && remote !== undefined) return new RoutedModelClient(routes, { local, remote });
  const only = local ?? remote;
  if (only === undefined) throw new Error("no task has a route"); // TASKS is never empty
  return only;
}

/** Ballot closes at once by one worker process: each is a few database writes. */
const TIMER_CONCURRENCY = 16;

/**
 * BullMQ queues by the resource their jobs spend: chapters and part repairs the model,
 * pictures the image endpoint, ballot closes next to nothing. Each lane has its own
 * concurrency, so a burst of pictures or ballots never holds a chapter back.
 */
export function jobLanes(workerConcurrency: number): Record<string, BullMqLane> {
  return {
    chapters: { jobs: [CHAPTER_JOB, REPAIR_JOB], concurrency: workerConcurrency },
    pictures: { jobs: [ILLUSTRATION_JOB], concurrency: PICTURE_CONCURRENCY },
    timers: { jobs: [BALLOT_CLOSE_JOB], concurrency: TIMER_CONCURRENCY },
  };
}
