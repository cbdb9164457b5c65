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
import { DISCORD_CUSTOM_ID_FORMAT } from "../../commands/action-codec.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
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
/** 5 rows of 5 buttons a message; readers write their own action in a modal. */
const DISCORD_OFFER_SHAPE: layout.OfferShape = {
  buttonsPerRow: 5,
  maxRows: 5,
  labelMax: BUTTON_LABEL_MAX,
  writeOwnButton: true,
};
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

/** Whether a Discord custom id carries this action. */
function carried(action: layout.OfferAction): action is layout.OfferAction & CustomIdAction {
  return (DISCORD_CUSTOM_ID_FORMAT.kinds as readonly string[]).includes(action.kind);
}

export class DiscordSurface implements Surface {
  readonly limits = DISCORD_LIMITS;
  /** Buttons answer; typed answers come in modals (the bot does not read thread messages). */
  readonly answers = { buttons: true, replies: false };
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

  /** A question with its buttons (a typed answer is a modal, shown by the adapter). */
  async ask(prompt: Prompt): Promise<MessageRef> {
    const sent = await this.write(() =>
      this.channel.send({ content: prompt.text, components: this.draw(prompt.rows), allowedMentions: NO_PINGS }),
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
    const text = layout.closedOfferText(offer, result, this.locale);
    await this.write(() =>
      this.channel.messages.edit(ref.id, {
        content: clamp(text, DISCORD_LIMITS.maxMessageLength),
        components: this.draw([layout.ratingRow(offer)]),
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
    if (!layout.offerRows(offer, this.locale, DISCORD_OFFER_SHAPE).cut) return prompt;
    const list = offer.choices.map((label, i) => `${i + 1}. ${label}`).join("\n");
    return clamp(`${prompt}\n\n${list}`, DISCORD_LIMITS.maxMessageLength);
  }

  /**
   * One button per choice, spread evenly over at most 5 rows of 5 (8 choices: two rows
   * of 4), then a row of controls: for a vote "Suggest your own" and "Close vote", for a
   * pick "Write your own" (both open the suggestion modal), then the rating row.
   */
  private choiceRows(offer: ChoiceOffer): ActionRowBuilder<MessageActionRowComponentBuilder>[] {
    return this.draw(layout.offerRows(offer, this.locale, DISCORD_OFFER_SHAPE).rows);
  }

  /** Rows of buttons as action rows. A rating id that cannot be encoded costs its row only. */
  private draw(rows: layout.OfferButton[][]): ActionRowBuilder<MessageActionRowComponentBuilder>[] {
    const drawn: ActionRowBuilder<MessageActionRowComponentBuilder>[] = [];
    for (const all of rows) {
      // Discord's buttons carry no genre: /start takes it as an option.
      const row = all.filter((b): b is layout.OfferButton & { action: layout.OfferAction & CustomIdAction } =>
        carried(b.action),
      );
      if (row.length === 0) continue;
      try {
        drawn.push(
          new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(
            row.map((b) => this.button(b.action, b.label, STYLE[b.tone])),
          ),
        );
      } catch (error) {
        if (!row.every((b) => b.tone === "rating")) throw error;
      }
    }
    return drawn;
  }

  private button(action: CustomIdAction, label: string, style: ButtonStyle): ButtonBuilder {
    return new ButtonBuilder()
      .setCustomId(encodeCustomId(action))
      .setLabel(clamp(label, BUTTON_LABEL_MAX))
      .setStyle(style);
  }
}

const STYLE: Record<layout.OfferButton["tone"], ButtonStyle> = {
  choice: ButtonStyle.Primary,
  control: ButtonStyle.Secondary,
  danger: ButtonStyle.Danger,
  rating: ButtonStyle.Secondary,
};

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
