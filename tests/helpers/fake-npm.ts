/**
 * A stand-in `npm` executable for the runtime's install (src/llm/local-install.ts): put its
 * folder first on PATH. It records each run's arguments, and in `ok` mode does what the
 * real `npm install --prefix <dir> ...` leaves behind for Inkloom: node-llama-cpp's entry
 * module and this machine's prebuilt package under `<dir>/node_modules`. The other modes
 * fail the ways npm does.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prebuiltPackage } from "../../src/llm/local-runtime.ts";

export type FakeNpmMode =
  /** Installs the two packages' files and exits 0. */
  | "ok"
  /** Exits 1 the way npm does when the registry's host does not resolve. */
  | "offline"
  /** Exits 1 with an unrelated error. */
  | "fail"
  /** Exits 0 and installs nothing. */
  | "noop"
  /** Never ends (until SIGTERM). */
  | "hang"
  /** Never ends and ignores SIGTERM. */
  | "hang-ignoring-term";

export interface FakeNpm {
  /** The folder to put first on PATH. */
  bin: string;
  /** The path of the executable. */
  path: string;
  /** Each run's arguments, in order. */
  runs(): string[][];
  /** The pid of the last run (written as it starts). */
  lastPid(): number | undefined;
}

export function writeFakeNpm(dir: string, mode: FakeNpmMode): FakeNpm {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  const log = join(dir, "npm-runs.jsonl");
  const pidFile = join(dir, "npm.pid");
  const path = join(bin, "npm");
  const script = `#!${process.execPath}
const fs = require("node:fs");
const path = require("node:path");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + "\\n");
fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
const mode = ${JSON.stringify(mode)};
const prefix = args[args.indexOf("--prefix") + 1];
if (mode === "ok") {
  process.stdout.write("\\nadded 117 packages in 1s\\n");
  const entry = path.join(prefix, "node_modules", "node-llama-cpp", "dist");
  fs.mkdirSync(entry, { recursive: true });
  fs.writeFileSync(path.join(entry, "index.js"), "export {};\\n");
  const prebuilt = path.join(prefix, "node_modules", ...${JSON.stringify(prebuiltPackage().split("/"))});
  fs.mkdirSync(prebuilt, { recursive: true });
  fs.writeFileSync(path.join(prebuilt, "package.json"), "{}\\n");
} else if (mode === "offline") {
  process.stderr.write("npm error code ENOTFOUND\\nnpm error syscall getaddrinfo\\nnpm error errno ENOTFOUND\\n" +
    "npm error network request to https://registry.npmjs.org/node-llama-cpp failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org\\n");
  process.exit(1);
} else if (mode === "fail") {
  process.stderr.write("npm error code EACCES\\nnpm error permission denied, mkdir '" + prefix + "'\\n");
  process.exit(243);
} else if (mode === "hang" || mode === "hang-ignoring-term") {
  if (mode === "hang-ignoring-term") process.on("SIGTERM", () => {});
  process.stdout.write("fetching...\\n");
  setInterval(() => {}, 1000);
}
`;
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return {
    bin,
    path,
    runs: () =>
      existsSync(log)
        ? readFileSync(log, "utf8")
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line) as string[])
        : [],
    lastPid: () => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined),
  };
}
