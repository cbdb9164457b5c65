/**
 * Composition root: builds the engine from configuration. Entry points
 * (src/app/main.ts, the benchmark) call this; nothing else imports src/app.
 */
import { createStoryAgent } from "../agent/story-agent.ts";
import type { StoryAgent } from "../agent/types.ts";
import { InProcessJobQueue } from "../jobs/in-process-queue.ts";
import type { JobQueue } from "../jobs/job-queue.ts";
import { OpenAiModelClient } from "../llm/openai-client.ts";
import type { ModelClient } from "../llm/types.ts";
import { type Db, openDatabase } from "../store/db.ts";
import { type Audience, ChapterWriter } from "../story/chapter-writer.ts";
import { CHAPTER_JOB, type ChapterJobPayload, StoryService } from "../story/story-service.ts";
import type { Config } from "./config.ts";

export interface Engine {
  db: Db;
  model: ModelClient;
  agent: StoryAgent;
  queue: JobQueue;
  stories: StoryService;
  /** Where each conversation's chapters are shown (adapters register here). */
  audiences: Map<string, Audience>;
  close(): Promise<void>;
}

export interface EngineHooks {
  /** Wrap the model client (the benchmark times model calls with it). */
  decorateModel?: (model: ModelClient) => ModelClient;
}

export async function createEngine(
  config: Config,
  log: (message: string) => void,
  hooks: EngineHooks = {},
): Promise<Engine> {
  const db = await openDatabase(config.databaseUrl);
  const client = new OpenAiModelClient({
    routes: config.models,
    apiKey: config.apiKey,
    timeoutMs: config.timeoutMs,
    maxRetries: config.maxRetries,
    prices: config.prices,
  });
  const model = hooks.decorateModel?.(client) ?? client;
  const agent = createStoryAgent(model, { maxSteps: config.reactMaxSteps, recentChapters: config.recentChapters });
  const queue = new InProcessJobQueue({ concurrency: 4 });
  const stories = new StoryService(db, queue);
  const audiences = new Map<string, Audience>();
  const writer = new ChapterWriter(db, agent, (id) => audiences.get(id), {
    methods: config.methods,
    recentChapters: config.recentChapters,
    log,
  });
  queue.handle<ChapterJobPayload>(CHAPTER_JOB, (payload) => writer.run(payload));
  const interrupted = await stories.recoverInterrupted();
  if (interrupted > 0) log(`marked ${interrupted} interrupted chapter(s) as failed; readers can /retry them`);
  return {
    db,
    model,
    agent,
    queue,
    stories,
    audiences,
    async close() {
      await queue.close();
      await db.$disconnect();
    },
  };
}
