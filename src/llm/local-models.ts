/**
 * Which model `LOCAL_MODEL` names, and where a downloaded one is kept.
 *
 *   LOCAL_MODEL=default                      the default model below, downloaded once
 *   LOCAL_MODEL=hf:<owner>/<repo>/<file>     a GGUF on the Hugging Face Hub, downloaded once
 *   LOCAL_MODEL=/path/to/model.gguf          a file already on disk
 *
 * Downloads go to `LOCAL_MODEL_DIR` (default `~/.cache/inkloom/models`), one folder per
 * repository, so `default` and the same `hf:` reference share one file.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** A model Inkloom can download by name. */
export interface CatalogModel {
  /** What the reader is told ("Qwen2.5 1.5B Instruct, Q4_K_M"). */
  readonly name: string;
  /** Hugging Face repository, `owner/name`. */
  readonly repo: string;
  /** The `.gguf` file in it. */
  readonly file: string;
  /** Size as told before the download (the hub's own size is checked after it). */
  readonly approxBytes: number;
  readonly licence: string;
  readonly licenceUrl: string;
}

/**
 * The default: a 1.5B instruct model at 4-bit, Apache-2.0, that runs on a laptop CPU
 * (docs/local-model.md says what was measured, and on what). The 3B of the same family is
 * under the Qwen Research licence, hence the 1.5B.
 */
export const DEFAULT_LOCAL_MODEL: CatalogModel = {
  name: "Qwen2.5 1.5B Instruct (Q4_K_M)",
  repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
  file: "qwen2.5-1.5b-instruct-q4_k_m.gguf",
  approxBytes: 1_120_000_000,
  licence: "Apache-2.0",
  licenceUrl: "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/blob/main/LICENSE",
};

/** What `LOCAL_MODEL` names: a file on disk, or a file of a Hub repository to download. */
export type LocalModelSpec =
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "hub"; readonly repo: string; readonly file: string; readonly isDefault: boolean };

/** Where downloaded models are kept when `LOCAL_MODEL_DIR` is not set. */
export const DEFAULT_LOCAL_MODEL_DIR = join(homedir(), ".cache", "inkloom", "models");

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** `LOCAL_MODEL` read, or the reason it cannot be. */
export function parseLocalModelSpec(spec: string): LocalModelSpec | { readonly error: string } {
  const text = spec.trim();
  if (text === "default") {
    return { kind: "hub", repo: DEFAULT_LOCAL_MODEL.repo, file: DEFAULT_LOCAL_MODEL.file, isDefault: true };
  }
  if (text.startsWith("hf:")) {
    const parts = text.slice(3).split("/");
    const [owner, name, ...rest] = parts;
    const file = rest.join("/");
    if (
      owner === undefined ||
      name === undefined ||
      !REPO_PART.test(owner) ||
      !REPO_PART.test(name) ||
      !file.endsWith(".gguf") ||
      rest.some((p) => p === "" || p === "." || p === "..")
    ) {
      return { error: `LOCAL_MODEL=${text} is not a Hub reference: write hf:<owner>/<repo>/<file>.gguf` };
    }
    return { kind: "hub", repo: `${owner}/${name}`, file, isDefault: false };
  }
  return { kind: "file", path: resolve(text) };
}

/** Where a Hub file is kept under `modelDir` (the repository's owner and name as folders). */
export function hubModelPath(modelDir: string, repo: string, file: string): string {
  return join(resolve(modelDir), ...repo.split("/"), ...file.split("/"));
}
