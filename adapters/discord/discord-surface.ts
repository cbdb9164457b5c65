/**
 * One Discord thread (or text channel) as a `Surface`. Everything is written with
 * the bot token through the channel, never through an interaction token (those
 * expire after 15 minutes; a queued chapter may start later). Story text never
 * pings anyone (`allowedMentions: { parse: [] }`). Choices are buttons whose
 * custom ids carry compact, database-checked ids (see ./custom-id.ts).
 *
 * discord.js queues requests per route and waits out 429s itself, so there is no
 * outbox here; the renderer keeps edits of one message >= 1.2 s apart.
 */
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  DiscordAPIError,
  HTTPError,
  type Message,
  type MessageActionRowComponentBuilder,
  type MessageMentionOptions,
  ModalBuilder,
  RateLimitError,
  type SendableChannels,
  type TextChannel,
  TextInputBuilder,
  TextInputStyle,
  type ThreadChannel,
  TimestampStyles,
  time,
} from "discord.js";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import { clamp } from "../../src/render/split.ts";
import type {
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OutgoingFile,
  OutgoingImage,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";
import { UserFacingError } from "../../src/story/errors.ts";
import { type CustomIdAction, encodeCustomId, SUGGESTION_INPUT_ID } from "./custom-id.ts";

/**
 * Discord's numbers: 2000 characters a message; streaming bots edit about every 1.0-1.5 s;
 * uploads of up to 10 MiB (the default for bots; boosted servers allow more).
 */
export const DISCORD_LIMITS: SurfaceLimits = {
  maxMessageLength: 2000,
  minEditIntervalMs: 1200,
  maxUploadBytes: 10 * 1024 * 1024,
};

/** Discord's component limits. */
const BUTTON_LABEL_MAX = 80;
const BUTTONS_PER_ROW = 5;
const ROWS_PER_MESSAGE = 5;
/** The rating buttons' labels: the same in every language. */
const RATING_UP = "👍";
const RATING_DOWN = "👎";
/** Modal title and text input label limits. */
const MODAL_TITLE_MAX = 45;
const INPUT_LABEL_MAX = 45;

/** Never ping anyone: story text and labels come from a model and from readers. */
const NO_PINGS: MessageMentionOptions = { parse: [] };

/** Any channel a bot can send to: a thread (the usual home of a story), a text channel, a DM... */
export type DiscordStoryChannel = SendableChannels | ThreadChannel | TextChannel;

/** Discord error codes the surface and the adapter care about. */
export const DiscordErrorCode = {
  UnknownChannel: 10003,
  UnknownMessage: 10008,
  MissingAccess: 50001,
  MissingPermissions: 50013,
  ThreadArchived: 50083,
} as const;

export type DiscordErrorKind = "missing_permission" | "gone" | "rate_limited" | "transient" | "other";

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
]);
const NETWORK_NAMES = new Set(["AbortError", "TimeoutError", "ConnectTimeoutError", "SocketError"]);

/**
 * What a discord.js error means for the bot:
 * - missing_permission: 50013 Missing Permissions, 50001 Missing Access (tell a moderator);
 * - gone: 10003 Unknown Channel, 10008 Unknown Message (the thread or message was deleted);
 * - rate_limited: 429 (discord.js normally waits these out itself);
 * - transient: 5xx, 408, network failures and timeouts (try again later);
 * - other: everything else (a bug, a refused body...).
 */
export function discordErrorKind(error: unknown): DiscordErrorKind {
  if (error instanceof DiscordAPIError) {
    switch (error.code) {
      case DiscordErrorCode.MissingPermissions:
      case DiscordErrorCode.MissingAccess:
        return "missing_permission";
      case DiscordErrorCode.UnknownChannel:
      case DiscordErrorCode.UnknownMessage:
        return "gone";
      default:
        return statusKind(error.status);
    }
  }
  if (error instanceof RateLimitError) return "rate_limited";
  if (error instanceof HTTPError) return statusKind(error.status);
  return isNetworkError(error, 0) ? "transient" : "other";
}

function statusKind(status: number): DiscordErrorKind {
  if (status === 429) return "rate_limited";
  if (status >= 500 || status === 408) return "transient";
  return "other";
}

function isNetworkError(error: unknown, depth: number): boolean {
  if (typeof error !== "object" || error === null || depth > 3) return false;
  const { name, code, cause } = error as { name?: unknown; code?: unknown; cause?: unknown };
  if (typeof name === "string" && NETWORK_NAMES.has(name)) return true;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || code.startsWith("UND_ERR_"))) return true;
  if (error instanceof TypeError && error.message === "fetch failed") return true;
  return isNetworkError(cause, depth + 1);
}

function isThreadArchived(error: unknown): boolean {
  return error instanceof DiscordAPIError && error.code === DiscordErrorCode.ThreadArchived;
}

export class DiscordSurface implements Surface {
  readonly limits = DISCORD_LIMITS;
  private unarchiving: Promise<void> | undefined;

  constructor(
    readonly channel: DiscordStoryChannel,
    private readonly locale: Locale,
  ) {}

  get channelId(): string {
    return this.channel.id;
  }

  async post(text: string): Promise<MessageRef> {
    const sent = await this.write(() => this.channel.send({ content: text, allowedMentions: NO_PINGS }));
    return { id: sent.id };
  }

  /**
   * Fetch-free edit. A deleted message (10008 Unknown Message) throws, and the
   * renderer re-posts the text as a new message.
   */
  async edit(ref: MessageRef, text: string): Promise<void> {
    await this.write(() => this.channel.messages.edit(ref.id, { content: text, allowedMentions: NO_PINGS }));
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const sent = await this.write(() =>
      this.channel.send({
        content: this.offerText(offer),
        components: this.choiceRows(offer),
        allowedMentions: NO_PINGS,
      }),
    );
    return { id: sent.id };
  }

  async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
    await this.write(() =>
      this.channel.messages.edit(ref.id, {
        content: this.offerText(offer),
        components: this.choiceRows(offer),
        allowedMentions: NO_PINGS,
      }),
    );
  }

  /**
   * The choice taken replaces the choice buttons, so they cannot be pressed again; the
   * chapter's rating row, if any, stays (readers may rate it after the vote).
   */
  async closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void> {
    const lines = offer.choices.map((label, i) => {
      const mark = i + 1 === result.chosen ? "✅" : "▫️";
      const count = result.counts === undefined ? "" : ` · ${result.counts[i] ?? 0}`;
      return `${mark} ${label}${count}`;
    });
    const text = [t(this.locale, "pick.taken", { label: result.label }), "", ...lines].join("\n");
    await this.write(() =>
      this.channel.messages.edit(ref.id, {
        content: clamp(text, DISCORD_LIMITS.maxMessageLength),
        components: this.ratingRows(offer),
        allowedMentions: NO_PINGS,
      }),
    );
  }

  /** "Inkloom is typing…" for about 10 s: not a message. */

  /** A story thread takes the story's title once the writer has one (1-100 characters). */
  async retitle(title: string): Promise<void> {
    const name = title.trim().slice(0, 100);
    if (this.channel.isThread() && name !== "") await this.channel.setName(name);
  }

  async notice(text: string): Promise<void> {
    await this.write(() =>
      this.channel.send({ content: clamp(text, DISCORD_LIMITS.maxMessageLength), allowedMentions: NO_PINGS }),
    );
  }

  async failed(text: string, retry: { storyId: string }): Promise<void> {
    const row = new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(
      this.button({ kind: "retry", storyId: retry.storyId }, t(this.locale, "retry.button"), ButtonStyle.Primary),
    );
    await this.write(() =>
      this.channel.send({
        content: clamp(text, DISCORD_LIMITS.maxMessageLength),
        components: [row],
        allowedMentions: NO_PINGS,
      }),
    );
  }

  async sendFile(file: OutgoingFile): Promise<void> {
    const attachment = typeof file.content === "string" ? Buffer.from(file.content, "utf8") : Buffer.from(file.content);
    await this.write(
      () => this.channel.send({ files: [{ attachment, name: file.name }], allowedMentions: NO_PINGS }),
      "Attach Files",
    );
  }

  /**
   * An illustration as an attachment with its caption, as a reply to its passage. A passage
   * deleted meanwhile does not fail the send (`failIfNotExists: false`); the reply pings no one.
   */
  async postImage(image: OutgoingImage): Promise<MessageRef> {
    const attachment = Buffer.from(image.bytes);
    const caption = clamp(image.caption, DISCORD_LIMITS.maxMessageLength);
    const sent = await this.write(
      () =>
        this.channel.send({
          ...(caption.trim() === "" ? {} : { content: caption }),
          files: [{ attachment, name: image.name }],
          ...(image.replyTo === undefined
            ? {}
            : { reply: { messageReference: image.replyTo.id, failIfNotExists: false } }),
          allowedMentions: NO_PINGS,
        }),
      "Attach Files",
    );
    return { id: sent.id };
  }

  /**
   * Run a write; an archived thread is unarchived first (from the cached state),
   * and once more if Discord still says 50083 "Thread is archived" (a stale
   * cache), then the write is tried again once.
   */
  private async write(send: () => Promise<Message>, needs?: string): Promise<Message> {
    const channel = this.channel;
    try {
      if (channel.isThread() && channel.archived === true) await this.unarchive();
      try {
        return await send();
      } catch (error) {
        if (!channel.isThread() || !isThreadArchived(error)) throw error;
        await this.unarchive();
        return await send();
      }
    } catch (error) {
      // Name the permission a moderator must grant, in the reader's language.
      if (discordErrorKind(error) !== "missing_permission") throw error;
      const permission = needs ?? (channel.isThread() ? "Send Messages in Threads" : "Send Messages");
      throw new UserFacingError("discord.missingPermission", { permission });
    }
  }

  /** Concurrent writes share one unarchive request. */
  private unarchive(): Promise<void> {
    const channel = this.channel;
    if (!channel.isThread()) return Promise.resolve();
    this.unarchiving ??= channel
      .setArchived(false)
      .then(() => undefined)
      .finally(() => {
        this.unarchiving = undefined;
      });
    return this.unarchiving;
  }

  private offerText(offer: ChoiceOffer): string {
    let prompt: string;
    if (offer.mode === "pick") {
      prompt = t(this.locale, offer.allowWriteIn ? "discord.pick.prompt" : "discord.pick.promptClosed");
    } else if (offer.closesAt === null || offer.closesAt === undefined) {
      prompt = t(this.locale, "vote.waiting");
    } else {
      // Discord renders <t:…:R> as "in 8 seconds" in each reader's language and clock.
      prompt = t(this.locale, "vote.prompt", { closes: time(offer.closesAt, TimestampStyles.RelativeTime) });
    }
    // Where a button cannot show a choice in full (or at all), the text lists every choice.
    const layout = choiceLayout(offer);
    const cut = offer.choices.some((label, i) => i >= layout.shown || choiceLabel(offer, i) !== fullLabel(label, i));
    if (!cut) return prompt;
    const list = offer.choices.map((label, i) => `${i + 1}. ${label}`).join("\n");
    return clamp(`${prompt}\n\n${list}`, DISCORD_LIMITS.maxMessageLength);
  }

  /**
   * One button per choice, spread evenly over at most 5 rows of 5 (8 choices: two
   * rows of 4), then a row of controls: for a vote "Suggest your own" and "Close
   * vote", for a pick "Write your own". Both open-ended buttons carry the
   * `suggest` id: the adapter answers it with `suggestionModal`.
   */
  private choiceRows(offer: ChoiceOffer): ActionRowBuilder<MessageActionRowComponentBuilder>[] {
    const { storyId, revision } = offer;
    const layout = choiceLayout(offer);
    const kind = offer.mode === "vote" ? "vote" : "pick";
    const rows: ActionRowBuilder<MessageActionRowComponentBuilder>[] = [];
    for (let start = 0; start < layout.shown; start += layout.perRow) {
      const row = new ActionRowBuilder<MessageActionRowComponentBuilder>();
      for (let i = start; i < Math.min(start + layout.perRow, layout.shown); i++) {
        row.addComponents(
          this.button({ kind, storyId, revision, position: i + 1 }, choiceLabel(offer, i), ButtonStyle.Primary),
        );
      }
      rows.push(row);
    }
    const controls: ButtonBuilder[] = [];
    if (offer.allowWriteIn) {
      const label = t(this.locale, offer.mode === "vote" ? "vote.suggest" : "discord.writeOwn");
      controls.push(this.button({ kind: "suggest", storyId, revision }, label, ButtonStyle.Secondary));
    }
    if (offer.mode === "vote") {
      controls.push(
        this.button({ kind: "close", storyId, revision }, t(this.locale, "vote.close"), ButtonStyle.Danger),
      );
    }
    if (controls.length > 0)
      rows.push(new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(controls));
    rows.push(...this.ratingRows(offer));
    return rows;
  }

  /**
   * A row of 👍 and 👎 rating the finished chapter the choices end (none without a chapter).
   * The buttons carry only the chapter id and the value: the database decides, so they work
   * after a restart and after the vote closed. An id that cannot be encoded costs the row only.
   */
  private ratingRows(offer: ChoiceOffer): ActionRowBuilder<MessageActionRowComponentBuilder>[] {
    const { chapterId } = offer;
    if (chapterId === undefined) return [];
    try {
      return [
        new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(
          this.button({ kind: "rate", chapterId, value: 1 }, RATING_UP, ButtonStyle.Secondary),
          this.button({ kind: "rate", chapterId, value: -1 }, RATING_DOWN, ButtonStyle.Secondary),
        ),
      ];
    } catch {
      return [];
    }
  }

  private button(action: CustomIdAction, label: string, style: ButtonStyle): ButtonBuilder {
    return new ButtonBuilder()
      .setCustomId(encodeCustomId(action))
      .setLabel(clamp(label, BUTTON_LABEL_MAX))
      .setStyle(style);
  }
}

/** How many choices get a button, and how many per row (room is kept for the control and rating rows). */
function choiceLayout(offer: ChoiceOffer): { shown: number; perRow: number } {
  const hasControls = offer.mode === "vote" || offer.allowWriteIn;
  const hasRating = offer.chapterId !== undefined;
  const maxRows = ROWS_PER_MESSAGE - (hasControls ? 1 : 0) - (hasRating ? 1 : 0);
  const shown = Math.min(offer.choices.length, maxRows * BUTTONS_PER_ROW);
  const rowCount = Math.max(1, Math.ceil(shown / BUTTONS_PER_ROW));
  return { shown, perRow: Math.max(1, Math.ceil(shown / rowCount)) };
}

function fullLabel(label: string, index: number): string {
  return `${index + 1}. ${label}`;
}

/** "1. Go north" (pick) or "1. Go north · 2" (vote), the label cut so the whole fits 80 chars. */
function choiceLabel(offer: ChoiceOffer, index: number): string {
  const label = offer.choices[index] ?? "";
  const prefix = `${index + 1}. `;
  const count = offer.mode === "vote" ? ` · ${offer.counts?.[index] ?? 0}` : "";
  return `${prefix}${clamp(label, BUTTON_LABEL_MAX - prefix.length - count.length)}${count}`;
}

/**
 * The modal a `suggest` button opens: one paragraph input (`SUGGESTION_INPUT_ID`),
 * submitted with a `suggestion` custom id for the same story and revision. Pass
 * `LIMITS.writeIn` for a ballot and `LIMITS.action` for a pick.
 */
export function suggestionModal(
  locale: Locale,
  target: { storyId: string; revision: number; mode: "pick" | "vote" },
  maxLength: number,
): ModalBuilder {
  const title = t(locale, target.mode === "vote" ? "vote.suggest" : "discord.writeOwn");
  return new ModalBuilder()
    .setCustomId(encodeCustomId({ kind: "suggestion", storyId: target.storyId, revision: target.revision }))
    .setTitle(clamp(title, MODAL_TITLE_MAX))
    .addComponents(
      new ActionRowBuilder<TextInputBuilder>().addComponents(
        new TextInputBuilder()
          .setCustomId(SUGGESTION_INPUT_ID)
          .setLabel(clamp(t(locale, "discord.suggest.label"), INPUT_LABEL_MAX))
          .setStyle(maxLength > 100 ? TextInputStyle.Paragraph : TextInputStyle.Short)
          .setMinLength(1)
          .setMaxLength(Math.min(4000, Math.max(1, maxLength)))
          .setRequired(true),
      ),
    );
}
