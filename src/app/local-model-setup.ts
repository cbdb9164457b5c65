/**
 * The embedded model at start: `LOCAL_MODEL=default` or `hf:<owner>/<repo>/<file>.gguf`
 * is downloaded into LOCAL_MODEL_DIR before the engine is created (once: a later start
 * finds it), with a progress bar on standard error. src/llm/model-download.ts does the
 * transfer; this file says what is downloaded, and what a failed download means for the
 * process (exit status 2 with the message, as a configuration error).
 */
import { basename } from "node:path";
import { type ProgressWriter, progressDisplay } from "../llm/download-progress.ts";
import { DEFAULT_LOCAL_MODEL } from "../llm/local-models.ts";
import { type DownloadTuning, ensureHubFile, type HubFileOnDisk, ModelDownloadError } from "../llm/model-download.ts";
import type { Config } from "./config.ts";
import type { ExitStatus, Log } from "./runtime.ts";

export interface LocalModelSetupOptions {
  log: Log;
  /** Where the progress goes (standard error at start); none when absent. */
  progress?: ProgressWriter;
  /** Stops the download; its part is kept for the next start. */
  signal?: AbortSignal;
  /** Timeouts, retries and lock timings (tests shorten them). */
  tuning?: Partial<DownloadTuning>;
}

/**
 * Make sure the model `local` names is on disk: a Hub file is downloaded unless it is
 * already there; a file on disk (or no local model) needs nothing. Throws
 * `ModelDownloadError` when it cannot be had.
 */
export async function ensureLocalModel(
  local: Config["local"],
  options: LocalModelSetupOptions,
): Promise<HubFileOnDisk | undefined> {
  if (local === undefined || local.spec.kind !== "hub") return undefined;
  const { repo, file, isDefault } = local.spec;
  const progress = options.progress === undefined ? undefined : progressDisplay(options.progress, basename(file));
  const log = progress === undefined ? options.log : (message: string) => progress.above(() => options.log(message));
  return ensureHubFile(
    { repo, file },
    {
      ...options.tuning,
      path: local.modelPath,
      endpoint: local.hub.endpoint,
      ...(local.hub.token === undefined ? {} : { token: local.hub.token }),
      describe: isDefault ? DEFAULT_LOCAL_MODEL.name : `${repo}/${file}`,
      ...(isDefault
        ? {
            about: `${DEFAULT_LOCAL_MODEL.repo}, licence ${DEFAULT_LOCAL_MODEL.licence}: ${DEFAULT_LOCAL_MODEL.licenceUrl}`,
          }
        : {}),
      log,
      ...(progress === undefined ? {} : { progress }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
}

/**
 * At start (npm start, npm run worker), before the engine: the model downloaded if it has
 * to be, the bar on standard error. Ctrl-C stops the download and keeps its part (exit 130);
 * a download that fails exits 2 with its message.
 */
export async function prepareLocalModel(config: Config, log: Log): Promise<{ ready: true } | ExitStatus> {
  if (config.local?.spec.kind !== "hub") return { ready: true };
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => stop.abort(new Error(signal));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await ensureLocalModel(config.local, { log, progress: process.stderr, signal: stop.signal });
    return { ready: true };
  } catch (error) {
    if (!(error instanceof ModelDownloadError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return { exit: error.kind === "cancelled" ? 130 : 2 };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
