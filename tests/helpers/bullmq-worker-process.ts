/**
 * A worker process for the BullMQ tests to kill: it opens the queue as a worker,
 * handles one job name by printing "started <key> <attempt>" and then hanging, as a
 * chapter does while the model writes. Usage:
 *   node --import tsx tests/helpers/bullmq-worker-process.ts <redis url> <prefix> <job name> <lock ms> <stalled ms>
 */
import { BullMqJobQueue } from "../../src/jobs/bullmq-queue.ts";

const [url, prefix, job, lockMs, stalledMs] = process.argv.slice(2);
if (url === undefined || prefix === undefined || job === undefined) {
  process.stderr.write("usage: bullmq-worker-process.ts <redis url> <prefix> <job name> <lock ms> <stalled ms>\n");
  process.exit(2);
}
const queue = await BullMqJobQueue.open({
  url,
  prefix,
  lockDurationMs: Number(lockMs ?? 1000),
  stalledIntervalMs: Number(stalledMs ?? 500),
});
queue.handle(job, async (_payload, { key, attempt }) => {
  process.stdout.write(`started ${key} ${attempt}\n`);
  await new Promise(() => {});
});
process.stdout.write("ready\n");
