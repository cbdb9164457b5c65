/** Character cards made in tests: a tiny PNG, and V2 / V3 cards with a book. */
import { deflateSync } from "node:zlib";
import { crc32, writeCardPng } from "../../src/story/character-card.ts";

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.byteLength, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A valid 1×1 grey PNG with no card. */
export function plainPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.from([0, 0x80]))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A V2 card for Mara Vell, with a two-entry book and an unknown extension. */
export function v2Card(overrides: Record<string, unknown> = {}) {
  return {
    spec: "chara_card_v2",
    spec_version: "2.0",
    data: {
      name: "Mara Vell",
      description: "Short black hair, a grey coat, a silver ring on her left hand.",
      personality: "Dry humour, fiercely loyal, afraid of deep water.",
      scenario: "{{char}} keeps the lighthouse on Gull Rock; {{user}} washes ashore in a storm.",
      first_mes: "{{char}} hauls you out of the surf and says: 'You're late.'",
      mes_example: "",
      creator_notes: "",
      system_prompt: "",
      post_history_instructions: "",
      alternate_greetings: [],
      tags: ["mystery"],
      creator: "test",
      character_version: "1",
      extensions: { depth_prompt: { depth: 4, prompt: "keep it eerie" }, world: "gull-rock" },
      character_book: {
        name: "Gull Rock",
        extensions: { book_flag: true },
        entries: [
          {
            keys: ["lighthouse", "lamp"],
            content: "The Gull Rock lighthouse lamp has not been lit since 1921.",
            extensions: { weight: 7 },
            enabled: true,
            insertion_order: 5,
            constant: false,
            comment: "the lamp",
          },
          {
            keys: ["Gull Rock"],
            content: "Gull Rock is an island of slate cliffs and drowned bells.",
            extensions: {},
            enabled: true,
            insertion_order: 20,
            constant: true,
          },
          { keys: ["unused"], content: "Disabled entry.", extensions: {}, enabled: false, insertion_order: 1 },
        ],
      },
      ...overrides,
    },
  };
}

/** A V3 card for Orrin Hale (JSON), with a regex key. */
export function v3Card(overrides: Record<string, unknown> = {}) {
  return {
    spec: "chara_card_v3",
    spec_version: "3.0",
    data: {
      name: "Orrin Hale",
      description: "Tall, weathered, a brass spyglass always at his belt.",
      personality: "Patient, secretive, speaks in sea proverbs.",
      scenario: "A harbour town where ships vanish in clear weather.",
      first_mes: "Orrin lowers his spyglass. 'Another one gone.'",
      mes_example: "",
      creator_notes: "",
      system_prompt: "",
      post_history_instructions: "",
      alternate_greetings: [],
      group_only_greetings: [],
      tags: [],
      creator: "test",
      character_version: "3",
      nickname: "the Watcher",
      extensions: { "x-inkloom-test": { keep: [1, 2, 3] } },
      character_book: {
        extensions: {},
        entries: [
          {
            keys: ["spy\\s?glass"],
            content: "Orrin's spyglass shows ships that are not there yet.",
            extensions: { scan: "deep" },
            enabled: true,
            insertion_order: 3,
            use_regex: true,
            constant: false,
          },
        ],
      },
      ...overrides,
    },
  };
}

/** `card` inside a PNG's `chara` (V2) or `ccv3` (V3) chunk. */
export function cardPng(card: { spec: string }): Buffer {
  const spec = card.spec === "chara_card_v3" ? "chara_card_v3" : "chara_card_v2";
  return writeCardPng(plainPng(), JSON.stringify(card), spec);
}
