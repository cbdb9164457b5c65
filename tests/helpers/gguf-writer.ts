/**
 * A GGUF v3 writer for tests: a tiny llama-architecture model with seeded random F32
 * weights and a byte-level SentencePiece ("llama") vocabulary, with the metadata
 * llama.cpp needs to load it. The text it writes is gibberish by design; what it proves
 * is the flow (load, stream, grammar, cancel) through the real runtime, with no network.
 *
 * Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little-endian:
 *   "GGUF" u32 version=3 u64 tensor_count u64 kv_count
 *   kv*:     string key, u32 type, value
 *   tensor*: string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml_type, u64 offset
 *   padding to `general.alignment`, then each tensor's data at its (aligned) offset.
 * A string is u64 length + UTF-8 bytes; an array is u32 element type, u64 count, elements.
 */
import { writeFileSync } from "node:fs";

/** GGUF metadata value types. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** A typed metadata value (GGUF has no untyped numbers). */
export type GgufValue =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "u64"; value: bigint }
  | { type: "string[]"; value: string[] }
  | { type: "f32[]"; value: number[] }
  | { type: "i32[]"; value: number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: the innermost (contiguous) dimension first. */
  shape: number[];
  /** F32 data, `product(shape)` values. */
  data: Float32Array;
}

const GGML_TYPE_F32 = 0;

class ByteSink {
  readonly #chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void {
    this.#chunks.push(buf);
    this.length += buf.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: bigint | number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(alignment: number): void {
    const rest = this.length % alignment;
    if (rest !== 0) this.push(Buffer.alloc(alignment - rest));
  }
  concat(): Buffer {
    return Buffer.concat(this.#chunks, this.length);
  }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case "u32":
      out.u32(GgufType.UINT32);
      out.u32(v.value);
      return;
    case "i32":
      out.u32(GgufType.INT32);
      out.i32(v.value);
      return;
    case "f32":
      out.u32(GgufType.FLOAT32);
      out.f32(v.value);
      return;
    case "bool":
      out.u32(GgufType.BOOL);
      out.push(Buffer.from([v.value ? 1 : 0]));
      return;
    case "string":
      out.u32(GgufType.STRING);
      out.string(v.value);
      return;
    case "u64":
      out.u32(GgufType.UINT64);
      out.u64(v.value);
      return;
    case "string[]":
      out.u32(GgufType.ARRAY);
      out.u32(GgufType.STRING);
      out.u64(v.value.length);
      for (const s of v.value) out.string(s);
      return;
    case "f32[]":
      out.u32(GgufType.ARRAY);
      out.u32(GgufType.FLOAT32);
      out.u64(v.value.length);
      for (const x of v.value) out.f32(x);
      return;
    case "i32[]":
      out.u32(GgufType.ARRAY);
      out.u32(GgufType.INT32);
      out.u64(v.value.length);
      for (const x of v.value) out.i32(x);
      return;
  }
}

/** Serialise a GGUF v3 file: metadata in the given order, F32 tensors aligned to `alignment`. */
export function encodeGguf(metadata: Record<string, GgufValue>, tensors: GgufTensor[], alignment = 32): Buffer {
  const out = new ByteSink();
  out.push(Buffer.from("GGUF", "ascii"));
  out.u32(3);
  out.u64(tensors.length);
  const kv: [string, GgufValue][] = Object.entries(metadata);
  if (!("general.alignment" in metadata)) kv.push(["general.alignment", { type: "u32", value: alignment }]);
  out.u64(kv.length);
  for (const [key, value] of kv) {
    out.string(key);
    writeValue(out, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(`${t.name}: shape ${t.shape} wants ${count} values, has ${t.data.length}`);
    out.string(t.name);
    out.u32(t.shape.length);
    for (const d of t.shape) out.u64(d);
    out.u32(GGML_TYPE_F32);
    out.u64(offset);
    offsets.push(offset);
    offset += t.data.byteLength;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  out.pad(alignment);
  const dataStart = out.length;
  tensors.forEach((t, i) => {
    const want = dataStart + (offsets[i] ?? 0);
    if (out.length < want) out.push(Buffer.alloc(want - out.length));
    out.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
  out.pad(alignment);
  return out.concat();
}

/** Hyperparameters of the tiny llama model. */
export interface TinyLlamaOptions {
  embedding: number;
  layers: number;
  heads: number;
  kvHeads: number;
  feedForward: number;
  contextLength: number;
  seed: number;
  /** Standard deviation-ish scale of the random weights. */
  scale: number;
  /**
   * Token ids the model should pick far more often than the rest (a `"` ends a JSON
   * string sooner, so grammar-constrained answers finish within a few hundred tokens).
   * Done by giving every embedding a large constant first component, which dominates the
   * normalised last hidden state, and giving only these tokens' output rows weight on it.
   */
  favour: number[];
  /** How strongly: about the favoured tokens' logit (the rest sit near 0); 3.5 makes a 260-token vocabulary pick one about one time in eight. */
  favourLogit: number;
  /**
   * Per-token logits that override `favourLogit` (and favour tokens not in `favour`): an
   * end-of-sequence token at about 1 ends free prose after a hundred tokens or so, while a
   * grammar still holds it back until the JSON is complete.
   */
  favourLogits: Record<number, number>;
}

export const TINY_LLAMA_DEFAULTS: TinyLlamaOptions = {
  embedding: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  feedForward: 128,
  contextLength: 1024,
  seed: 1,
  scale: 0.5,
  favour: [],
  favourLogit: 3.5,
  favourLogits: {},
};

/**
 * The byte-level vocabulary: <unk>, <s>, </s>, <0x00>..<0xFF>, then "▁" (SentencePiece's
 * space, so a space round-trips as a space rather than as the bytes of U+2581).
 */
export const TINY_VOCAB = {
  unk: 0,
  bos: 1,
  eos: 2,
  firstByte: 3,
  space: 3 + 256,
  size: 3 + 256 + 1,
} as const;

/** mulberry32: a small seeded PRNG, so the same options give the same file. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The metadata and tensors of a tiny random llama (see `writeTinyLlamaGguf`). */
export function tinyLlama(options: Partial<TinyLlamaOptions> = {}): {
  metadata: Record<string, GgufValue>;
  tensors: GgufTensor[];
} {
  const o = { ...TINY_LLAMA_DEFAULTS, ...options };
  if (o.embedding % o.heads !== 0) throw new Error("embedding must be a multiple of heads");
  if (o.heads % o.kvHeads !== 0) throw new Error("heads must be a multiple of kvHeads");
  const headDim = o.embedding / o.heads;
  const kvDim = headDim * o.kvHeads;
  const rand = random(o.seed);
  const weights = (shape: number[]): Float32Array => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const s = o.scale / Math.sqrt(shape[0] ?? 1);
    for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * s * Math.sqrt(3);
    return data;
  };
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);

  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6); // BYTE
  }
  tokens.push("\u2581");
  types.push(1); // NORMAL
  const scores = tokens.map(() => 0);

  const metadata: Record<string, GgufValue> = {
    "general.architecture": { type: "string", value: "llama" },
    "general.name": { type: "string", value: "inkloom-tiny-random-llama" },
    "general.file_type": { type: "u32", value: 0 }, // ALL_F32
    "llama.context_length": { type: "u32", value: o.contextLength },
    "llama.embedding_length": { type: "u32", value: o.embedding },
    "llama.block_count": { type: "u32", value: o.layers },
    "llama.feed_forward_length": { type: "u32", value: o.feedForward },
    "llama.attention.head_count": { type: "u32", value: o.heads },
    "llama.attention.head_count_kv": { type: "u32", value: o.kvHeads },
    "llama.rope.dimension_count": { type: "u32", value: headDim },
    "llama.rope.freq_base": { type: "f32", value: 10000 },
    "llama.attention.layer_norm_rms_epsilon": { type: "f32", value: 1e-5 },
    "llama.vocab_size": { type: "u32", value: TINY_VOCAB.size },
    "tokenizer.ggml.model": { type: "string", value: "llama" },
    "tokenizer.ggml.tokens": { type: "string[]", value: tokens },
    "tokenizer.ggml.scores": { type: "f32[]", value: scores },
    "tokenizer.ggml.token_type": { type: "i32[]", value: types },
    "tokenizer.ggml.bos_token_id": { type: "u32", value: TINY_VOCAB.bos },
    "tokenizer.ggml.eos_token_id": { type: "u32", value: TINY_VOCAB.eos },
    "tokenizer.ggml.unknown_token_id": { type: "u32", value: TINY_VOCAB.unk },
    "tokenizer.ggml.add_bos_token": { type: "bool", value: true },
    "tokenizer.ggml.add_eos_token": { type: "bool", value: false },
    "tokenizer.ggml.add_space_prefix": { type: "bool", value: false },
  };

  const e = o.embedding;
  const embeddings = weights([e, TINY_VOCAB.size]);
  const tensors: GgufTensor[] = [{ name: "token_embd.weight", shape: [e, TINY_VOCAB.size], data: embeddings }];
  for (let l = 0; l < o.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      { name: `${p}attn_norm.weight`, shape: [e], data: ones(e) },
      { name: `${p}attn_q.weight`, shape: [e, e], data: weights([e, e]) },
      { name: `${p}attn_k.weight`, shape: [e, kvDim], data: weights([e, kvDim]) },
      { name: `${p}attn_v.weight`, shape: [e, kvDim], data: weights([e, kvDim]) },
      { name: `${p}attn_output.weight`, shape: [e, e], data: weights([e, e]) },
      { name: `${p}ffn_norm.weight`, shape: [e], data: ones(e) },
      { name: `${p}ffn_gate.weight`, shape: [e, o.feedForward], data: weights([e, o.feedForward]) },
      { name: `${p}ffn_up.weight`, shape: [e, o.feedForward], data: weights([e, o.feedForward]) },
      { name: `${p}ffn_down.weight`, shape: [o.feedForward, e], data: weights([o.feedForward, e]) },
    );
  }
  const output = weights([e, TINY_VOCAB.size]);
  if (o.favour.length > 0 || Object.keys(o.favourLogits).length > 0) {
    // ne0 is the embedding: token t's row starts at t * e.
    for (let t = 0; t < TINY_VOCAB.size; t++) {
      embeddings[t * e] = 10;
      // The normalised first component is about 7.3 (10 against ~0.3 elsewhere, over 64 dims).
      const logit = o.favourLogits[t] ?? (o.favour.includes(t) ? o.favourLogit : 0);
      output[t * e] = logit / 16;
    }
  }
  tensors.push(
    { name: "output_norm.weight", shape: [e], data: ones(e) },
    { name: "output.weight", shape: [e, TINY_VOCAB.size], data: output },
  );
  return { metadata, tensors };
}

/** Write a tiny random llama GGUF to `path`; returns its size in bytes. */
export function writeTinyLlamaGguf(path: string, options: Partial<TinyLlamaOptions> = {}): number {
  const { metadata, tensors } = tinyLlama(options);
  const bytes = encodeGguf(metadata, tensors);
  writeFileSync(path, bytes);
  return bytes.length;
}

/** Which weight matrices of each block a tiny LoRA adapter changes. */
export type LoraTarget = "attn_q" | "attn_k" | "attn_v" | "attn_output" | "ffn_gate" | "ffn_up" | "ffn_down";

/** A tiny LoRA adapter for the tiny llama (see `writeTinyLoraGguf`). */
export interface TinyLoraOptions {
  /** The matrices it adapts, in every block (default: attn_q only). */
  targets: LoraTarget[];
  /** Rank r of each A·B pair. */
  rank: number;
  /** `adapter.lora.alpha`: llama.cpp scales the update by alpha / rank. */
  alpha: number;
  seed: number;
  /** Scale of the random A and B values: large makes the adapted model's output certain to differ. */
  scale: number;
}

export const TINY_LORA_DEFAULTS: TinyLoraOptions = { targets: ["attn_q"], rank: 4, alpha: 4, seed: 2, scale: 1 };

/**
 * The metadata and tensors of a LoRA adapter for `tinyLlama(base)`: `general.type =
 * adapter`, `adapter.type = lora`, and per adapted matrix W of shape [n_in, n_out] (ggml
 * order) a `<W>.lora_a` of shape [n_in, r] and a `<W>.lora_b` of shape [r, n_out], as
 * llama.cpp's convert_lora_to_gguf.py writes them and llama.cpp checks them
 * (llama-adapter.cpp: a->ne[0] = W->ne[0], b->ne[1] = W->ne[1], a->ne[1] = b->ne[0]).
 * The update is W + (alpha / r) · B·A, applied by the runtime when a context is created
 * with the adapter.
 */
export function tinyLora(
  base: Partial<TinyLlamaOptions> = {},
  options: Partial<TinyLoraOptions> = {},
): { metadata: Record<string, GgufValue>; tensors: GgufTensor[] } {
  const b = { ...TINY_LLAMA_DEFAULTS, ...base };
  const o = { ...TINY_LORA_DEFAULTS, ...options };
  const e = b.embedding;
  const kvDim = (e / b.heads) * b.kvHeads;
  const shapes: Record<LoraTarget, [number, number]> = {
    attn_q: [e, e],
    attn_k: [e, kvDim],
    attn_v: [e, kvDim],
    attn_output: [e, e],
    ffn_gate: [e, b.feedForward],
    ffn_up: [e, b.feedForward],
    ffn_down: [b.feedForward, e],
  };
  const rand = random(o.seed);
  const weights = (n: number): Float32Array => {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * o.scale;
    return data;
  };
  const metadata: Record<string, GgufValue> = {
    "general.architecture": { type: "string", value: "llama" },
    "general.type": { type: "string", value: "adapter" },
    "general.name": { type: "string", value: "inkloom-tiny-lora" },
    "adapter.type": { type: "string", value: "lora" },
    "adapter.lora.alpha": { type: "f32", value: o.alpha },
  };
  const tensors: GgufTensor[] = [];
  for (let l = 0; l < b.layers; l++) {
    for (const target of o.targets) {
      const [nIn, nOut] = shapes[target];
      const name = `blk.${l}.${target}.weight`;
      tensors.push(
        { name: `${name}.lora_a`, shape: [nIn, o.rank], data: weights(nIn * o.rank) },
        { name: `${name}.lora_b`, shape: [o.rank, nOut], data: weights(o.rank * nOut) },
      );
    }
  }
  return { metadata, tensors };
}

/** Write a tiny LoRA adapter for the tiny llama of `base` to `path`; returns its size in bytes. */
export function writeTinyLoraGguf(
  path: string,
  base: Partial<TinyLlamaOptions> = {},
  options: Partial<TinyLoraOptions> = {},
): number {
  const { metadata, tensors } = tinyLora(base, options);
  const bytes = encodeGguf(metadata, tensors);
  writeFileSync(path, bytes);
  return bytes.length;
}
