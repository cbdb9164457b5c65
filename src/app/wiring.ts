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
import { AudienceRegistry } from "../story/audience-registry.ts";
import { BallotService } from "../story/ballot-service.ts";
import { ChapterWriter } from "../story/chapter-writer.ts";
import { ILLUSTRATION_JOB, type IllustrationJobPayload, IllustrationService } from "../story/illustrations.ts";
import { ModelModerator } from "../story/moderation.ts";
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
  const agent = createStoryAgent(model, { maxSteps: config.reactMaxSteps, recentChapters: config.recentChapters });
  const queue = new InProcessJobQueue({ concurrency: config.jobConcurrency });
  const moderator = config.moderation ? new ModelModerator(model) : undefined;
  const stories = new StoryService(db, queue, moderator);
  const audiences = new AudienceRegistry();
  const resolve = (id: string) => audiences.resolve(id);
  const ballots = new BallotService(db, stories, resolve, { log, ...(moderator === undefined ? {} : { moderator }) });
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
  const writer = new ChapterWriter(
    db,
    agent,
    resolve,
    { methods: config.methods, recentChapters: config.recentChapters, log },
    ballots,
    illustrations,
  );
  queue.handle<ChapterJobPayload>(CHAPTER_JOB, (payload) => writer.run(payload));
  queue.handle<IllustrationJobPayload>(ILLUSTRATION_JOB, (payload) => illustrations.run(payload));
  stories.presentChoicesWith((storyId) => writer.reoffer(storyId));
  const interrupted = await stories.recoverInterrupted();
  if (interrupted > 0) log(`marked ${interrupted} interrupted chapter(s) as failed; readers can /retry them`);
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
    async close() {
      ballots.dispose();
      await queue.close();
      await db.$disconnect();
    },
  };
}
