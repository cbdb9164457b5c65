/**
 * Turns streamed story text into posts and edits on a `Surface`, within its limits.
 *
 * - The first text is posted at once, so the reader sees the chapter start quickly.
 * - After that the current message is edited at most once per
 *   `limits.minEditIntervalMs` (a trailing edit carries the latest text; deltas
 *   arriving in between are coalesced). The interval is counted between the
 *   starts of two surface calls.
 * - Surface calls are serialized: never two in flight.
 * - A message about to exceed `limits.maxMessageLength` is finalized at the best
 *   split point (see `findCut`) and the rest continues in a new message.
 * - A failed edit is retried once as a fresh post (the message may have been
 *   deleted). A failed post stops the renderer: nothing later is sent out of
 *   order, and `finish()` rejects with that error.
 *
 * Timers are the global `setTimeout`/`Date.now`, so vitest fake timers drive it.
 */
import { findCut } from "./split.ts";
import type { MessageRef, Surface } from "./surface.ts";

export interface RenderedMessage {
  ref: MessageRef;
  /** The message's final text. */
  text: string;
}

export class StreamRenderer {
  /** Finalized messages, in order. */
  private readonly finalized: RenderedMessage[] = [];
  /** Full text of the current message, sent or not. */
  private text = "";
  /** Current message and the text it shows. */
  private current: RenderedMessage | undefined;
  private lastCallAt = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private ending: Promise<RenderedMessage[]> | undefined;

  constructor(
    private readonly surface: Surface,
    /** Called after the surface took new text, with every message as shown now (to save progress). */
    private readonly onShown?: (messages: RenderedMessage[]) => void,
  ) {}

  /**
   * Continue messages an earlier process posted (a chapter resumed after a restart): the
   * last one is edited as text arrives, instead of posting a second copy. Call before `push`.
   */
  adopt(messages: RenderedMessage[]): void {
    if (this.current !== undefined || this.finalized.length > 0 || this.text !== "") {
      throw new Error("StreamRenderer: adopt() after text was pushed");
    }
    const last = messages.at(-1);
    if (last === undefined) return;
    this.finalized.push(...messages.slice(0, -1).map((m) => ({ ...m })));
    this.current = { ...last };
    this.text = last.text;
  }

  /** Add streamed text. Never blocks; surface calls happen in the background. */
  push(delta: string): void {
    if (this.ending) throw new Error("StreamRenderer: push() after finish() or abort()");
    this.text += delta;
    this.schedule();
  }

  /**
   * Deliver all text (respecting the edit interval), let the surface finalize
   * each message, and resolve with every message, each with its final text.
   * Rejects if a post failed.
   */
  finish(): Promise<RenderedMessage[]> {
    this.ending ??= this.end().then(async () => {
      if (this.failure) throw this.failure.error;
      const messages = this.messages();
      const finalize = this.surface.finalize?.bind(this.surface);
      if (finalize === undefined) return messages;
      const final: RenderedMessage[] = [];
      // In order: the real messages must appear in reading order.
      for (const m of messages) final.push({ ref: await finalize(m.ref, m.text), text: m.text });
      return final;
    });
    return this.ending;
  }

  /**
   * Stop streaming (the chapter failed): deliver the text so far with `note`
   * appended (e.g. "(interrupted)") and resolve with the messages. Never rejects:
   * the caller is already handling a failure; surface errors are swallowed here.
   * With no text at all nothing is posted (the caller shows its own notice).
   */
  abort(note?: string): Promise<RenderedMessage[]> {
    this.ending ??= this.end(note).then(() => this.messages());
    return this.ending;
  }

  private messages(): RenderedMessage[] {
    return this.current ? [...this.finalized, { ...this.current }] : [...this.finalized];
  }

  private async end(note?: string): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (note !== undefined && note !== "" && (this.current || this.text.trim() !== "")) {
      this.text = this.text.trimEnd() === "" ? note : `${this.text.trimEnd()} ${note}`;
    }
    while (!this.failure && this.hasUnsentText()) {
      if (this.flushing) {
        await this.flushing;
        continue;
      }
      const wait = this.waitBeforeEdit();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await this.runFlush();
    }
  }

  private schedule(): void {
    if (this.flushing || this.timer || this.failure || !this.hasUnsentText()) return;
    const wait = this.waitBeforeEdit();
    if (wait <= 0) {
      void this.runFlush().then(() => {
        if (!this.ending) this.schedule();
      });
    } else {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
    }
  }

  /** A new message is posted at once; an edit waits for the interval since the last call. */
  private waitBeforeEdit(): number {
    if (!this.current) return 0;
    return this.lastCallAt + this.surface.limits.minEditIntervalMs - Date.now();
  }

  private hasUnsentText(): boolean {
    return this.current ? this.text !== this.current.text : this.text.trim() !== "";
  }

  private runFlush(): Promise<void> {
    this.flushing = this.flush()
      .catch((error: unknown) => {
        this.failure = { error };
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /** Bring the surface up to date with `text`: finalize overflowing messages, then write the rest. */
  private async flush(): Promise<void> {
    this.trimNewMessageStart();
    for (let cut = this.cut(); cut !== undefined; cut = this.cut()) {
      const head = this.text.slice(0, cut.end);
      const message = await this.write(head);
      this.finalized.push(message);
      this.current = undefined;
      // Deltas pushed meanwhile were appended, so `cut.next` still points at the rest.
      this.text = this.text.slice(cut.next);
    }
    this.trimNewMessageStart();
    if (this.hasUnsentText()) this.current = await this.write(this.text);
    this.onShown?.(this.messages());
  }

  /** A new message never starts with whitespace (platforms refuse whitespace-only messages). */
  private trimNewMessageStart(): void {
    if (!this.current) this.text = this.text.trimStart();
  }

  private cut() {
    return findCut(this.text, this.surface.limits.maxMessageLength);
  }

  private async write(text: string): Promise<RenderedMessage> {
    const current = this.current;
    if (current?.text === text) return current;
    this.lastCallAt = Date.now();
    if (current) {
      try {
        await this.surface.edit(current.ref, text);
        return { ref: current.ref, text };
      } catch {
        // Most often the message was deleted (a "gone" DeliveryError, or a draft that cannot go
        // on); whatever it was, the surface logged it where it mapped it, and a fresh post
        // either shows the text or fails and stops the renderer.
        this.lastCallAt = Date.now();
      }
    }
    return { ref: await this.surface.post(text), text };
  }
}
