/**
 * What every benchmark starts with: the fake story model with a fixed latency,
 * a temporary folder for the SQLite database, and the environment that points
 * the engine at both.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeOpenAiServer, withLatency } from "../tests/fakes/fake-openai-server.ts";
import { storyResponder } from "../tests/fakes/story-responder.ts";

export interface BenchModel {
  model: FakeOpenAiServer;
  /** Environment for `loadConfig`: database, model endpoint, no retries, English. */
  env: Record<string, string>;
  /** Close the model and remove the temporary folder. */
  cleanup(): Promise<void>;
}

export async function startBenchModel(
  name: string,
  latency: { delayMs: number; chunkDelayMs: number },
): Promise<BenchModel> {
  const model = await FakeOpenAiServer.start({ responder: withLatency(storyResponder(), latency) });
  const dir = mkdtempSync(join(tmpdir(), `inkloom-bench-${name}-`));
  return {
    model,
    env: {
      DATABASE_URL: `file:${join(dir, "bench.db")}`,
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_API_KEY: "bench",
      OPENAI_MODEL: "bench-model",
      OPENAI_MAX_RETRIES: "0",
      INKLOOM_LOCALE: "en",
    },
    async cleanup() {
      await model.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A log for the engine that keeps every line (reported in the result) and shows it as progress. */
export function engineLogger(progress: (message: string) => void): { lines: string[]; log: (message: string) => void } {
  const lines: string[] = [];
  return {
    lines,
    log: (message) => {
      lines.push(message);
      progress(`engine: ${message}`);
    },
  };
}
