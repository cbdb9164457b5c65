/**
 * Where illustrations are kept: one folder per story under the image directory
 * (IMAGE_DIR, ./data/images by default). A file is written to a temporary name and
 * renamed, so a crash never leaves half a picture under the real name.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { ensureDir } from "../store/ensure-dir.ts";

const EXTENSIONS: Record<string, string> = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp" };

export function extensionFor(mime: string): string {
  return EXTENSIONS[mime] ?? "png";
}

export class ImageStore {
  readonly root: string;

  constructor(dir: string) {
    this.root = resolve(dir);
  }

  /** Save a picture; returns its path relative to the root (what the database keeps). */
  save(storyId: string, name: string, bytes: Uint8Array, mime: string): string {
    const folder = join(this.root, safe(storyId));
    ensureDir(folder);
    const file = `${safe(name)}.${extensionFor(mime)}`;
    const temp = join(folder, `.${file}.${process.pid}.tmp`);
    writeFileSync(temp, bytes);
    renameSync(temp, join(folder, file));
    return relative(this.root, join(folder, file)).split(sep).join("/");
  }

  /** Absolute path of a stored picture (refuses paths that leave the root). */
  path(stored: string): string {
    const full = resolve(this.root, stored);
    if (full !== this.root && !full.startsWith(`${this.root}${sep}`))
      throw new Error(`image path outside the store: ${stored}`);
    return full;
  }

  /** The bytes of a stored picture, or undefined when the file is gone. */
  read(stored: string): Uint8Array | undefined {
    if (stored === "") return undefined;
    const full = this.path(stored);
    return existsSync(full) ? readFileSync(full) : undefined;
  }
}

function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 80) || "_";
}
