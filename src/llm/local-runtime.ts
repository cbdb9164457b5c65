/**
 * The embedded local runtime (`node-llama-cpp`), resolved on demand from a directory
 * rather than from package.json, so a bot with an API endpoint never installs it
 * (docs/local-model.md: about 85 MB with the CPU prebuilt only, 725 MB with every optional
 * GPU prebuilt). Install it into its own prefix:
 *
 *   npm install --prefix <dir> --omit=optional --no-audit --no-fund node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
 *
 * (`RUNTIME_INSTALL_COMMAND` names this machine's prebuilt package; Inkloom runs it itself
 * when local mode is chosen, src/llm/local-install.ts.)
 *
 * The types below are the small structural slice of its API that Inkloom uses; the
 * runtime is not a dependency, so its own typings are not available at compile time.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export type Token = number & { readonly __token?: never };

export interface LlamaGrammarLike {
  readonly __grammar?: never;
}
export interface LlamaJsonSchemaGrammarLike extends LlamaGrammarLike {
  parse(text: string): unknown;
}

export interface LlamaCompletionOptions {
  onTextChunk?: (text: string) => void;
  signal?: AbortSignal;
  stopOnAbortSignal?: boolean;
  maxTokens?: number;
  temperature?: number;
  seed?: number;
  grammar?: LlamaGrammarLike;
}

export interface LlamaCompletionLike {
  generateCompletionWithMeta(
    input: string,
    options?: LlamaCompletionOptions,
  ): Promise<{
    response: string;
    metadata: { stopReason: "eogToken" | "stopGenerationTrigger" | "maxTokens" | "abort" };
  }>;
  dispose(): void;
}

export interface LlamaContextSequenceLike {
  readonly contextTokens: readonly Token[];
  dispose(): void;
}

export interface LlamaContextLike {
  getSequence(): LlamaContextSequenceLike;
  readonly sequencesLeft: number;
  dispose(): Promise<void>;
}

export interface LlamaModelLike {
  readonly trainContextSize: number;
  tokenize(text: string): Token[];
  detokenize(tokens: readonly Token[]): string;
  createContext(options: {
    contextSize?: number;
    sequences?: number;
    threads?: number;
    batchSize?: number;
    /** LoRA adapters applied to every sequence of the context (node-llama-cpp 3.x). */
    lora?: { adapters: { filePath: string; scale?: number }[] };
  }): Promise<LlamaContextLike>;
  dispose(): Promise<void>;
}

export interface LlamaLike {
  loadModel(options: { modelPath: string; gpuLayers?: number }): Promise<LlamaModelLike>;
  createGrammarForJsonSchema(schema: Record<string, unknown>): Promise<LlamaJsonSchemaGrammarLike>;
  dispose(): Promise<void>;
}

export interface NodeLlamaCpp {
  getLlama(options: {
    gpu?: false | "auto";
    build?: "never" | "auto";
    progressLogs?: boolean;
    logLevel?: "disabled" | "fatal" | "error" | "warn" | "info" | "log" | "debug";
    maxThreads?: number;
  }): Promise<LlamaLike>;
  LlamaCompletion: new (options: { contextSequence: LlamaContextSequenceLike }) => LlamaCompletionLike;
  readGgufFileInfo(path: string): Promise<{ version: number; metadata: Record<string, unknown> }>;
}

/** The route base URL of the embedded model (no server: the model runs in this process). */
export const LOCAL_BASE_URL = "local://embedded";

/** The version installed on demand (measured in docs/local-model.md). */
export const NODE_LLAMA_CPP_VERSION = "3.22.1";

/**
 * The one prebuilt package of this machine, CPU only (Metal on Apple silicon), of
 * node-llama-cpp's optional ones: the GPU packages are hundreds of MB (docs/local-model.md).
 */
export function prebuiltPackage(platform: string = process.platform, arch: string = process.arch): string {
  const os = platform === "darwin" ? "mac" : platform === "win32" ? "win" : platform;
  const flavour = os === "mac" && arch === "arm64" ? "-metal" : "";
  return `@node-llama-cpp/${os}-${arch}${flavour}`;
}

/**
 * npm's arguments that install the runtime, this machine's prebuilt only, into the npm prefix
 * `dir` (src/llm/local-install.ts runs them; `RUNTIME_INSTALL_COMMAND` prints them).
 */
export const RUNTIME_INSTALL_ARGS = (dir: string): string[] => [
  "install",
  "--prefix",
  dir,
  "--omit=optional",
  "--no-audit",
  "--no-fund",
  `node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`,
  `${prebuiltPackage()}@${NODE_LLAMA_CPP_VERSION}`,
];

/** A word for a POSIX shell: quoted when it holds anything but plain path characters. */
const shellWord = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;

/** The command that installs the runtime into the npm prefix `dir`, to run by hand. */
export const RUNTIME_INSTALL_COMMAND = (dir: string): string =>
  ["npm", ...RUNTIME_INSTALL_ARGS(dir)].map(shellWord).join(" ");

/** The entry module of `node-llama-cpp` installed under `dir` (an npm prefix), or undefined. */
export function nodeLlamaCppEntry(dir: string): string | undefined {
  const entry = join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
  return existsSync(entry) ? entry : undefined;
}

/** Thrown when local mode is chosen and the runtime is not installed where it is looked for. */
export class LocalRuntimeMissing extends Error {
  override readonly name = "LocalRuntimeMissing";
  constructor(readonly dir: string) {
    super(`node-llama-cpp is not installed in ${dir}. Install it with: ${RUNTIME_INSTALL_COMMAND(dir)}`);
  }
}

/** Import `node-llama-cpp` from the npm prefix `dir` (not from the project's own node_modules). */
export async function loadNodeLlamaCpp(dir: string): Promise<NodeLlamaCpp> {
  const entry = nodeLlamaCppEntry(dir);
  if (!entry) throw new LocalRuntimeMissing(dir);
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}
