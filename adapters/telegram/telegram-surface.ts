/**
 * One Telegram chat as a `Surface`. Every call goes through the chat's
 * outbound queue (rate limits, 429 retries, no-op edits skipped). Streamed text
 * is sent plain, so no formatting can break mid-stream; choices are an inline
 * keyboard whose buttons carry compact, database-checked ids.
 */
import type { Telegram } from "telegraf";
import type { InlineKeyboardButton, InlineKeyboardMarkup } from "telegraf/types";
import type { Locale } from "../../src/app/config.ts";
import { t } from "../../src/i18n/messages.ts";
import type {
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OutgoingFile,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";
import { encodeCallback } from "./callback-data.ts";
import type { ChatKind, TelegramOutbox } from "./outbox.ts";

/** Telegram's numbers: 4096 characters a message; edits about once a second per chat. */
export const TELEGRAM_LIMITS: SurfaceLimits = { maxMessageLength: 4096, minEditIntervalMs: 1000 };

/** Longest button label we show (Telegram trims long labels badly on phones). */
const LABEL_MAX = 60;

/** Telegram's HTML needs only these three escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A chapter's text as Telegram HTML: a leading "Chapter N" / "第N章" line in bold. */
export function formatChapterHtml(text: string): string {
  const newline = text.indexOf("\n");
  const first = newline === -1 ? text : text.slice(0, newline);
  if (!/^(Chapter \d+|第\d+章)/.test(first)) return escapeHtml(text);
  return `<b>${escapeHtml(first)}</b>${escapeHtml(text.slice(first.length))}`;
}

/**
 * Chats where `sendMessageDraft` was refused (an older Bot API server, say):
 * shared by every surface of a bot, so a chat falls back to edits once.
 */
export type DraftRefusals = Set<number>;

/** Draft refs carry this prefix: the text is a preview until `finalize` sends it. */
const DRAFT = "draft:";

export class TelegramSurface implements Surface {
  readonly limits = TELEGRAM_LIMITS;

  constructor(
    private readonly telegram: Telegram,
    private readonly outbox: TelegramOutbox,
    readonly chatId: number,
    private readonly kind: ChatKind,
    private readonly locale: Locale,
    private readonly draftRefusals: DraftRefusals = new Set(),
  ) {}

  async post(text: string): Promise<MessageRef> {
    // Private chats stream into a native draft preview (Bot API 9.5); elsewhere, or
    // where the server refuses drafts, into a message edited about once a second.
    if (this.kind === "private" && !this.draftRefusals.has(this.chatId)) {
      const draftId = 1 + Math.floor(Math.random() * 2_000_000_000);
      if (await this.draft(draftId, text)) return { id: `${DRAFT}${draftId}` };
    }
    const sent = await this.outbox.send(this.chatId, this.kind, () => this.telegram.sendMessage(this.chatId, text));
    this.outbox.remember(this.key(sent.message_id), text);
    return { id: String(sent.message_id) };
  }

  async edit(ref: MessageRef, text: string): Promise<void> {
    if (ref.id.startsWith(DRAFT)) {
      if (await this.draft(Number(ref.id.slice(DRAFT.length)), text)) return;
      throw new Error("sendMessageDraft refused mid-stream");
    }
    await this.outbox.edit(this.chatId, this.kind, this.key(ref.id), text, () =>
      this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text),
    );
  }

  /**
   * A draft's final text becomes a real message, formatted: the chapter heading in
   * bold, everything escaped (the prose streamed plain, so nothing could break
   * mid-stream). Messages that streamed by edits are final already.
   */
  async finalize(ref: MessageRef, text: string): Promise<MessageRef> {
    if (!ref.id.startsWith(DRAFT)) return ref;
    const html = formatChapterHtml(text);
    const sent = await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendMessage(this.chatId, html, { parse_mode: "HTML" }),
    );
    return { id: String(sent.message_id) };
  }

  /**
   * Show `text` as the chat's draft. telegraf 4.16 predates the method, so it goes
   * through `callApi`. Drafts are previews, not messages: they do not take the
   * chat's message budget. A refusal switches this chat to edits for good.
   */
  private async draft(draftId: number, text: string): Promise<boolean> {
    try {
      await this.telegram.callApi(
        "sendMessageDraft" as never,
        { chat_id: this.chatId, draft_id: draftId, text } as never,
      );
      return true;
    } catch {
      this.draftRefusals.add(this.chatId);
      return false;
    }
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const text = this.offerText(offer);
    const markup = this.keyboard(offer);
    const sent = await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendMessage(this.chatId, text, { reply_markup: markup }),
    );
    this.outbox.remember(this.key(sent.message_id), text + JSON.stringify(markup));
    return { id: String(sent.message_id) };
  }

  async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
    const text = this.offerText(offer);
    const markup = this.keyboard(offer);
    // Live counts: the queue keeps only the latest pending edit, so a burst of votes is one edit.
    await this.outbox.edit(this.chatId, this.kind, this.key(ref.id), text + JSON.stringify(markup), () =>
      this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text, { reply_markup: markup }),
    );
  }

  async closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void> {
    const lines = offer.choices.map((label, i) => {
      const mark = i + 1 === result.chosen ? "✅" : "▫️";
      const count = result.counts === undefined ? "" : ` · ${result.counts[i] ?? 0}`;
      return `${mark} ${label}${count}`;
    });
    const text = [t(this.locale, "pick.taken", { label: result.label }), "", ...lines].join("\n");
    // An edit without reply_markup removes the keyboard: the old buttons cannot be pressed again.
    await this.outbox.edit(this.chatId, this.kind, this.key(ref.id), text, () =>
      this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text),
    );
  }

  /** "typing…" in the chat header: not a message, so it costs nothing of the chat's budget. */
  async typing(): Promise<void> {
    await this.telegram.sendChatAction(this.chatId, "typing");
  }

  async notice(text: string): Promise<void> {
    await this.outbox.send(this.chatId, this.kind, () => this.telegram.sendMessage(this.chatId, text));
  }

  async failed(text: string, retry: { storyId: string }): Promise<void> {
    const markup: InlineKeyboardMarkup = {
      inline_keyboard: [
        [{ text: t(this.locale, "retry.button"), callback_data: encodeCallback({ kind: "retry", ...retry }) }],
      ],
    };
    await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendMessage(this.chatId, text, { reply_markup: markup }),
    );
  }

  async sendFile(file: OutgoingFile): Promise<void> {
    const source = typeof file.content === "string" ? Buffer.from(file.content, "utf8") : Buffer.from(file.content);
    await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendDocument(this.chatId, { source, filename: file.name }),
    );
  }

  /** Ask for a reply (a scenario, a write-in): in groups, privacy mode only shows the bot replies. */
  async askForReply(text: string): Promise<number> {
    const sent = await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendMessage(this.chatId, text, { reply_markup: { force_reply: true, selective: true } }),
    );
    return sent.message_id;
  }

  /** Buttons without a story yet (genres). */
  async sendButtons(text: string, rows: InlineKeyboardButton[][]): Promise<void> {
    await this.outbox.send(this.chatId, this.kind, () =>
      this.telegram.sendMessage(this.chatId, text, { reply_markup: { inline_keyboard: rows } }),
    );
  }

  private offerText(offer: ChoiceOffer): string {
    if (offer.mode === "pick") return t(this.locale, "pick.prompt");
    if (offer.closesAt === null || offer.closesAt === undefined) return t(this.locale, "vote.waiting");
    const closes = offer.closesAt.toISOString().slice(11, 19);
    return t(this.locale, "vote.prompt", { closes: `${closes} UTC` });
  }

  private keyboard(offer: ChoiceOffer): InlineKeyboardMarkup {
    const { storyId, revision } = offer;
    const rows: InlineKeyboardButton[][] = offer.choices.map((label, i) => {
      const short = label.length > LABEL_MAX ? `${label.slice(0, LABEL_MAX - 1)}…` : label;
      const count = offer.mode === "vote" ? ` · ${offer.counts?.[i] ?? 0}` : "";
      const kind = offer.mode === "vote" ? "vote" : "pick";
      return [
        {
          text: `${i + 1}. ${short}${count}`,
          callback_data: encodeCallback({ kind, storyId, revision, position: i + 1 }),
        },
      ];
    });
    if (offer.mode === "vote") {
      rows.push([
        {
          text: t(this.locale, "vote.suggest"),
          callback_data: encodeCallback({ kind: "suggest", storyId, revision }),
        },
        { text: t(this.locale, "vote.close"), callback_data: encodeCallback({ kind: "close", storyId, revision }) },
      ]);
    }
    return { inline_keyboard: rows };
  }

  private key(messageId: string | number): string {
    return `${this.chatId}:${messageId}`;
  }
}
