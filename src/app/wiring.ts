/**
 * Composition root: builds the engine from configuration. Entry points
 * (src/app/main.ts, the benchmark) call this; nothing else imports src/app.
 */
import { createStoryAgent } from "../agent/story-agent.ts";
import type { StoryAgent } from "../agent/types.ts";
import type { ImageClient } from "../art/image-client.ts";
import { ImageStore } from "../art/image-store.ts";
import { OpenAiImageClient } from "../art/openai-image-client.ts";
import { InProcessJobQueue } from "../jobs/in-process-queue.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { OpenAiModelClient } from "../llm/openai-client.ts";
import type { ModelClient } from "../llm/types.ts";
import { type Db, openDatabase } from "../store/db.ts";
import { loadStrategyBook } from "../store/strategy-store.ts";
import { AudienceRegistry } from "../story/audience-registry.ts";
import { BallotService } from "../story/ballot-service.ts";
import { PartsRepairer, REPAIR_JOB, type RepairJobPayload } from "../story/chapter-repair.ts";
import { ChapterWriter } from "../story/chapter-writer.ts";
import { ILLUSTRATION_JOB, type IllustrationJobPayload, IllustrationService } from "../story/illustrations.ts";
import { ModelModerator } from "../story/moderation.ts";
import { Preplanner } from "../story/preplanner.ts";
import { CHAPTER_JOB, type ChapterJobPayload, StoryService } from "../story/story-service.ts";
import { ThemeService } from "../story/themes.ts";
import { WorkspaceSettingsStore } from "../story/workspace-settings.ts";
import { RouteStore } from "../training/routes.ts";
import type { Config } from "./config.ts";

export interface Engine {
  db: Db;
  model: ModelClient;
  agent: StoryAgent;
  queue: JobQueue;
  stories: StoryService;
  ballots: BallotService;
  settings: WorkspaceSettingsStore;
  themes: ThemeService;
  illustrations: IllustrationService;
  /** Where each conversation's chapters are shown (adapters register here). */
  audiences: AudienceRegistry;
  /** Speculative planning of offered choices, when PREPLAN is on. */
  preplanner?: Preplanner;
  /**
   * Resume what a restart interrupted: chapters (continued in the messages they had
   * shown), pictures, and parts to repair. Call once the adapters have registered.
   */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export interface EngineHooks {
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
  const db = await openDatabase(config.databaseUrl);
  const client = new OpenAiModelClient({
    // Routes set with `npm run train:route` (or by a fine-tuning job) win over the configuration.
    routes: await new RouteStore(db).resolve(config.models),
    apiKey: config.apiKey,
    timeoutMs: config.timeoutMs,
    maxRetries: config.maxRetries,
    prices: config.prices,
  });
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
  const queue = new InProcessJobQueue({ concurrency: config.jobConcurrency });
  const moderator = config.moderation ? new ModelModerator(model) : undefined;
  const preplanner = config.preplan.enabled
    ? new Preplanner(db, agent, { method: config.methods.continue, concurrency: config.preplan.concurrency, log })
    : undefined;
  const stories = new StoryService(db, queue, moderator, preplanner);
  const audiences = new AudienceRegistry();
  const resolve = (id: string) => audiences.resolve(id);
  const ballots = new BallotService(db, stories, resolve, {
    log,
    ...(moderator === undefined ? {} : { moderator }),
    ...(preplanner === undefined ? {} : { preplanner }),
  });
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
  const illustrations = new IllustrationService(
    db,
    queue,
    images,
    new ImageStore(config.imageDir),
    settings,
    resolve,
    { size: config.images?.size ?? "1024x1024", cooldownSeconds: config.illustrateCooldownSeconds, log },
    moderator,
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
    ballots,
    illustrations,
  );
  queue.handle<ChapterJobPayload>(CHAPTER_JOB, (payload, job) => writer.run(payload, job.signal));
  queue.handle<IllustrationJobPayload>(ILLUSTRATION_JOB, (payload) => illustrations.run(payload));
  queue.handle<RepairJobPayload>(REPAIR_JOB, (payload) => repairs.run(payload));
  stories.presentChoicesWith((storyId) => writer.reoffer(storyId));
  await ballots.resume();
  return {
    db,
    model,
    agent,
    queue,
    stories,
    ballots,
    settings,
    themes: new ThemeService(db),
    illustrations,
    audiences,
    ...(preplanner === undefined ? {} : { preplanner }),
    async resume() {
      const chapters = await stories.resumeInterrupted();
      if (chapters > 0) log(`resuming ${chapters} chapter(s) a restart interrupted`);
      const pictures = await illustrations.recover();
      if (pictures > 0) log(`resuming ${pictures} illustration(s) a restart interrupted`);
      const parts = await repairs.recover();
      if (parts > 0) log(`repairing the parts of ${parts} chapter(s)`);
    },
    async close() {
      ballots.dispose();
      await preplanner?.close();
      await queue.close();
      await db.$disconnect();
    },
  };
}
