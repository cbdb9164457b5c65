import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

/**
 * mkdir -p, one level at a time. Node 20's recursive mkdirSync never returns on
 * some unwritable paths (seen under /proc), which would hang instead of
 * reporting the problem.
 */
export function ensureDir(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) ensureDir(parent);
  mkdirSync(dir);
}
