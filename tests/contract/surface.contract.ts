/**
 * The `Surface` contract (src/render/surface.ts), run against every implementation: the
 * terminal, Telegram and Discord (the real telegraf and discord.js clients against the
 * platform fakes) and the test fake. Each suite gets a fresh world per test.
 */
import { afterEach, describe, expect, it } from "vitest";
import { genreRows } from "../../src/render/offer-layout.ts";
import { StreamRenderer } from "../../src/render/stream-renderer.ts";
import type { MessageRef, Surface } from "../../src/render/surface.ts";

/** One conversation on one implementation, and what its reader sees. */
export interface SurfaceWorld {
  surface: Surface;
  /** The text of every message the reader sees now, oldest first (the terminal: its transcript). */
  visible(): Promise<string[]>;
  /** Labels of the buttons a reader can press now (none in the terminal). */
  buttons(): Promise<string[]>;
  /** Pictures shown so far. */
  pictures(): Promise<number>;
  /** Delete a posted message as a moderator would; absent where nothing can be deleted. */
  remove?: (ref: MessageRef) => Promise<void>;
  close(): Promise<void>;
}

const collapse = (text: string) => text.replace(/\s+/g, " ").trim();

/** A chapter of numbered sentences in paragraphs, at least `length` characters long. */
function chapter(length: number): string {
  const paragraphs: string[] = [];
  let n = 0;
  let size = 0;
  while (size < length) {
    const sentences = Array.from({ length: 6 }, () => `Sentence ${++n} of the chapter goes on a little.`);
    const paragraph = sentences.join(" ");
    paragraphs.push(paragraph);
    size += paragraph.length + 2;
  }
  return `Chapter 1\n\n${paragraphs.join("\n\n")}`;
}

/** Push `text` in small pieces, as a model streams it. */
async function stream(renderer: StreamRenderer, text: string): Promise<void> {
  for (let i = 0; i < text.length; i += 37) {
    renderer.push(text.slice(i, i + 37));
    if (i % 370 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Registers the contract's tests for one implementation. `deletable`: the platform lets a
 * moderator delete the bot's messages (not the terminal, which cannot unprint).
 * `genreButtons`: its buttons carry /start's genres (Telegram, the fake).
 */
export function surfaceContract(
  name: string,
  open: () => Promise<SurfaceWorld>,
  capabilities: { deletable: boolean; genreButtons: boolean },
): void {
  describe(`Surface contract: ${name}`, { timeout: 30_000 }, () => {
    let world: SurfaceWorld | undefined;
    const start = async () => {
      world = await open();
      return world;
    };
    afterEach(async () => {
      await world?.close();
      world = undefined;
    });

    it("a streamed chapter ends as its whole text, once, split into messages within the limit", async () => {
      const { surface, visible } = await start();
      const limit = surface.limits.maxMessageLength;
      const text = chapter(limit < 10_000 ? Math.round(limit * 2.3) : 3000);
      const renderer = new StreamRenderer(surface);
      await stream(renderer, text);
      const messages = await renderer.finish();

      const shown = await visible();
      for (const m of shown) expect(m.length).toBeLessThanOrEqual(limit);
      if (limit < 10_000) expect(messages.length).toBeGreaterThan(1);
      const all = collapse(shown.join(" "));
      expect(all).toContain(collapse(text));
      expect(all.split("Sentence 1 of the chapter").length).toBe(2);
    });

    it("an offer shows every choice; once closed, none is left to press", async () => {
      const { surface, visible, buttons } = await start();
      const labels = ["Open the letter", "Follow the stranger", "Go home"];
      const offer = { storyId: "story1", revision: 3, choices: labels, allowWriteIn: true, mode: "pick" as const };
      const ref = await surface.offerChoices(offer);
      const seen = `${(await visible()).join("\n")}\n${(await buttons()).join("\n")}`;
      for (const label of labels) expect(seen).toContain(label);

      await surface.closeChoices(ref, offer, { chosen: 2, label: "Follow the stranger" });
      const left = await buttons();
      for (const label of labels) expect(left.some((b) => b.includes(label))).toBe(false);
    });

    it("a question is shown with its answers: buttons where readers press, a list where they type", async () => {
      const { surface, visible, buttons } = await start();
      const rows = genreRows("en");
      const labels = rows.flat().map((b) => b.label);
      const prompt = { text: "Pick a genre", rows, reply: false };
      if (surface.ask !== undefined) await surface.ask(prompt);
      else await surface.notice(prompt.text);
      expect((await visible()).join("\n")).toContain("Pick a genre");
      const pressable = await buttons();
      // Where buttons carry genres every genre is one; elsewhere (Discord takes the genre as a
      // /start option, the terminal has no buttons) none is, and nothing breaks.
      const expected = capabilities.genreButtons ? labels : [];
      expect(labels.filter((l) => pressable.includes(l))).toEqual(expected);
      expect(surface.answers?.buttons === true || !capabilities.genreButtons).toBe(true);
      if (surface.answers?.replies === true && surface.ask !== undefined) {
        const asked = await surface.ask({ text: "Reply with your scenario", rows: [], reply: true });
        expect(asked?.id).toMatch(/\S/);
        expect((await visible()).join("\n")).toContain("Reply with your scenario");
      }
    });

    it("a picture posted after its passage is shown", async () => {
      const { surface, pictures } = await start();
      const passage = await surface.post("Chapter 1\n\nThe lamp turned.");
      const png = Buffer.from(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC",
        "base64",
      );
      await surface.postImage({
        name: "chapter-1.png",
        bytes: new Uint8Array(png),
        mime: "image/png",
        caption: "The lamp",
        replyTo: passage,
      });
      expect(await pictures()).toBe(1);
    });

    if (!capabilities.deletable) return;
    it("a message deleted mid-stream: the rest of the chapter still reaches the reader", async () => {
      const opened = await start();
      const { remove } = opened;
      if (remove === undefined) throw new Error(`${name} is deletable but its world cannot remove a message`);
      const posted: MessageRef[] = [];
      const surface: Surface = Object.create(opened.surface, {
        post: {
          value: async (text: string) => {
            const ref = await opened.surface.post(text);
            posted.push(ref);
            return ref;
          },
        },
      });
      const renderer = new StreamRenderer(surface);
      renderer.push("Chapter 1\n\nThe first words.");
      while (posted.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const first = posted[0];
      if (first !== undefined) await remove(first);
      renderer.push(" The rest of the chapter, after the deletion.");
      await renderer.finish();
      const all = collapse((await opened.visible()).join(" "));
      expect(all).toContain("The rest of the chapter, after the deletion.");
    });
  });
}
