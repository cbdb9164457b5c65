/**
 * A fake `Surface` (one conversation) for tests of the renderer, commands and
 * the story service. It behaves like a strict platform:
 * - `post`/`edit` reject empty text and text over `limits.maxMessageLength`;
 * - editing a message with its current text rejects like Telegram's
 *   "message is not modified" (turn off with `rejectNoOpEdits: false`);
 * - editing an unknown or deleted message rejects (see `deleteMessage`).
 *
 * Every call is recorded in `calls` with a timestamp from `now()` (defaults to
 * `Date.now`, so vitest fake timers apply), failed calls included. `latencyMs`
 * makes each call take that long (through `setTimeout`, fake-timer friendly),
 * and `maxInFlight` tells whether calls ever overlapped.
 *
 * @example
 * const surface = new FakeSurface({ limits: { maxMessageLength: 2000, minEditIntervalMs: 1000 } });
 * surface.failNextEdit(new Error("Unknown Message"));
 * ...
 * expect(surface.visibleText()).toBe("...");
 */
import type {
  AnswerWays,
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OutgoingFile,
  OutgoingImage,
  Prompt,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";

export type FakeSurfaceCall =
  | { kind: "post"; at: number; text: string; ref?: MessageRef; error?: unknown }
  | { kind: "edit"; at: number; ref: MessageRef; text: string; error?: unknown }
  | { kind: "offerChoices"; at: number; offer: ChoiceOffer; ref?: MessageRef; error?: unknown }
  | { kind: "notice"; at: number; text: string; error?: unknown }
  | { kind: "ask"; at: number; prompt: Prompt; ref?: MessageRef; error?: unknown }
  | { kind: "sendFile"; at: number; file: OutgoingFile; error?: unknown }
  | { kind: "postImage"; at: number; image: OutgoingImage; ref?: MessageRef; error?: unknown }
  | { kind: "failed"; at: number; text: string; storyId: string; error?: unknown }
  | { kind: "updateChoices"; at: number; ref: MessageRef; offer: ChoiceOffer; error?: unknown }
  | { kind: "closeChoices"; at: number; ref: MessageRef; offer: ChoiceOffer; result: ChoiceResult; error?: unknown };

export type FakeSurfaceCallKind = FakeSurfaceCall["kind"];

/** A message as the reader currently sees it. */
export interface FakeMessage {
  id: string;
  /** "text" for `post`, "choices" for `offerChoices`, "question" for `ask`. */
  kind: "text" | "choices" | "question";
  text: string;
  /** Texts this message had, first post included. */
  history: string[];
  offer?: ChoiceOffer;
  /** Set once the offer was closed. */
  result?: ChoiceResult;
  deleted: boolean;
}

export interface FakeSurfaceOptions {
  /** Defaults: Discord-like, 2000 characters and 1000 ms between edits. */
  limits?: Partial<SurfaceLimits>;
  /** How questions are answered (default: buttons and replies, like Telegram). */
  answers?: AnswerWays;
  /** Clock for call timestamps (default `Date.now`). */
  now?: () => number;
  /** How long each call takes, in ms (default 0: resolves on the next microtask). */
  latencyMs?: number;
  /** Reject an edit that does not change the text (default true, like Telegram). */
  rejectNoOpEdits?: boolean;
  /** Pictures show in the chat (default true, like Telegram and Discord). */
  showsImages?: boolean;
}

/** Error thrown by the fake for platform-like refusals (too long, not modified, unknown message). */
export class FakeSurfaceError extends Error {
  override name = "FakeSurfaceError";
}

export class FakeSurface implements Surface {
  readonly limits: SurfaceLimits;
  readonly answers: AnswerWays;
  readonly showsImages: boolean;
  /** Questions asked, in order. */
  readonly prompts: Prompt[] = [];
  /** Every call in order, failed ones included (they carry `error`). */
  readonly calls: FakeSurfaceCall[] = [];
  /** Messages by id, in posting order (Map iteration order). */
  readonly messages = new Map<string, FakeMessage>();
  /** Notices in order. */
  readonly notices: string[] = [];
  /** Calls in progress right now, and the most ever seen at once. */
  inFlight = 0;
  maxInFlight = 0;

  private readonly now: () => number;
  private readonly latencyMs: number;
  private readonly rejectNoOpEdits: boolean;
  private readonly failures: { kind: FakeSurfaceCallKind; error: unknown }[] = [];
  private nextId = 1;

  constructor(options: FakeSurfaceOptions = {}) {
    this.limits = { maxMessageLength: 2000, minEditIntervalMs: 1000, ...options.limits };
    this.answers = options.answers ?? { buttons: true, replies: true };
    this.now = options.now ?? Date.now;
    this.latencyMs = options.latencyMs ?? 0;
    this.rejectNoOpEdits = options.rejectNoOpEdits ?? true;
    this.showsImages = options.showsImages ?? true;
  }

  async post(text: string): Promise<MessageRef> {
    const call: FakeSurfaceCall = { kind: "post", at: this.now(), text };
    return this.perform(call, () => {
      this.checkText(text);
      const ref = this.create("text", text);
      call.ref = ref;
      return ref;
    });
  }

  async edit(ref: MessageRef, text: string): Promise<void> {
    const call: FakeSurfaceCall = { kind: "edit", at: this.now(), ref, text };
    return this.perform(call, () => {
      const message = this.messages.get(ref.id);
      if (message === undefined || message.deleted) throw new FakeSurfaceError(`Unknown message ${ref.id}`);
      this.checkText(text);
      if (this.rejectNoOpEdits && message.text === text) throw new FakeSurfaceError("message is not modified");
      message.text = text;
      message.history.push(text);
    });
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const call: FakeSurfaceCall = { kind: "offerChoices", at: this.now(), offer };
    return this.perform(call, () => {
      const text = offer.choices.map((choice, i) => `${i + 1}. ${choice}`).join("\n");
      const ref = this.create("choices", text, offer);
      call.ref = ref;
      return ref;
    });
  }

  async ask(prompt: Prompt): Promise<MessageRef> {
    const call: FakeSurfaceCall = { kind: "ask", at: this.now(), prompt };
    return this.perform(call, () => {
      this.checkText(prompt.text);
      this.prompts.push(prompt);
      const ref = this.create("question", prompt.text);
      call.ref = ref;
      return ref;
    });
  }

  async notice(text: string): Promise<void> {
    const call: FakeSurfaceCall = { kind: "notice", at: this.now(), text };
    return this.perform(call, () => {
      this.notices.push(text);
    });
  }

  async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
    const call: FakeSurfaceCall = { kind: "updateChoices", at: this.now(), ref, offer };
    return this.perform(call, () => {
      const message = this.messages.get(ref.id);
      if (message === undefined) throw new FakeSurfaceError(`Unknown message ${ref.id}`);
      message.offer = offer;
    });
  }

  async closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void> {
    const call: FakeSurfaceCall = { kind: "closeChoices", at: this.now(), ref, offer, result };
    return this.perform(call, () => {
      const message = this.messages.get(ref.id);
      if (message === undefined) throw new FakeSurfaceError(`Unknown message ${ref.id}`);
      message.result = result;
    });
  }

  /** A failure report: recorded as a call, and its text joins `notices`. */
  async failed(text: string, retry: { storyId: string }): Promise<void> {
    const call: FakeSurfaceCall = { kind: "failed", at: this.now(), text, storyId: retry.storyId };
    return this.perform(call, () => {
      this.notices.push(text);
    });
  }

  /** Files sent, in order. */
  readonly files: OutgoingFile[] = [];

  async sendFile(file: OutgoingFile): Promise<void> {
    const call: FakeSurfaceCall = { kind: "sendFile", at: this.now(), file };
    return this.perform(call, () => {
      this.files.push(file);
    });
  }

  /** Images posted, in order. */
  readonly images: OutgoingImage[] = [];

  async postImage(image: OutgoingImage): Promise<MessageRef> {
    const call: FakeSurfaceCall = { kind: "postImage", at: this.now(), image };
    return this.perform(call, () => {
      this.images.push(image);
      const ref = { id: `m${this.nextId++}` };
      call.ref = ref;
      return ref;
    });
  }

  /** Make the next call of this kind reject with `error` (queued: several may be set). */
  failNext(kind: FakeSurfaceCallKind, error: unknown = new FakeSurfaceError(`injected ${kind} failure`)): void {
    this.failures.push({ kind, error });
  }

  failNextPost(error?: unknown): void {
    this.failNext("post", error);
  }

  failNextEdit(error?: unknown): void {
    this.failNext("edit", error);
  }

  /** Simulate a user or moderator deleting a message: later edits of it reject. */
  deleteMessage(id: string): void {
    const message = this.messages.get(id);
    if (message !== undefined) message.deleted = true;
  }

  /** Calls of one kind, in order. */
  callsOf<K extends FakeSurfaceCallKind>(kind: K): Extract<FakeSurfaceCall, { kind: K }>[] {
    return this.calls.filter((call): call is Extract<FakeSurfaceCall, { kind: K }> => call.kind === kind);
  }

  /** Current texts of the story messages (posted, not deleted), in posting order. */
  texts(): string[] {
    return [...this.messages.values()].filter((m) => m.kind === "text" && !m.deleted).map((m) => m.text);
  }

  /** What a reader sees of the story: `texts()` joined with `separator` (default "\n"). */
  visibleText(separator = "\n"): string {
    return this.texts().join(separator);
  }

  private create(kind: FakeMessage["kind"], text: string, offer?: ChoiceOffer): MessageRef {
    const id = `m${this.nextId++}`;
    this.messages.set(id, { id, kind, text, history: [text], deleted: false, ...(offer && { offer }) });
    return { id };
  }

  private checkText(text: string): void {
    if (text.trim().length === 0) throw new FakeSurfaceError("Cannot send an empty message");
    if (text.length > this.limits.maxMessageLength) {
      throw new FakeSurfaceError(`Message too long: ${text.length} > ${this.limits.maxMessageLength}`);
    }
  }

  private async perform<T>(call: FakeSurfaceCall, apply: () => T): Promise<T> {
    this.calls.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
      else await Promise.resolve();
      const failure = this.failures.findIndex((f) => f.kind === call.kind);
      const injected = failure >= 0 ? this.failures.splice(failure, 1)[0] : undefined;
      if (injected) throw injected.error;
      return apply();
    } catch (error) {
      call.error = error;
      throw error;
    } finally {
      this.inFlight--;
    }
  }
}
