/**
 * The terminal as a `Surface`: story text goes to standard output as it
 * streams (an edit that extends the last message prints only the new part),
 * choices become a numbered list, files are saved under the export folder.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Writable } from "node:stream";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import type {
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OutgoingFile,
  OutgoingImage,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";
import { ensureDir } from "../../src/store/ensure-dir.ts";

/** How much of an interrupted chapter the terminal shows again before continuing it. */
const RESUME_TAIL_CHARS = 80;

export class ConsoleSurface implements Surface {
  // A terminal has no message size and no edit rate limit.
  readonly limits: SurfaceLimits = { maxMessageLength: 1_000_000, minEditIntervalMs: 0 };
  /** The choices most recently shown, so a typed number can be matched to them. */
  lastOffer: ChoiceOffer | undefined;
  private readonly printed = new Map<string, string>();
  private lastId = "";
  private nextId = 1;
  private atLineStart = true;

  constructor(
    private readonly out: Writable,
    private readonly locale: Locale,
    private readonly exportDir: string,
  ) {}

  async post(text: string): Promise<MessageRef> {
    const id = String(this.nextId++);
    this.block(text);
    this.printed.set(id, text);
    this.lastId = id;
    return { id };
  }

  async adopt(messages: { ref: MessageRef; text: string }[]): Promise<void> {
    for (const m of messages) {
      this.printed.set(m.ref.id, m.text);
      this.nextId = Math.max(this.nextId, Number(m.ref.id) + 1 || this.nextId);
    }
    const last = messages.at(-1);
    if (last === undefined) return;
    // The terminal shows where the chapter stopped, then continues it on the same line.
    this.block(`${t(this.locale, "chapter.resuming")}\n…${last.text.slice(-RESUME_TAIL_CHARS)}`);
    this.printed.set(last.ref.id, last.text);
    this.lastId = last.ref.id;
  }

  async edit(ref: MessageRef, text: string): Promise<void> {
    const before = this.printed.get(ref.id) ?? "";
    if (ref.id === this.lastId && text.startsWith(before)) {
      this.write(text.slice(before.length));
    } else if (before !== "" && text.startsWith(before)) {
      // Something was printed since (a notice, the prompt): the rest follows below it.
      this.block(`…${text.slice(before.length)}`);
      this.lastId = ref.id;
    } else {
      this.block(text);
      this.lastId = ref.id;
    }
    this.printed.set(ref.id, text);
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    this.lastOffer = offer;
    const lines = offer.choices.map((c, i) => `  ${i + 1}. ${c}`);
    const prompt =
      offer.choices.length > 0
        ? t(this.locale, "choices.prompt", { range: `1-${offer.choices.length}` })
        : t(this.locale, "choices.noChoices");
    this.block([...lines, prompt].join("\n"));
    this.lastId = "";
    return { id: String(this.nextId++) };
  }

  // The terminal plays alone: a choice is taken at once, so there are no counts to
  // show and nothing to mark (the next chapter follows right below).
  async updateChoices(): Promise<void> {}

  async closeChoices(_ref: MessageRef, _offer: ChoiceOffer, _result: ChoiceResult): Promise<void> {}

  async typing(): Promise<void> {
    await this.notice(t(this.locale, "start.writing"));
  }

  async notice(text: string): Promise<void> {
    this.block(text);
    this.lastId = "";
  }

  /** The text already says to type /retry: the terminal has no buttons. */
  async failed(text: string): Promise<void> {
    await this.notice(text);
  }

  async sendFile(file: OutgoingFile): Promise<void> {
    const dir = resolve(this.exportDir);
    ensureDir(dir);
    const path = join(dir, file.name);
    writeFileSync(path, file.content);
    await this.notice(t(this.locale, "export.done", { path }));
  }

  /** A terminal cannot show the picture: it names the file the picture is saved in. */
  async postImage(image: OutgoingImage): Promise<MessageRef> {
    const id = String(this.nextId++);
    let path = image.path;
    if (path === undefined) {
      const dir = resolve(this.exportDir);
      ensureDir(dir);
      path = join(dir, image.name);
      writeFileSync(path, image.bytes);
    }
    this.block(`[${image.caption}]\n${t(this.locale, "illustrate.saved", { path })}`);
    this.lastId = "";
    return { id };
  }

  /** Shown before reading the next line. */
  prompt(): void {
    this.block("> ", false);
  }

  /** Start `text` on a fresh line, separated from what came before by a blank line. */
  private block(text: string, newline = true): void {
    if (!this.atLineStart) this.write("\n");
    this.write(newline ? `\n${text}` : text);
  }

  private write(text: string): void {
    if (text === "") return;
    this.out.write(text);
    this.atLineStart = text.endsWith("\n");
  }
}
