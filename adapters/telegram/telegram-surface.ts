/**
 * One Telegram chat as a `Surface`, built from the chat id, the bot's `Telegram` client and
 * the process's outbox alone (see ./surfaces.ts): the chat's kind follows from its id, and
 * nothing comes from the adapter. Every call goes through the chat's outbound queue (rate
 * limits, 429 retries, no-op edits skipped). Streamed text is sent plain, so no formatting
 * can break mid-stream; choices are an inline keyboard whose buttons carry compact,
 * database-checked ids. Errors leave as `DeliveryError`s, mapped (and logged) once in
 * ./errors.ts.
 */
import type { Telegram } from "telegraf";
import type { ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters } from "telegraf/types";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import { DeliveryError, type DeliveryLog } from "../../src/render/delivery-error.ts";
import * as layout from "../../src/render/offer-layout.ts";
import { clamp } from "../../src/render/split.ts";
import type {
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OutgoingFile,
  OutgoingImage,
  Prompt,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";
import { decodeCallback, encodeCallback } from "./callback-data.ts";
import { isPhotoRefused, telegramDeliveryError } from "./errors.ts";
import { type ChatKind, chatKindOf, type TelegramOutbox } from "./outbox.ts";

/**
 * Telegram's numbers: 4096 characters a message; edits about once a second per chat; bots
 * upload files of up to 50 MB (counted in decimal megabytes, to stay on the safe side).
 */
export const TELEGRAM_LIMITS: SurfaceLimits = {
  maxMessageLength: 4096,
  minEditIntervalMs: 1000,
  maxUploadBytes: 50_000_000,
};

/** Longest caption of a photo or document, in UTF-16 code units like message text. */
const CAPTION_MAX = 1024;
/** Largest photo the Bot API takes (10 MB); a bigger image goes as a document. */
const PHOTO_MAX_BYTES = 10_000_000;

/** One choice a row (Telegram trims long labels badly on phones), readers type their own action. */
const TELEGRAM_OFFER_SHAPE: layout.OfferShape = { buttonsPerRow: 1, maxRows: 12, labelMax: 68, writeOwnButton: false };

/**
 * The offer's rows as an inline keyboard. A rating button whose chapter id cannot be
 * encoded costs its row (logged), not the choices.
 */
function drawRows(rows: layout.OfferButton[][], log: DeliveryLog): InlineKeyboardButton[][] {
  const drawn: InlineKeyboardButton[][] = [];
  for (const row of rows) {
    try {
      if (row.length > 0) drawn.push(row.map((b) => ({ text: b.label, callback_data: encodeCallback(b.action) })));
    } catch (error) {
      if (!row.every((b) => b.tone === "rating")) throw error;
      log(`telegram: rating buttons left out: ${String(error)}`);
    }
  }
  return drawn;
}

/** The chapter a message's rating buttons rate (the pressed message's keyboard, say), if it has them. */
export function ratedChapter(markup: InlineKeyboardMarkup | undefined): string | undefined {
  for (const button of markup?.inline_keyboard.flat() ?? []) {
    const action = "callback_data" in button ? decodeCallback(button.callback_data) : undefined;
    if (action?.kind === "rate") return action.chapterId;
  }
  return undefined;
}

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

/** Draft refs carry this prefix: the text is a preview until `finalize` sends it. */
const DRAFT = "draft:";

export class TelegramSurface implements Surface {
  readonly limits = TELEGRAM_LIMITS;
  readonly answers = { buttons: true, replies: true };
  readonly showsImages = true;
  /** A private chat (positive id) or a group or channel (negative id). */
  readonly kind: ChatKind;

  constructor(
    private readonly telegram: Telegram,
    private readonly outbox: TelegramOutbox,
    readonly chatId: number,
    private readonly locale: Locale,
    private readonly log: DeliveryLog,
  ) {
    this.kind = chatKindOf(chatId);
  }

  async post(text: string): Promise<MessageRef> {
    // Private chats stream into a native draft preview (Bot API 9.5); elsewhere, or
    // where the server refuses drafts, into a message edited about once a second.
    if (this.kind === "private" && !this.outbox.refusesDrafts(this.chatId)) {
      const draftId = 1 + Math.floor(Math.random() * 2_000_000_000);
      if ((await this.draft(draftId, text)) === undefined) return { id: `${DRAFT}${draftId}` };
    }
    const sent = await this.send("post", () => this.telegram.sendMessage(this.chatId, text));
    this.outbox.remember(this.key(sent.message_id), text);
    return { id: String(sent.message_id) };
  }

  async edit(ref: MessageRef, text: string): Promise<void> {
    if (ref.id.startsWith(DRAFT)) {
      const refusal = await this.draft(Number(ref.id.slice(DRAFT.length)), text);
      if (refusal === undefined) return;
      // The preview cannot go on: for the renderer the message is gone, and it posts the text anew.
      throw new DeliveryError("gone", "telegram", `telegram chat ${this.chatId}: draft refused mid-stream`, {
        cause: refusal,
      });
    }
    await this.editMessage("edit", ref, text, () =>
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
    const sent = await this.send("finalize", () =>
      this.telegram.sendMessage(this.chatId, html, { parse_mode: "HTML" }),
    );
    return { id: String(sent.message_id) };
  }

  /**
   * Show `text` as the chat's draft; resolves with the refusal, or undefined once shown.
   * telegraf 4.16 predates the method, so it goes through `callApi`. Drafts are previews,
   * not messages: they do not take the chat's message budget. A refusal (mapped and logged)
   * switches this chat to edits for good, in every surface of this process's outbox.
   */
  private async draft(draftId: number, text: string): Promise<DeliveryError | undefined> {
    try {
      await this.telegram.callApi(
        "sendMessageDraft" as never,
        { chat_id: this.chatId, draft_id: draftId, text } as never,
      );
      return undefined;
    } catch (error) {
      this.outbox.refuseDrafts(this.chatId);
      return telegramDeliveryError(error, { chatId: this.chatId, action: "draft (now streaming by edits)" }, this.log);
    }
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const text = this.offerText(offer);
    const markup = this.keyboard(offer);
    const sent = await this.send("offer choices", () =>
      this.telegram.sendMessage(this.chatId, text, { reply_markup: markup }),
    );
    this.outbox.remember(this.key(sent.message_id), text + JSON.stringify(markup));
    return { id: String(sent.message_id) };
  }

  async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
    const text = this.offerText(offer);
    const markup = this.keyboard(offer);
    // Live counts: the queue keeps only the latest pending edit, so a burst of votes is one edit.
    await this.editMessage("update choices", ref, text + JSON.stringify(markup), () =>
      this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text, { reply_markup: markup }),
    );
  }

  async closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void> {
    const text = layout.closedOfferText(offer, result, this.locale);
    // The choice buttons go (an edit without reply_markup removes the keyboard); the chapter's
    // rating row, if any, stays: readers may rate it after the choice was taken.
    const rating = drawRows([layout.ratingRow(offer)], this.log);
    if (rating.length === 0) {
      await this.editMessage("close choices", ref, text, () =>
        this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text),
      );
      return;
    }
    const markup: InlineKeyboardMarkup = { inline_keyboard: rating };
    await this.editMessage("close choices", ref, text + JSON.stringify(markup), () =>
      this.telegram.editMessageText(this.chatId, Number(ref.id), undefined, text, { reply_markup: markup }),
    );
  }

  /** "typing…" in the chat header: not a message, so it costs nothing of the chat's budget. */
  async typing(): Promise<void> {
    try {
      await this.telegram.sendChatAction(this.chatId, "typing");
    } catch (error) {
      throw telegramDeliveryError(error, { chatId: this.chatId, action: "typing" }, this.log);
    }
  }

  async notice(text: string): Promise<void> {
    await this.send("notice", () => this.telegram.sendMessage(this.chatId, text));
  }

  async failed(text: string, retry: { storyId: string }): Promise<void> {
    const markup: InlineKeyboardMarkup = {
      inline_keyboard: [
        [{ text: t(this.locale, "retry.button"), callback_data: encodeCallback({ kind: "retry", ...retry }) }],
      ],
    };
    await this.send("failure notice", () => this.telegram.sendMessage(this.chatId, text, { reply_markup: markup }));
  }

  async sendFile(file: OutgoingFile): Promise<void> {
    const source = typeof file.content === "string" ? Buffer.from(file.content, "utf8") : Buffer.from(file.content);
    await this.send("send file", () => this.telegram.sendDocument(this.chatId, { source, filename: file.name }));
  }

  /**
   * An illustration as a photo, in reply to its passage. A passage deleted meanwhile does not
   * fail the send (`allow_sending_without_reply`), and a draft ref (private chats stream into
   * drafts until `finalize`) is no message to reply to. An image over Telegram's 10 MB photo
   * limit, or one Telegram refuses as a photo (400 PHOTO_INVALID_DIMENSIONS, IMAGE_PROCESS_FAILED,
   * no photos allowed in the chat...), goes as a document with the same caption and reply.
   */
  async postImage(image: OutgoingImage): Promise<MessageRef> {
    const file = { source: Buffer.from(image.bytes), filename: image.name };
    const extra: { caption?: string; reply_parameters?: ReplyParameters } = {};
    const caption = clamp(image.caption, CAPTION_MAX);
    if (caption.trim() !== "") extra.caption = caption;
    const replyTo = image.replyTo === undefined ? Number.NaN : Number(image.replyTo.id);
    if (Number.isSafeInteger(replyTo) && replyTo > 0) {
      // telegraf 4.16 sends an upload as multipart and drops object fields it does not know
      // (reply_parameters among them) from the form; a JSON string goes through as is.
      const reply: ReplyParameters = { message_id: replyTo, allow_sending_without_reply: true };
      extra.reply_parameters = JSON.stringify(reply) as unknown as ReplyParameters;
    }
    let asDocument = image.bytes.byteLength > PHOTO_MAX_BYTES;
    // The fallback runs inside the same outbox call, so nothing queued for the chat meanwhile
    // can come between the passage and its picture; a 429 retry goes straight to the document.
    const sent: Message = await this.send("post image", async () => {
      if (!asDocument) {
        try {
          return await this.telegram.sendPhoto(this.chatId, file, extra);
        } catch (error) {
          if (!isPhotoRefused(error)) throw error;
          // Not a failure yet: the document below says whether the chat takes the picture at all.
          this.log(`telegram chat ${this.chatId}: photo refused, sending it as a document: ${String(error)}`);
          asDocument = true;
        }
      }
      return await this.telegram.sendDocument(this.chatId, file, extra);
    });
    return { id: String(sent.message_id) };
  }

  /** Ask for a reply (a scenario, a write-in): in groups, privacy mode only shows the bot replies. */
  /** A question: its buttons (genres), or a reply prompt that answers it (a scenario, a suggestion). */
  async ask(prompt: Prompt): Promise<MessageRef> {
    const markup: InlineKeyboardMarkup | ForceReply = prompt.reply
      ? { force_reply: true, selective: true }
      : { inline_keyboard: drawRows(prompt.rows, this.log) };
    const sent = await this.send("ask", () =>
      this.telegram.sendMessage(this.chatId, prompt.text, { reply_markup: markup }),
    );
    return { id: String(sent.message_id) };
  }

  private offerText(offer: ChoiceOffer): string {
    if (offer.mode === "pick") return t(this.locale, "pick.prompt");
    if (offer.closesAt === null || offer.closesAt === undefined) return t(this.locale, "vote.waiting");
    const closes = offer.closesAt.toISOString().slice(11, 19);
    return t(this.locale, "vote.prompt", { closes: `${closes} UTC` });
  }

  private keyboard(offer: ChoiceOffer): InlineKeyboardMarkup {
    return { inline_keyboard: drawRows(layout.offerRows(offer, this.locale, TELEGRAM_OFFER_SHAPE).rows, this.log) };
  }

  /** One call through the chat's queue; what fails leaves mapped (and logged) once. */
  private async send<T>(action: string, call: () => Promise<T>): Promise<T> {
    try {
      return await this.outbox.send(this.chatId, this.kind, call);
    } catch (error) {
      throw telegramDeliveryError(error, { chatId: this.chatId, action }, this.log);
    }
  }

  /** An edit of a message through the chat's queue (coalesced, no-ops skipped: `content` is what it shows). */
  private async editMessage(action: string, ref: MessageRef, content: string, call: () => Promise<unknown>) {
    try {
      await this.outbox.edit(this.chatId, this.kind, this.key(ref.id), content, call);
    } catch (error) {
      throw telegramDeliveryError(error, { chatId: this.chatId, action }, this.log);
    }
  }

  private key(messageId: string | number): string {
    return `${this.chatId}:${messageId}`;
  }
}
