/**
 * One Discord thread (or text channel) as a `Surface`, built from the channel id and the
 * bot's REST client alone: no gateway connection, no cached channel, nothing from the
 * adapter. So a process that only writes chapters can stream into any thread (see
 * ./surfaces.ts). Everything is written with the bot token, never through an interaction
 * token (those expire after 15 minutes; a queued chapter may start later). Story text
 * never pings anyone (`allowed_mentions: { parse: [] }`). Choices are buttons whose custom
 * ids carry compact, database-checked ids (see ./custom-id.ts).
 *
 * @discordjs/rest queues requests per route and waits out 429s itself, so there is no
 * outbox here; the renderer keeps edits of one message >= 1.2 s apart. Errors leave as
 * `DeliveryError`s, mapped (and logged) once in ./errors.ts.
 */
import {
  ActionRowBuilder,
  type APIChannel,
  type APIMessage,
  ButtonBuilder,
  ButtonStyle,
  ChannelType,
  type MessageActionRowComponentBuilder,
  ModalBuilder,
  type RawFile,
  type REST,
  Routes,
  TextInputBuilder,
  TextInputStyle,
  TimestampStyles,
  time,
} from "discord.js";
import { DISCORD_CUSTOM_ID_FORMAT } from "../../commands/action-codec.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import type { DeliveryLog } from "../../src/render/delivery-error.ts";
import * as layout from "../../src/render/offer-layout.ts";
import { clamp } from "../../src/render/split.ts";
import type {
  ChoiceOffer,
  ChoiceResult,
  MessageRef,
  OfferRedraw,
  OutgoingFile,
  OutgoingImage,
  Prompt,
  Surface,
  SurfaceLimits,
} from "../../src/render/surface.ts";
import { type CustomIdAction, encodeCustomId, SUGGESTION_INPUT_ID } from "./custom-id.ts";
import { discordDeliveryError, discordErrorKind, isThreadArchived } from "./errors.ts";

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
/** Thread names are 1-100 characters. */
const THREAD_NAME_MAX = 100;

/** Never ping anyone: story text and labels come from a model and from readers. */
const NO_PINGS = { parse: [] };

const THREAD_TYPES: ReadonlySet<ChannelType> = new Set([
  ChannelType.PublicThread,
  ChannelType.PrivateThread,
  ChannelType.AnnouncementThread,
]);

/** A message body as the REST API takes it (snake_case), plus files for a multipart upload. */
interface Outgoing {
  body: Record<string, unknown>;
  files?: RawFile[];
}

/** Whether a Discord custom id carries this action. */
function carried(action: layout.OfferAction): action is layout.OfferAction & CustomIdAction {
  return (DISCORD_CUSTOM_ID_FORMAT.kinds as readonly string[]).includes(action.kind);
}

export class DiscordSurface implements Surface {
  readonly limits = DISCORD_LIMITS;
  /** Buttons answer; typed answers come in modals (the bot does not read thread messages). */
  readonly answers = { buttons: true, replies: false };
  readonly showsImages = true;
  private unarchiving: Promise<void> | undefined;
  /** Unarchives done so far: a write that failed before the latest one finished just tries again. */
  private unarchived = 0;
  /** Whether the channel is a thread, asked once when it matters (renaming, naming a permission). */
  private threadness: Promise<boolean> | undefined;

  constructor(
    private readonly rest: REST,
    readonly channelId: string,
    private readonly locale: Locale,
    private readonly log: DeliveryLog,
  ) {}

  async post(text: string): Promise<MessageRef> {
    const sent = await this.send("post", { body: { content: text, allowed_mentions: NO_PINGS } });
    return { id: sent.id };
  }

  /**
   * Fetch-free edit. A deleted message (10008 Unknown Message) throws a "gone"
   * `DeliveryError`, and the renderer re-posts the text as a new message.
   */
  async edit(ref: MessageRef, text: string): Promise<void> {
    await this.patch("edit", ref, { content: text, allowed_mentions: NO_PINGS });
  }

  async offerChoices(offer: ChoiceOffer): Promise<MessageRef> {
    const sent = await this.send("offer choices", {
      body: { content: this.offerText(offer), components: this.choiceRows(offer), allowed_mentions: NO_PINGS },
    });
    return { id: sent.id };
  }

  /** A question with its buttons (a typed answer is a modal, shown by the adapter). */
  async ask(prompt: Prompt): Promise<MessageRef> {
    const sent = await this.send("ask", {
      body: { content: prompt.text, components: this.draw(prompt.rows), allowed_mentions: NO_PINGS },
    });
    return { id: sent.id };
  }

  async updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void> {
    await this.patch("update choices", ref, { ...this.offerMessage(offer), allowed_mentions: NO_PINGS });
  }

  /**
   * The choice taken replaces the choice buttons, so they cannot be pressed again; the
   * chapter's rating row, if any, stays (readers may rate it after the vote).
   */
  async closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void> {
    await this.patch("close choices", ref, { ...this.closedMessage(offer, result), allowed_mentions: NO_PINGS });
  }

  /** Draw a redraw the core returned: the open offer's counts, or its result. */
  async redraw(redraw: OfferRedraw): Promise<void> {
    if (redraw.result === undefined) await this.updateChoices(redraw.ref, redraw.offer);
    else await this.closeChoices(redraw.ref, redraw.offer, redraw.result);
  }

  /**
   * What a redrawn offer's message shows (text and API action rows), as `updateChoices` or
   * `closeChoices` would edit it: the adapter answers a press with it in the interaction's
   * update callback. Nobody is pinged (`allowed_mentions: { parse: [] }` goes with it).
   */
  redrawMessage(redraw: OfferRedraw): { content: string; components: unknown[] } {
    return redraw.result === undefined
      ? this.offerMessage(redraw.offer)
      : this.closedMessage(redraw.offer, redraw.result);
  }

  private offerMessage(offer: ChoiceOffer): { content: string; components: unknown[] } {
    return { content: this.offerText(offer), components: this.choiceRows(offer) };
  }

  private closedMessage(offer: ChoiceOffer, result: ChoiceResult): { content: string; components: unknown[] } {
    const text = layout.closedOfferText(offer, result, this.locale);
    return {
      content: clamp(text, DISCORD_LIMITS.maxMessageLength),
      components: this.draw([layout.ratingRow(offer)]),
    };
  }

  /** "Inkloom is typing…" for about 10 s: not a message. */

  /** A story thread takes the story's title once the writer has one (1-100 characters). */
  async retitle(title: string): Promise<void> {
    const name = title.trim().slice(0, THREAD_NAME_MAX);
    if (name === "" || !(await this.isThread())) return;
    await this.write(
      "rename thread",
      () => this.rest.patch(Routes.channel(this.channelId), { body: { name } }),
      "Manage Threads",
    );
  }

  async notice(text: string): Promise<void> {
    await this.send("notice", {
      body: { content: clamp(text, DISCORD_LIMITS.maxMessageLength), allowed_mentions: NO_PINGS },
    });
  }

  async failed(text: string, retry: { storyId: string }): Promise<void> {
    const row = new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(
      this.button({ kind: "retry", storyId: retry.storyId }, t(this.locale, "retry.button"), ButtonStyle.Primary),
    );
    await this.send("failure notice", {
      body: {
        content: clamp(text, DISCORD_LIMITS.maxMessageLength),
        components: [row.toJSON()],
        allowed_mentions: NO_PINGS,
      },
    });
  }

  async sendFile(file: OutgoingFile): Promise<void> {
    const data = typeof file.content === "string" ? Buffer.from(file.content, "utf8") : Buffer.from(file.content);
    await this.send(
      "send file",
      {
        body: { attachments: [{ id: 0, filename: file.name }], allowed_mentions: NO_PINGS },
        files: [{ name: file.name, data }],
      },
      "Attach Files",
    );
  }

  /**
   * An illustration as an attachment with its caption, as a reply to its passage. A passage
   * deleted meanwhile does not fail the send (`fail_if_not_exists: false`); the reply pings no one.
   */
  async postImage(image: OutgoingImage): Promise<MessageRef> {
    const caption = clamp(image.caption, DISCORD_LIMITS.maxMessageLength);
    const sent = await this.send(
      "post image",
      {
        body: {
          ...(caption.trim() === "" ? {} : { content: caption }),
          attachments: [{ id: 0, filename: image.name }],
          ...(image.replyTo === undefined
            ? {}
            : { message_reference: { message_id: image.replyTo.id, fail_if_not_exists: false } }),
          allowed_mentions: NO_PINGS,
        },
        files: [{ name: image.name, data: Buffer.from(image.bytes), contentType: image.mime }],
      },
      "Attach Files",
    );
    return { id: sent.id };
  }

  /** Create a message in the channel. */
  private async send(action: string, message: Outgoing, needs?: string): Promise<APIMessage> {
    const route = Routes.channelMessages(this.channelId);
    return (await this.write(action, () => this.rest.post(route, message), needs)) as APIMessage;
  }

  /** Edit a message this surface posted. */
  private async patch(action: string, ref: MessageRef, body: Record<string, unknown>): Promise<void> {
    await this.write(action, () => this.rest.patch(Routes.channelMessage(this.channelId, ref.id), { body }));
  }

  /**
   * Run a request. A thread archived meanwhile (50083 "Thread is archived") is unarchived
   * and the request tried once more; writes that fail together share one unarchive. What
   * still fails leaves as a `DeliveryError`, mapped and logged once; a missing permission
   * names the one a moderator must grant.
   */
  private async write(action: string, request: () => Promise<unknown>, needs?: string): Promise<unknown> {
    try {
      const seen = this.unarchived;
      try {
        return await request();
      } catch (error) {
        if (!isThreadArchived(error)) throw error;
        // Unarchived since this request left: it only needs to go again.
        if (this.unarchived === seen) await this.unarchive();
        return await request();
      }
    } catch (error) {
      const permission =
        needs ??
        (discordErrorKind(error) !== "forbidden"
          ? undefined
          : (await this.isThread())
            ? "Send Messages in Threads"
            : "Send Messages");
      throw discordDeliveryError(error, { channelId: this.channelId, action, permission }, this.log);
    }
  }

  /** Concurrent writes share one unarchive request. */
  private unarchive(): Promise<void> {
    this.unarchiving ??= this.rest
      .patch(Routes.channel(this.channelId), { body: { archived: false } })
      .then(() => {
        this.unarchived++;
      })
      .finally(() => {
        this.unarchiving = undefined;
      });
    return this.unarchiving;
  }

  /**
   * Whether the channel is a thread (`GET /channels/{id}`, asked once per surface). When
   * Discord does not say, it is not taken for one (a text channel is never renamed), and
   * the next call asks again.
   */
  private isThread(): Promise<boolean> {
    this.threadness ??= this.rest.get(Routes.channel(this.channelId)).then(
      (channel) => THREAD_TYPES.has((channel as APIChannel).type),
      (error: unknown) => {
        discordDeliveryError(error, { channelId: this.channelId, action: "read channel" }, this.log);
        this.threadness = undefined;
        return false;
      },
    );
    return this.threadness;
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
  private choiceRows(offer: ChoiceOffer): unknown[] {
    return this.draw(layout.offerRows(offer, this.locale, DISCORD_OFFER_SHAPE).rows);
  }

  /** Rows of buttons as action rows (API JSON). A rating id that cannot be encoded costs its row only. */
  private draw(rows: layout.OfferButton[][]): unknown[] {
    const drawn: unknown[] = [];
    for (const all of rows) {
      // Discord's buttons carry no genre: /start takes it as an option.
      const row = all.filter((b): b is layout.OfferButton & { action: layout.OfferAction & CustomIdAction } =>
        carried(b.action),
      );
      if (row.length === 0) continue;
      try {
        drawn.push(
          new ActionRowBuilder<MessageActionRowComponentBuilder>()
            .addComponents(row.map((b) => this.button(b.action, b.label, STYLE[b.tone])))
            .toJSON(),
        );
      } catch (error) {
        if (!row.every((b) => b.tone === "rating")) throw error;
        this.log(`discord channel ${this.channelId}: rating buttons left out: ${String(error)}`);
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
