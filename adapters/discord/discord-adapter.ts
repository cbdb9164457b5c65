/**
 * The Discord bot (Guilds intent only): slash commands, modals and buttons
 * become command invocations, votes and write-ins; each story lives in its own
 * public thread and is written there with the bot token, never through the
 * 15-minute interaction token. Every interaction is acknowledged within Discord's
 * 3 s: a command at once (defer or modal), a press with its answer when the core is
 * quick (an update of the pressed offer, or an ephemeral reply), else deferred first.
 *
 * Requests count against the bot's global budget (50/s, shared by every process of the
 * bot through one REST proxy, see docs/architecture.md) except interaction callbacks: so
 * presses are answered in their callback, and the channels stories live in are looked up
 * over REST once per process.
 */

import {
  ActionRowBuilder,
  type AutocompleteInteraction,
  type ButtonInteraction,
  ChannelType,
  Client,
  type ClientOptions,
  GatewayIntentBits,
  type Interaction,
  type InteractionUpdateOptions,
  MessageFlags,
  ModalBuilder,
  type ModalSubmitInteraction,
  PermissionFlagsBits,
  type RepliableInteraction,
  type SendableChannels,
  type TextChannel,
  TextInputBuilder,
  TextInputStyle,
  type ThreadChannel,
} from "discord.js";
import { type ActionResult, handleAction } from "../../commands/actions.ts";
import { branchElsewhere } from "../../commands/branch.ts";
import { describeError, isReported } from "../../commands/dispatch.ts";
import { findCommand } from "../../commands/index.ts";
import type { CommandContext, IncomingFile, Session } from "../../commands/types.ts";
import { commandServices } from "../../commands/types.ts";
import { GENRES, type Genre } from "../../src/agent/types.ts";
import type { Locale } from "../../src/i18n/locale.ts";
import { t } from "../../src/i18n/messages.ts";
import type { Actor, Conversation } from "../../src/story/identity.ts";
import { LIMITS } from "../../src/story/limits.ts";
import type { BotDeps } from "../bot-deps.ts";
import { readAtMost } from "../shared/download.ts";
import { STORY_SUBCOMMANDS } from "./command-data.ts";
import { type CustomIdAction, decodeCustomId, SUGGESTION_INPUT_ID } from "./custom-id.ts";
import { type DiscordSurface, suggestionModal } from "./discord-surface.ts";
import { discordDeliveryError } from "./errors.ts";
import { ChannelGuilds, discordAudiences, discordSurfaceFor } from "./surfaces.ts";

export interface DiscordOptions {
  token: string;
  applicationId: string;
  /** REST base URL: Discord, or the REST proxy every process of the bot shares (DISCORD_API_ROOT). */
  apiRoot: string;
  /**
   * Gateway shards: `auto` (Discord's recommendation from GET /gateway/bot, the default) or
   * a count, with the ids this process runs (default: all of them).
   */
  shards?: "auto" | { count: number; ids?: number[] };
}

/** discord.js's sharding options for `shards`. */
export function shardingOptions(shards: DiscordOptions["shards"]): Pick<ClientOptions, "shards" | "shardCount"> {
  if (shards === undefined || shards === "auto") return { shards: "auto" };
  return { shardCount: shards.count, shards: shards.ids ?? Array.from({ length: shards.count }, (_, i) => i) };
}

export type DiscordDeps = BotDeps;

/** Any channel a bot can send to: a thread (the usual home of a story), a text channel, a DM... */
type DiscordStoryChannel = SendableChannels | ThreadChannel | TextChannel;

/** A modal field the reader may leave out (absent or empty). */
function optionalField(interaction: { fields: { getTextInputValue(id: string): string } }, id: string): string {
  // discord.js throws for a field the submission does not carry: look for it first.
  const submitted = (interaction.fields as { fields?: ReadonlyMap<string, unknown> }).fields;
  return submitted?.has(id) === true ? interaction.fields.getTextInputValue(id) : "";
}

/** A channel marked age-restricted (NSFW), or a thread inside one. */
function isAgeRestricted(channel: unknown): boolean {
  const c = channel as { nsfw?: boolean; parent?: { nsfw?: boolean } | null };
  return c.nsfw === true || c.parent?.nsfw === true;
}

/** The /start modal's custom id carries the genre picked in the command. */
const START_MODAL = "inkstart:";
const SCENARIO_INPUT = "scenario";
const CAST_INPUT = "cast";
const CAST_NOTES_MAX = 500;
const THREAD_NAME_MAX = 100;
/**
 * A press is answered in its callback when the core is done within this time of its arrival;
 * later, it is deferred first (Discord refuses callbacks after 3 s, and the gateway took some).
 */
const ANSWER_IN_CALLBACK_MS = 2000;

/** Nobody is pinged by the bot's answers: they may quote what readers wrote. */
const NO_PINGS = { parse: [] };

/** A press the core handles: a button, or a modal's submit. */
type Press = ButtonInteraction | ModalSubmitInteraction;

export class DiscordAdapter {
  readonly client: Client;
  private readonly sessions = new Map<string, Session>();
  /** The guilds of the channels stories live in, learnt from interactions too: read over REST once. */
  private readonly channels = new ChannelGuilds();

  constructor(
    private readonly options: DiscordOptions,
    private readonly deps: DiscordDeps,
  ) {
    this.client = new Client({
      intents: [GatewayIntentBits.Guilds],
      rest: { api: options.apiRoot },
      ...shardingOptions(options.shards),
    });
    deps.audiences.platform("discord", discordAudiences(this.client.rest, deps.settings, deps.log, this.channels));
    this.client.on("interactionCreate", (interaction) => {
      const received = Date.now();
      void this.onInteraction(interaction, received).catch((error: unknown) => {
        deps.log(`discord interaction failed: ${String(error)}`);
      });
    });
  }

  async start(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.client.once("clientReady", () => resolve()));
    await this.client.login(this.options.token);
    await ready;
  }

  /** Readiness: the gateway connection is up. */
  async ready(): Promise<void> {
    if (!this.client.isReady()) throw new Error("the Discord gateway is not connected");
  }

  async stop(): Promise<void> {
    await this.client.destroy();
  }

  private async onInteraction(interaction: Interaction, received: number): Promise<void> {
    if (interaction.isAutocomplete()) {
      await this.autocompleteTheme(interaction);
      return;
    }
    if (interaction.isChatInputCommand()) {
      if (interaction.commandName === "start") {
        const genre = (interaction.options.getString("genre") ?? "none") as Genre;
        const themeName = (interaction.options.getString("theme") ?? "").slice(0, 50);
        // A modal must be the first answer, within 3 s even under load: no database
        // read before it. The channel and the theme are checked when it is submitted.
        await interaction.showModal(
          this.startModal(GENRES.includes(genre) ? genre : "none", themeName, this.localeOf(interaction)),
        );
        return;
      }
      await interaction.deferReply({ flags: MessageFlags.Ephemeral });
      const sub = interaction.options.getSubcommand(false);
      const raw: Record<string, unknown> = {};
      for (const o of interaction.options.data[0]?.options ?? []) raw[o.name] = o.value;
      if (interaction.commandName === "remix") for (const o of interaction.options.data) raw[o.name] = o.value;
      if (interaction.commandName === "story" && sub !== null) {
        await this.storyCommand(interaction, sub);
      } else if (interaction.commandName === "theme" && sub !== null) {
        await this.run(interaction, "theme", { ...raw, action: sub });
      } else if (interaction.commandName === "config") {
        await this.run(interaction, "settings", sub === "set" ? { change: `${raw.key} ${raw.value}` } : {});
      } else if (interaction.commandName === "remix") {
        await this.remixIntoThread(interaction, raw);
      } else if (interaction.commandName === "help") {
        await this.run(interaction, "help", {});
      } else if (interaction.commandName === "card" && sub !== null) {
        const attachment = sub === "import" ? interaction.options.getAttachment("file") : null;
        const file: IncomingFile | undefined =
          attachment === null
            ? undefined
            : {
                name: attachment.name,
                size: attachment.size,
                read: (maxBytes) => readAtMost(attachment.url, maxBytes),
              };
        const cardRaw = { action: sub, ...(sub === "export" ? { target: raw.name } : {}) };
        // Stories live in threads: a card imported in a channel starts its story in a new thread.
        if (file !== undefined && interaction.channel?.type === ChannelType.GuildText) {
          await this.startFromCard(interaction, file);
        } else {
          await this.run(interaction, "card", cardRaw, file);
        }
      } else if (["illustrate", "character", "talk", "lore"].includes(interaction.commandName)) {
        const options: Record<string, unknown> = {};
        for (const o of interaction.options.data) options[o.name] = o.value;
        await this.run(interaction, interaction.commandName, options);
      } else {
        await interaction.editReply(
          t(this.localeOf(interaction), "error.unknownCommand", { name: interaction.commandName }),
        );
      }
      return;
    }
    if (interaction.isModalSubmit()) {
      if (interaction.customId.startsWith(START_MODAL)) {
        await interaction.deferReply({ flags: MessageFlags.Ephemeral });
        const [genre = "none", theme = ""] = interaction.customId.slice(START_MODAL.length).split(":");
        await this.startStory(interaction, genre as Genre, theme);
        return;
      }
      const action = decodeCustomId(interaction.customId);
      const text =
        action?.kind === "suggestion" ? interaction.fields.getTextInputValue(SUGGESTION_INPUT_ID) : undefined;
      await this.press(interaction, received, action?.kind === "suggestion" ? action : undefined, text);
      return;
    }
    if (interaction.isButton()) {
      const action = decodeCustomId(interaction.customId);
      if (action?.kind === "remix") {
        // "Make my version": the presser's own story, in a new thread.
        await interaction.deferReply({ flags: MessageFlags.Ephemeral });
        await this.remixIntoThread(interaction, { code: action.code });
        return;
      }
      if (action?.kind === "suggest") {
        // The question is a modal, which must be the first answer: it is checked when submitted.
        await interaction.showModal(
          suggestionModal(this.localeOf(interaction), { ...action, mode: "vote" }, LIMITS.writeIn),
        );
        return;
      }
      await this.press(interaction, received, action);
    }
  }

  /**
   * A button or a modal, handled by the core and answered in the interaction's callback,
   * which costs nothing of the bot's request budget: a pressed offer the core redrew (a
   * vote's counts, a closed vote's result) as an update of that message, anything else the
   * reader alone should read as an ephemeral reply. When the core takes longer than
   * `ANSWER_IN_CALLBACK_MS`, the press is deferred (ephemeral), the offer redrawn with the
   * bot token and the answer written into the deferred reply.
   */
  private async press(
    interaction: Press,
    received: number,
    action: CustomIdAction | undefined,
    text?: string,
  ): Promise<void> {
    const locale = this.localeOf(interaction);
    const channel = interaction.channel;
    if (action === undefined || channel === null || !("send" in channel)) {
      await interaction.reply({ content: t(locale, "error.stalePick"), flags: MessageFlags.Ephemeral });
      return;
    }
    const pressed = interaction.isButton() ? interaction.message.id : undefined;
    const said: string[] = [];
    const work = (async () => {
      const ctx = await this.context(interaction, channel as DiscordStoryChannel, {
        drawsRedraws: pressed !== undefined,
        replyPrivately: async (line) => {
          said.push(line);
        },
      });
      const result = await handleAction(
        { kind: "press", action, ...(text === undefined ? {} : { text }) },
        ctx,
        this.deps.log,
      );
      return { surface: ctx.surface as DiscordSurface, result };
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), Math.max(0, received + ANSWER_IN_CALLBACK_MS - Date.now()));
    });
    let first: Awaited<typeof work> | "late";
    try {
      first = await Promise.race([work, late]);
    } catch (error) {
      await interaction
        .reply({ content: describeError(error, locale, "discord"), flags: MessageFlags.Ephemeral })
        .catch((e: unknown) => this.deps.log(`discord: press not answered: ${String(e)}`));
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (first === "late") {
      await interaction.deferReply({ flags: MessageFlags.Ephemeral });
      let done: Awaited<typeof work>;
      try {
        done = await work;
      } catch (error) {
        await interaction.editReply(describeError(error, locale, "discord"));
        throw error;
      }
      await this.drawOn(done.surface, done.result);
      const answer = this.answerOf(done.result, said, locale);
      if (answer !== undefined) await interaction.editReply({ content: answer, allowedMentions: NO_PINGS });
      return;
    }
    const { surface, result } = first;
    const { redraw } = result;
    if (redraw !== undefined && interaction.isButton() && redraw.ref.id === pressed) {
      // The live count (or the result) is the reader's confirmation: no reply besides.
      const update: InteractionUpdateOptions = {
        ...(surface.redrawMessage(redraw) as InteractionUpdateOptions),
        allowedMentions: NO_PINGS,
      };
      try {
        await interaction.update(update);
        return;
      } catch (error) {
        this.deps.log(`discord: press not answered with the redrawn offer: ${String(error)}`);
        await this.drawOn(surface, result);
        return;
      }
    }
    if (redraw !== undefined) await this.drawOn(surface, result);
    const answer = this.answerOf(result, said, locale);
    if (answer !== undefined) {
      await interaction.reply({ content: answer, flags: MessageFlags.Ephemeral, allowedMentions: NO_PINGS });
    } else if (interaction.isButton() || interaction.isFromMessage()) {
      // Refused with nothing more to say: acknowledged without a word.
      await interaction.deferUpdate();
    } else {
      await interaction.reply({ content: t(locale, "error.internal"), flags: MessageFlags.Ephemeral });
    }
  }

  /** What a press's reader alone reads: the core's answer, else "Done." unless it failed (and said so). */
  private answerOf(result: ActionResult, said: string[], locale: Locale): string | undefined {
    if (result.reply !== undefined) return result.reply;
    if (said.length > 0) return said.join("\n");
    return result.outcome.kind === "failed" ? undefined : t(locale, "discord.done");
  }

  /** A redraw the press's answer could not carry, drawn with the bot token. */
  private async drawOn(surface: DiscordSurface, result: ActionResult): Promise<void> {
    if (result.redraw === undefined) return;
    await surface
      .redraw(result.redraw)
      .catch((e: unknown) => this.deps.log(`discord: redrawn offer not shown: ${String(e)}`));
  }

  /** /start's modal was submitted: open a public thread and begin the story in it. */
  /** `/card import` in a channel: the card's story in a thread of its own (removed again if refused). */
  private async startFromCard(interaction: RepliableInteraction, file: IncomingFile): Promise<void> {
    const locale = this.localeOf(interaction);
    const refusal = await this.channelRefusal(interaction);
    if (refusal !== undefined) {
      await interaction.editReply(refusal);
      return;
    }
    const channel = interaction.channel;
    if (channel === null || channel.type !== ChannelType.GuildText) return;
    let thread: DiscordStoryChannel;
    try {
      thread = await channel.threads.create({
        name: (file.name.replace(/\.[^.]*$/, "") || "card").slice(0, THREAD_NAME_MAX),
        type: ChannelType.PublicThread,
        autoArchiveDuration: 1440,
      });
    } catch (error) {
      await interaction.editReply(describeError(this.threadError(error, channel.id), locale, "discord"));
      return;
    }
    const ctx = await this.context(interaction, thread);
    const { outcome } = await handleAction(
      { kind: "command", name: "card", raw: { action: "import" }, addressed: true, file },
      ctx,
      this.deps.log,
    );
    if (outcome.kind === "failed") {
      await thread.delete().catch((e: unknown) => this.deps.log(`discord: empty thread not deleted: ${String(e)}`));
      return;
    }
    await interaction.editReply(t(locale, "discord.started", { thread: `<#${thread.id}>` }));
  }

  private async startStory(
    interaction: RepliableInteraction & { fields: { getTextInputValue(id: string): string } },
    genre: Genre,
    theme: string,
  ): Promise<void> {
    const locale = this.localeOf(interaction);
    const notes = optionalField(interaction, CAST_INPUT).trim();
    // Cast notes travel with the scenario: the opening plan builds the cast from both.
    const scenario = [
      interaction.fields.getTextInputValue(SCENARIO_INPUT).trim(),
      ...(notes === "" ? [] : [`${t(locale, "discord.castNotes")}: ${notes}`]),
    ].join("\n\n");
    const refusal = (await this.channelRefusal(interaction)) ?? (await this.themeRefusal(interaction, theme));
    if (refusal !== undefined) {
      await interaction.editReply(refusal);
      return;
    }
    const channel = interaction.channel;
    if (channel === null || channel.type !== ChannelType.GuildText) {
      await interaction.editReply(t(locale, "discord.startHere"));
      return;
    }
    if (scenario === "") {
      await interaction.editReply(t(locale, "error.emptyScenario"));
      return;
    }
    let thread: DiscordStoryChannel;
    try {
      thread = await channel.threads.create({
        name: scenario.slice(0, THREAD_NAME_MAX),
        type: ChannelType.PublicThread,
        autoArchiveDuration: 1440,
      });
    } catch (error) {
      await interaction.editReply(describeError(this.threadError(error, channel.id), locale, "discord"));
      return;
    }
    const ctx = await this.context(interaction, thread);
    const { outcome } = await handleAction(
      { kind: "command", name: "start", raw: { scenario, genre, ...(theme === "" ? {} : { theme }) }, addressed: true },
      ctx,
      this.deps.log,
    );
    // A refused start leaves no empty thread behind.
    if (outcome.kind === "failed") {
      await thread.delete().catch((e: unknown) => this.deps.log(`discord: empty thread not deleted: ${String(e)}`));
    }
    if (outcome.kind !== "failed")
      await interaction.editReply(t(locale, "discord.started", { thread: `<#${thread.id}>` }));
  }

  /** `/story <sub>` in a story thread. */
  private async storyCommand(interaction: RepliableInteraction, sub: string): Promise<void> {
    if (!(STORY_SUBCOMMANDS as readonly string[]).includes(sub)) {
      await interaction.editReply(t(this.localeOf(interaction), "error.unknownCommand", { name: sub }));
      return;
    }
    const raw: Record<string, unknown> = {};
    if (interaction.isChatInputCommand()) {
      for (const o of interaction.options.data[0]?.options ?? []) raw[o.name] = o.value;
    }
    if (sub === "branch") {
      await this.branchIntoThread(interaction, raw);
      return;
    }
    await this.run(interaction, sub, raw);
  }

  /**
   * `/story branch <n>` continues in a new thread, linked from the old one: the
   * story moves to it, and the old thread keeps the chapters it showed.
   */
  private async branchIntoThread(interaction: RepliableInteraction, raw: Record<string, unknown>): Promise<void> {
    const locale = this.localeOf(interaction);
    const channel = interaction.channel;
    if (!channel?.isThread()) {
      await interaction.editReply(t(locale, "error.noStory"));
      return;
    }
    const old = channel;
    const parent = old.parent;
    if (parent === null || parent.type !== ChannelType.GuildText) {
      await interaction.editReply(t(locale, "error.noStory"));
      return;
    }
    const oldCtx = await this.context(interaction, old);
    let thread: DiscordStoryChannel;
    try {
      thread = await parent.threads.create({
        name: `${old.name} · ${String(raw.chapter ?? "")}`.slice(0, THREAD_NAME_MAX),
        type: ChannelType.PublicThread,
        autoArchiveDuration: 1440,
      });
    } catch (error) {
      await interaction.editReply(describeError(this.threadError(error, parent.id), locale, "discord"));
      return;
    }
    const ctx = await this.context(interaction, thread);
    const outcome = await branchElsewhere(ctx, oldCtx, raw, this.deps.log);
    if (outcome.kind === "failed") {
      // Refused (no such chapter, not the starter...): the story stayed where it was.
      await thread.delete().catch((e: unknown) => this.deps.log(`discord: empty thread not deleted: ${String(e)}`));
      return;
    }
    await this.surfaceIn(old.id, locale)
      .notice(t(locale, "discord.branchedTo", { number: String(raw.chapter), thread: `<#${thread.id}>` }))
      .catch((e: unknown) => this.deps.log(`discord: branch link not posted: ${String(e)}`));
    await ctx.surface
      .notice(t(locale, "discord.branchedFrom", { number: String(raw.chapter), thread: `<#${old.id}>` }))
      .catch((e: unknown) => this.deps.log(`discord: branch link not posted: ${String(e)}`));
    await interaction.editReply(t(locale, "discord.done"));
  }

  /**
   * `/remix` or a "Make my version" press: the remix begins in a new public thread of the
   * text channel (a thread's parent), where the reader reads it; a refused remix leaves no
   * thread behind.
   */
  private async remixIntoThread(interaction: RepliableInteraction, raw: Record<string, unknown>): Promise<void> {
    const locale = this.localeOf(interaction);
    const here = interaction.channel;
    const parent = here?.isThread() === true ? here.parent : here;
    if (parent === null || parent === undefined || parent.type !== ChannelType.GuildText) {
      await interaction.editReply(t(locale, "discord.startHere"));
      return;
    }
    const refusal = await this.channelRefusal(interaction, parent.id);
    if (refusal !== undefined) {
      await interaction.editReply(refusal);
      return;
    }
    let thread: DiscordStoryChannel;
    try {
      thread = await parent.threads.create({
        name: t(locale, "share.button").slice(0, THREAD_NAME_MAX),
        type: ChannelType.PublicThread,
        autoArchiveDuration: 1440,
      });
    } catch (error) {
      await interaction.editReply(describeError(this.threadError(error, parent.id), locale, "discord"));
      return;
    }
    const ctx = await this.context(interaction, thread);
    const { outcome } = await handleAction(
      { kind: "command", name: "remix", raw, addressed: true },
      ctx,
      this.deps.log,
    );
    if (outcome.kind === "failed") {
      await thread.delete().catch((e: unknown) => this.deps.log(`discord: empty thread not deleted: ${String(e)}`));
      return;
    }
    await interaction.editReply(t(locale, "discord.remixed", { thread: `<#${thread.id}>` }));
  }

  private async run(
    interaction: RepliableInteraction,
    name: string,
    raw: Record<string, unknown>,
    file?: IncomingFile,
  ): Promise<void> {
    const command = findCommand(name, "discord");
    const channel = interaction.channel;
    if (command === undefined || channel === null || !("send" in channel)) {
      await interaction.editReply(t(this.localeOf(interaction), "error.noStory"));
      return;
    }
    const ctx = await this.context(interaction, channel as DiscordStoryChannel);
    const { outcome } = await handleAction(
      { kind: "command", name, raw, addressed: true, ...(file === undefined ? {} : { file }) },
      ctx,
      this.deps.log,
    );
    if (outcome.kind !== "failed") await interaction.editReply(t(ctx.locale, "discord.done"));
  }

  private async context(
    interaction: RepliableInteraction,
    channel: DiscordStoryChannel,
    overrides: Pick<CommandContext, "drawsRedraws" | "replyPrivately"> = {},
  ): Promise<CommandContext> {
    const conversation: Conversation = {
      platform: "discord",
      workspaceId: interaction.guildId ?? "dm",
      id: channel.id,
    };
    this.channels.learn(channel.id, channel.type, conversation.workspaceId);
    const settings = await this.deps.settings.get("discord", conversation.workspaceId);
    const locale = settings.locale;
    let session = this.sessions.get(channel.id);
    if (session === undefined) {
      session = {};
      this.sessions.set(channel.id, session);
    }
    return {
      actor: this.actor(interaction),
      moderator: interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false,
      conversation,
      locale,
      surface: this.surfaceIn(channel.id, locale),
      session,
      ...commandServices(this.deps),
      requestId: interaction.id,
      ageRestricted: isAgeRestricted(channel),
      commandLabel: (name) =>
        (STORY_SUBCOMMANDS as readonly string[]).includes(name)
          ? `/story ${name}`
          : name === "settings"
            ? "/config"
            : `/${name}`,
      replyPrivately: async (text) => {
        await interaction.editReply(text);
      },
      shareOffer: { button: true },
      ...overrides,
    };
  }

  /** A channel's surface: built from its id and the REST client alone. */
  private surfaceIn(channelId: string, locale: Locale): DiscordSurface {
    return discordSurfaceFor(this.client.rest, `discord:${channelId}`, locale, this.deps.log);
  }

  /** Why a story thread could not be created in `parentId`, mapped (and logged) once. */
  private threadError(error: unknown, parentId: string) {
    const where = { channelId: parentId, action: "create thread", permission: "Create Public Threads" };
    return discordDeliveryError(error, where, this.deps.log);
  }

  /** Themes offered at /start: the server's, adult ones only in age-restricted channels. */
  private async autocompleteTheme(interaction: AutocompleteInteraction): Promise<void> {
    const typed = String(interaction.options.getFocused()).toLowerCase();
    const themes = await this.deps.themes.list({ platform: "discord", externalId: interaction.guildId ?? "dm" });
    const allowed = themes.filter(
      (th) => (th.rating !== "adult" || isAgeRestricted(interaction.channel)) && th.name.toLowerCase().includes(typed),
    );
    await interaction.respond(allowed.slice(0, 25).map((th) => ({ name: th.name, value: th.name })));
  }

  /** Why stories may not start in this channel (the server limited them to some channels). */
  private async channelRefusal(
    interaction: RepliableInteraction,
    channelId = interaction.channelId,
  ): Promise<string | undefined> {
    const settings = await this.deps.settings.get("discord", interaction.guildId ?? "dm");
    const allowed = settings.allowedChannels;
    if (allowed.length === 0 || (channelId !== null && allowed.includes(channelId))) {
      return undefined;
    }
    return t(this.localeOf(interaction), "error.channelNotAllowed", {
      channels: allowed.map((c) => `<#${c}>`).join(" "),
    });
  }

  /** Why /start cannot use this theme here (unknown, or adult outside an age-restricted channel). */
  private async themeRefusal(interaction: RepliableInteraction, name: string): Promise<string | undefined> {
    if (name === "") return undefined;
    const locale = this.localeOf(interaction);
    try {
      const theme = await this.deps.themes.find({ platform: "discord", externalId: interaction.guildId ?? "dm" }, name);
      if (theme.rating === "adult" && !isAgeRestricted(interaction.channel)) {
        return t(locale, "error.adultTheme", { name: theme.name });
      }
      return undefined;
    } catch (error) {
      if (!isReported(error)) this.deps.log(`discord: theme check failed: ${String(error)}`);
      return describeError(error, locale, "discord");
    }
  }

  private startModal(genre: Genre, theme: string, locale: Locale): ModalBuilder {
    return new ModalBuilder()
      .setCustomId(`${START_MODAL}${genre}:${theme}`)
      .setTitle(t(locale, "discord.startTitle").slice(0, 45))
      .addComponents(
        new ActionRowBuilder<TextInputBuilder>().addComponents(
          new TextInputBuilder()
            .setCustomId(SCENARIO_INPUT)
            .setLabel(t(locale, "discord.scenarioLabel").slice(0, 45))
            .setStyle(TextInputStyle.Paragraph)
            .setMinLength(1)
            // Room for the cast notes: the two travel together as the scenario.
            .setMaxLength(LIMITS.scenario - CAST_NOTES_MAX - 50)
            .setRequired(true),
        ),
        new ActionRowBuilder<TextInputBuilder>().addComponents(
          new TextInputBuilder()
            .setCustomId(CAST_INPUT)
            .setLabel(t(locale, "discord.castLabel").slice(0, 45))
            .setStyle(TextInputStyle.Paragraph)
            .setMaxLength(CAST_NOTES_MAX)
            .setRequired(false),
        ),
      );
  }

  private actor(interaction: Interaction): Actor {
    return { platform: "discord", id: interaction.user.id, name: interaction.user.username };
  }

  private localeOf(interaction: Interaction): Locale {
    return interaction.locale.startsWith("zh") ? "zh" : "en";
  }
}
