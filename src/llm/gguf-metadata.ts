/**
 * The metadata of a GGUF file, read without the runtime: enough to tell a model from a
 * LoRA adapter (`general.type`, `adapter.type`) and to compare architectures, at start,
 * before node-llama-cpp is imported (./local-runtime.ts is loaded on demand).
 *
 * Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little-endian:
 * "GGUF", u32 version (2 or 3), u64 tensor count, u64 key-value count, then each key
 * (u64 length + UTF-8), its u32 value type and its value. Only scalars and strings are
 * kept; arrays (a tokenizer's vocabulary: megabytes) are skipped, and so are the tensors.
 * The file is read in small chunks, never whole.
 */
import { closeSync, openSync, readSync } from "node:fs";

/** A metadata value as kept: arrays are skipped (recorded as `undefined` under their key). */
export type GgufScalar = string | number | bigint | boolean | undefined;

export class GgufFormatError extends Error {
  override readonly name = "GgufFormatError";
}

/** Limits that keep a damaged or hostile header from being read for ever. */
const MAX_KEYS = 100_000;
const MAX_STRING_BYTES = 16 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** Sizes of the fixed-width value types, by GGUF type id. */
const FIXED: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

/** Reads a file front to back through a small buffer. */
class Cursor {
  readonly #fd: number;
  /** Bytes of the file from offset `#base`; the next byte to read is `#buffer[#at]`. */
  #buffer = Buffer.alloc(0);
  #base = 0;
  #at = 0;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** The next `n` bytes. */
  take(n: number): Buffer {
    if (this.#at + n > this.#buffer.length) this.#fill(n);
    const out = this.#buffer.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  skip(n: number): void {
    if (this.#at + n <= this.#buffer.length) {
      this.#at += n;
      return;
    }
    this.#base += this.#at + n;
    this.#buffer = Buffer.alloc(0);
    this.#at = 0;
  }

  /** Read at least `n` bytes from the current position into a fresh buffer. */
  #fill(n: number): void {
    const position = this.#base + this.#at;
    const next = Buffer.alloc(Math.max(n, CHUNK_BYTES));
    let filled = 0;
    for (;;) {
      const read = readSync(this.#fd, next, filled, next.length - filled, position + filled);
      filled += read;
      if (read === 0 || filled >= n) break;
    }
    if (filled < n) throw new GgufFormatError("the file ends inside its header (truncated?)");
    this.#buffer = next.subarray(0, filled);
    this.#base = position;
    this.#at = 0;
  }

  u32(): number {
    return this.take(4).readUInt32LE(0);
  }

  u64(): bigint {
    return this.take(8).readBigUInt64LE(0);
  }

  /** A u64 that must be a sane count or length. */
  count(what: string, max: number): number {
    const n = this.u64();
    if (n > BigInt(max)) throw new GgufFormatError(`${what} is ${n}, more than ${max} (damaged header?)`);
    return Number(n);
  }

  string(): string {
    const length = this.count("a string's length", MAX_STRING_BYTES);
    return this.take(length).toString("utf8");
  }
}

function readValue(cursor: Cursor, type: number): GgufScalar {
  switch (type) {
    case 0:
      return cursor.take(1).readUInt8(0);
    case 1:
      return cursor.take(1).readInt8(0);
    case 2:
      return cursor.take(2).readUInt16LE(0);
    case 3:
      return cursor.take(2).readInt16LE(0);
    case 4:
      return cursor.u32();
    case 5:
      return cursor.take(4).readInt32LE(0);
    case 6:
      return cursor.take(4).readFloatLE(0);
    case 7:
      return cursor.take(1).readUInt8(0) !== 0;
    case STRING:
      return cursor.string();
    case 10:
      return cursor.u64();
    case 11:
      return cursor.take(8).readBigInt64LE(0);
    case 12:
      return cursor.take(8).readDoubleLE(0);
    case ARRAY: {
      const itemType = cursor.u32();
      const count = cursor.count("an array's length", Number.MAX_SAFE_INTEGER);
      if (itemType === STRING) {
        for (let i = 0; i < count; i++) cursor.skip(cursor.count("a string's length", MAX_STRING_BYTES));
      } else {
        const size = FIXED[itemType];
        if (size === undefined) throw new GgufFormatError(`unknown array item type ${itemType}`);
        cursor.skip(size * count);
      }
      return undefined;
    }
    default:
      throw new GgufFormatError(`unknown value type ${type}`);
  }
}

/** The GGUF version and metadata of the file at `path`. Throws `GgufFormatError` (or a file system error). */
export function readGgufMetadata(path: string): { version: number; metadata: Map<string, GgufScalar> } {
  const fd = openSync(path, "r");
  try {
    const cursor = new Cursor(fd);
    let magic: string;
    try {
      magic = cursor.take(4).toString("latin1");
    } catch {
      throw new GgufFormatError("not a GGUF file (too short)");
    }
    if (magic !== "GGUF") throw new GgufFormatError("not a GGUF file (no GGUF magic at its start)");
    const version = cursor.u32();
    if (version !== 2 && version !== 3) throw new GgufFormatError(`GGUF version ${version} is not supported`);
    cursor.u64(); // tensor count
    const keys = cursor.count("the number of metadata keys", MAX_KEYS);
    const metadata = new Map<string, GgufScalar>();
    for (let i = 0; i < keys; i++) {
      const key = cursor.string();
      metadata.set(key, readValue(cursor, cursor.u32()));
    }
    return { version, metadata };
  } finally {
    closeSync(fd);
  }
}
