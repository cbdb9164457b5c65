/**
 * LoRA adapters on the embedded model: a task routed to `local:<adapter.gguf>` runs on
 * LOCAL_MODEL (the base model) with that adapter applied, in this process. That is how a
 * small model fine-tuned on Inkloom's own runs (`npm run train:export`, trained elsewhere,
 * converted with llama.cpp's convert_lora_to_gguf.py) serves a task: FireAct's loop on one
 * machine (docs/local-model.md, "LoRA adapters").
 *
 * A route on the embedded model has the base URL `local://embedded`. Its model is
 * `local:<absolute path>` for an adapter, and `local:<file name>` (no folder) for the base
 * model itself. An adapter route is fine-tuned: it gets the zero-shot prompt the
 * exported training data was written with.
 */
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { GgufFormatError, readGgufMetadata } from "./gguf-metadata.ts";
import { LOCAL_BASE_URL } from "./local-runtime.ts";
import type { ModelRoute } from "./types.ts";

/** How a route names the embedded model: `local:<adapter.gguf>` in MODEL_<TASK> and `npm run train:route`. */
export const LOCAL_ROUTE_PREFIX = "local:";

/** The route of an adapter (`path` resolved against the working directory). */
export function adapterRoute(path: string): ModelRoute {
  return { model: `${LOCAL_ROUTE_PREFIX}${resolve(path)}`, baseUrl: LOCAL_BASE_URL, fineTuned: true };
}

/** True for a route served in this process (the base model or an adapter on it). */
export function isLocalRoute(route: Pick<ModelRoute, "baseUrl">): boolean {
  return route.baseUrl === LOCAL_BASE_URL;
}

/** The adapter file a route names, or undefined for the base model and for endpoint routes. */
export function adapterPathOf(route: Pick<ModelRoute, "baseUrl" | "model">): string | undefined {
  if (!isLocalRoute(route) || !route.model.startsWith(LOCAL_ROUTE_PREFIX)) return undefined;
  const path = route.model.slice(LOCAL_ROUTE_PREFIX.length);
  return isAbsolute(path) ? path : undefined;
}

/**
 * What is wrong with `path` as a LoRA adapter for the base model at `basePath`, or
 * undefined when nothing is: it must be a GGUF file with `general.type = adapter` and
 * `adapter.type = lora`, and (when the base model can be read) of the same architecture.
 */
export function loraAdapterProblem(path: string, basePath?: string): string | undefined {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) return `${path} is not a file`;
  let metadata: Map<string, unknown>;
  try {
    metadata = readGgufMetadata(path).metadata;
  } catch (error) {
    const why = error instanceof GgufFormatError ? error.message : `cannot be read (${String(error)})`;
    return `${path} is not a LoRA adapter: ${why}`;
  }
  const type = metadata.get("general.type");
  if (type !== "adapter") {
    return (
      `${path} is not a LoRA adapter: its general.type is ${JSON.stringify(type ?? "model")}, not "adapter" ` +
      "(a whole model goes in LOCAL_MODEL; a local: route names an adapter made for it, " +
      "converted with llama.cpp's convert_lora_to_gguf.py)"
    );
  }
  const adapterType = metadata.get("adapter.type");
  if (adapterType !== "lora") {
    return `${path} is an adapter of type ${JSON.stringify(adapterType ?? "(none)")}: only "lora" adapters are supported`;
  }
  const architecture = metadata.get("general.architecture");
  const baseArchitecture = basePath === undefined ? undefined : architectureOf(basePath);
  if (baseArchitecture !== undefined && architecture !== baseArchitecture) {
    return `${path} is a LoRA adapter for ${String(architecture)} models, but LOCAL_MODEL (${basePath}) is a ${baseArchitecture} model`;
  }
  return undefined;
}

/** The base model's architecture, when its header can be read (a model not downloaded yet cannot). */
function architectureOf(path: string): string | undefined {
  try {
    const value = readGgufMetadata(path).metadata.get("general.architecture");
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}
