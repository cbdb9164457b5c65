/**
 * The tiny-GGUF writer (tests/helpers/gguf-writer.ts), read back with a small GGUF v3
 * reader here: header, metadata, tensor infos, and every tensor's data aligned and in
 * bounds. Runs without the local runtime; loading the file in the real runtime is
 * tests/local-model/tiny-llama.local.test.ts (opt-in: `npm run test:local`).
 */
import { describe, expect, it } from "vitest";
import {
  encodeGguf,
  GgufType,
  TINY_LLAMA_DEFAULTS,
  TINY_LORA_DEFAULTS,
  TINY_VOCAB,
  tinyLlama,
  tinyLora,
} from "../helpers/gguf-writer.ts";

interface ReadTensor {
  name: string;
  shape: number[];
  type: number;
  offset: number;
}

function readGguf(buf: Buffer): {
  version: number;
  metadata: Map<string, unknown>;
  tensors: ReadTensor[];
  dataStart: number;
} {
  let at = 0;
  const u32 = () => {
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const u64 = () => {
    const v = Number(buf.readBigUInt64LE(at));
    at += 8;
    return v;
  };
  const str = () => {
    const n = u64();
    const s = buf.toString("utf8", at, at + n);
    at += n;
    return s;
  };
  const value = (type: number): unknown => {
    switch (type) {
      case GgufType.UINT32:
        return u32();
      case GgufType.INT32: {
        const v = buf.readInt32LE(at);
        at += 4;
        return v;
      }
      case GgufType.FLOAT32: {
        const v = buf.readFloatLE(at);
        at += 4;
        return v;
      }
      case GgufType.BOOL:
        return buf[at++] === 1;
      case GgufType.STRING:
        return str();
      case GgufType.UINT64:
        return u64();
      case GgufType.ARRAY: {
        const inner = u32();
        const n = u64();
        return Array.from({ length: n }, () => value(inner));
      }
      default:
        throw new Error(`type ${type} not read here`);
    }
  };
  expect(buf.toString("ascii", 0, 4)).toBe("GGUF");
  at = 4;
  const version = u32();
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  const tensors: ReadTensor[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const dims = u32();
    const shape = Array.from({ length: dims }, () => u64());
    tensors.push({ name, shape, type: u32(), offset: u64() });
  }
  const alignment = Number(metadata.get("general.alignment") ?? 32);
  const dataStart = Math.ceil(at / alignment) * alignment;
  return { version, metadata, tensors, dataStart };
}

describe("the tiny GGUF writer", () => {
  const { metadata, tensors } = tinyLlama();
  const file = encodeGguf(metadata, tensors);
  const read = readGguf(file);

  it("writes a GGUF v3 header with llama metadata and the byte-level vocabulary", () => {
    expect(read.version).toBe(3);
    expect(read.metadata.get("general.architecture")).toBe("llama");
    expect(read.metadata.get("general.alignment")).toBe(32);
    expect(read.metadata.get("llama.embedding_length")).toBe(TINY_LLAMA_DEFAULTS.embedding);
    expect(read.metadata.get("llama.block_count")).toBe(TINY_LLAMA_DEFAULTS.layers);
    expect(read.metadata.get("llama.rope.dimension_count")).toBe(
      TINY_LLAMA_DEFAULTS.embedding / TINY_LLAMA_DEFAULTS.heads,
    );
    const tokens = read.metadata.get("tokenizer.ggml.tokens") as string[];
    expect(tokens).toHaveLength(TINY_VOCAB.size);
    expect(tokens[TINY_VOCAB.firstByte + 0x41]).toBe("<0x41>");
    expect(tokens[TINY_VOCAB.space]).toBe("\u2581");
    expect(read.metadata.get("tokenizer.ggml.scores")).toHaveLength(TINY_VOCAB.size);
    expect(read.metadata.get("tokenizer.ggml.token_type")).toHaveLength(TINY_VOCAB.size);
    expect(read.metadata.get("tokenizer.ggml.bos_token_id")).toBe(TINY_VOCAB.bos);
    expect(read.metadata.get("tokenizer.ggml.eos_token_id")).toBe(TINY_VOCAB.eos);
  });

  it("lays out every llama tensor as aligned F32 data inside the file", () => {
    const names = read.tensors.map((t) => t.name);
    expect(names[0]).toBe("token_embd.weight");
    for (const part of [
      "attn_norm",
      "attn_q",
      "attn_k",
      "attn_v",
      "attn_output",
      "ffn_norm",
      "ffn_gate",
      "ffn_up",
      "ffn_down",
    ]) {
      for (let l = 0; l < TINY_LLAMA_DEFAULTS.layers; l++) expect(names).toContain(`blk.${l}.${part}.weight`);
    }
    expect(names).toContain("output_norm.weight");
    expect(names).toContain("output.weight");
    expect(read.dataStart % 32).toBe(0);
    read.tensors.forEach((t, i) => {
      expect(t.type).toBe(0);
      expect(t.offset % 32).toBe(0);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
      expect(read.dataStart + t.offset + bytes).toBeLessThanOrEqual(file.length);
      // The data written is the tensor's own: its first value reads back.
      const first = file.readFloatLE(read.dataStart + t.offset);
      expect(first).toBeCloseTo(tensors[i]?.data[0] ?? Number.NaN, 6);
    });
  });

  it("is deterministic for a seed", () => {
    const again = tinyLlama();
    expect(encodeGguf(again.metadata, again.tensors).equals(file)).toBe(true);
    const other = tinyLlama({ seed: 2 });
    expect(encodeGguf(other.metadata, other.tensors).equals(file)).toBe(false);
  });
});

describe("the tiny LoRA adapter writer", () => {
  it("writes an adapter header and, per adapted matrix, lora_a [n_in, r] and lora_b [r, n_out]", () => {
    const base = { embedding: 32, heads: 4, kvHeads: 2, feedForward: 48, layers: 2 };
    const { metadata, tensors } = tinyLora(base, { targets: ["attn_q", "attn_v", "ffn_down"], rank: 3, alpha: 6 });
    const file = encodeGguf(metadata, tensors);
    const read = readGguf(file);
    expect(read.metadata.get("general.type")).toBe("adapter");
    expect(read.metadata.get("general.architecture")).toBe("llama");
    expect(read.metadata.get("adapter.type")).toBe("lora");
    expect(read.metadata.get("adapter.lora.alpha")).toBe(6);
    const shapes = Object.fromEntries(read.tensors.map((t) => [t.name, t.shape]));
    // The base model's matrices are [n_in, n_out] in ggml order: attn_q [32, 32], attn_v [32, 16], ffn_down [48, 32].
    expect(shapes["blk.1.attn_q.weight.lora_a"]).toEqual([32, 3]);
    expect(shapes["blk.1.attn_q.weight.lora_b"]).toEqual([3, 32]);
    expect(shapes["blk.0.attn_v.weight.lora_a"]).toEqual([32, 3]);
    expect(shapes["blk.0.attn_v.weight.lora_b"]).toEqual([3, 16]);
    expect(shapes["blk.0.ffn_down.weight.lora_a"]).toEqual([48, 3]);
    expect(shapes["blk.0.ffn_down.weight.lora_b"]).toEqual([3, 32]);
    expect(read.tensors).toHaveLength(2 * 3 * 2);
    for (const t of read.tensors) expect(t.type).toBe(0);
  });

  it("adapts attn_q alone by default, deterministically for a seed", () => {
    const a = tinyLora();
    expect(a.tensors.map((t) => t.name)).toEqual(
      Array.from({ length: TINY_LLAMA_DEFAULTS.layers }, (_, l) => [
        `blk.${l}.attn_q.weight.lora_a`,
        `blk.${l}.attn_q.weight.lora_b`,
      ]).flat(),
    );
    expect(a.tensors[0]?.shape).toEqual([TINY_LLAMA_DEFAULTS.embedding, TINY_LORA_DEFAULTS.rank]);
    const again = tinyLora();
    expect(encodeGguf(again.metadata, again.tensors).equals(encodeGguf(a.metadata, a.tensors))).toBe(true);
  });
});
