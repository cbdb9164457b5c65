import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { BullMqJobQueue } from "../../src/jobs/bullmq-queue.ts";
import { jobQueueContract } from "../contract/job-queue.contract.ts";
import { connectTestRedis, dropPrefix, TEST_REDIS_URL, testPrefix } from "../helpers/redis.ts";

let redis: Redis;
let prefix: string;

beforeAll(async () => {
  redis = await connectTestRedis();
});
afterAll(() => redis?.disconnect());
beforeEach(() => {
  prefix = testPrefix();
});
afterEach(async () => {
  await dropPrefix(redis, prefix);
});

jobQueueContract(
  "BullMqJobQueue",
  (options) =>
    BullMqJobQueue.open({
      url: TEST_REDIS_URL,
      prefix,
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      idlePollMs: 20,
    }),
  { abortedJobs: "handBack" },
);
