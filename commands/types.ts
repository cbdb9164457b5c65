/**
 * Commands are defined once, as data plus a handler whose arguments are typed
 * from that data. Each adapter renders the data for its platform (terminal
 * parsing now; Discord application commands and Telegram setMyCommands later).
 */
import type { Genre } from "../src/agent/types.ts";
import type { Locale } from "../src/i18n/locale.ts";
import type { OfferRedraw, Surface } from "../src/render/surface.ts";
import type { BallotService } from "../src/story/ballot-service.ts";
import type { BookAssembler } from "../src/story/book-assembler.ts";
import type { CardService } from "../src/story/cards.ts";
import type { WriteTicket } from "../src/story/chapter-job.ts";
import type { Actor, Conversation } from "../src/story/identity.ts";
import type { IllustrationPlanning } from "../src/story/illustration-planning.ts";
import type { LoreService } from "../src/story/lore-service.ts";
import type { ChapterRatings } from "../src/story/ratings.ts";
import type { StoryCommands } from "../src/story/story-commands.ts";
import type { StoryQueries } from "../src/story/story-queries.ts";
import type { TalkService } from "../src/story/talk.ts";
import type { ThemeService } from "../src/story/themes.ts";
import type { WorkspaceSettingsStore } from "../src/story/workspace-settings.ts";

export interface Localized {
  en: string;
  zh: string;
}

export interface OptionSpec {
  readonly name: string;
  readonly type: "string" | "integer";
  readonly required: boolean;
  readonly description: Localized;
  /** Strings: longest accepted value. */
  readonly maxLength?: number;
  /** Integers: smallest accepted value. */
  readonly min?: number;
}

export interface CommandSpec {
  readonly name: string;
  readonly description: Localized;
  readonly options: readonly OptionSpec[];
  /** Example invocation, shown when a required option is missing. */
  readonly example: string;
  /** Not listed in /help or registered as a slash command (choices and typed actions). */
  readonly hidden?: boolean;
  /** Only on these platforms (default: all). */
  readonly platforms?: readonly Platform[];
  /**
   * Typed as text (terminal, Telegram): the part before a colon, else the first word,
   * goes to the first option and the rest to the second ("/character Mara: grey coat").
   * Otherwise the whole text goes to the first option.
   */
  readonly splitText?: boolean;
  /**
   * Typed as text: the first word goes to the first option, then `option:value` pairs fill
   * the others ("/theme add name:Noir rating:teen rules:no gore"); text before any pair
   * goes to the second option ("/theme remove Noir").
   */
  readonly keyedText?: boolean;
}

export type Platform = "console" | "telegram" | "discord";

/** Whether a command is offered on a platform. */
export function availableOn(spec: CommandSpec, platform: string): boolean {
  return spec.platforms === undefined || (spec.platforms as readonly string[]).includes(platform);
}

type ValueOf<O extends OptionSpec> = O["type"] extends "integer" ? number : string;

/** Handler arguments typed from the spec's options. */
export type ArgsOf<S extends CommandSpec> = {
  [O in S["options"][number] as O["name"]]: O["required"] extends true ? ValueOf<O> : ValueOf<O> | undefined;
};

/** A question the core asked and waits to be answered (/start's genre and scenario, a suggestion). */
export type Question =
  | { field: "genre" }
  /** `theme`: the theme picked instead of a genre (its name), its rules then bind the story. */
  | { field: "scenario"; genre: Genre; theme?: string }
  | { field: "suggestion"; storyId: string; revision: number };

/** A question asked in a conversation: who asked for it, and the message asking it (replies answer it). */
export type PendingQuestion = Question & { by: string; messageId?: string };

/**
 * Per-conversation state between actions. The core reads and writes it; the adapter only
 * keeps one per conversation.
 */
export interface Session {
  /** The story this conversation is playing. */
  storyId?: string;
  /** `storyId` was looked up after a restart (the story the conversation played last). */
  hydrated?: boolean;
  /** /start waits for a genre or a scenario. */
  ask?: PendingQuestion;
  /** Suggestion prompts waiting for a reply: prompt message id -> the ballot it suggests to. */
  replies?: Map<string, { storyId: string; revision: number }>;
}

export interface CommandContext {
  actor: Actor;
  /** The actor may moderate this conversation (chat admin, server moderator; always in the terminal). */
  moderator: boolean;
  conversation: Conversation;
  locale: Locale;
  surface: Surface;
  session: Session;
  /** The commands that change a story. */
  stories: StoryCommands;
  /** Where stories stand; their choices offered again. */
  queries: StoryQueries;
  /** The current branch as a book (/export). */
  books: BookAssembler;
  /** Votes, write-ins and closing a vote early. */
  ballots: BallotService;
  /** Readers' 👍/👎 on chapters. */
  ratings: ChapterRatings;
  /** /talk: a character answers a reader, outside the story. */
  talks: TalkService;
  settings: WorkspaceSettingsStore;
  themes: ThemeService;
  /**
   * A one-on-one conversation (a Telegram private chat, the terminal): /start offers the
   * owner's theme catalogue (THEMES_FILE) besides this conversation's own themes.
   */
  privateChat?: boolean;
  /** The conversation is age-restricted (a Discord channel marked NSFW): adult themes may start here. */
  ageRestricted: boolean;
  /**
   * What the platform offers with a share code besides the code itself: a deep link that
   * starts the remix (Telegram's t.me/<bot>?start=remix-<code>), a "Make my version"
   * button (Discord). Absent: the code alone (the terminal).
   */
  shareOffer?: { link?: (code: string) => string; button?: boolean };
  /** How the platform spells a command (Discord groups story commands under `/story`); default `/name`. */
  commandLabel?: (name: string) => string;
  /** Illustrations: /illustrate and the visual bible (/character). */
  illustrations: IllustrationPlanning;
  /** Lore (world info) of stories and themes (/lore). */
  lore: LoreService;
  /** Platform id of the message or interaction carrying the command: a redelivery has the same one. */
  requestId?: string;
  /** Where refusals go when they should not be public (Discord's ephemeral replies); default: the surface. */
  replyPrivately?: (text: string) => Promise<void>;
  /**
   * The adapter redraws the offer a press changed in its answer to the press (Discord's
   * update callback, outside the bot's request budget): a vote or a close then returns its
   * `redraw` instead of editing the message. Absent: the ballot edits the message itself.
   */
  drawsRedraws?: boolean;
  /** The file sent with the command (an attachment, or one the command's message replies to). */
  attachment?: IncomingFile;
  /** The terminal only: a file named by its path (/card import ./mara.png). Chat platforms have none. */
  openPath?: (path: string) => IncomingFile;
  /** Character cards: /card import and /card export. */
  cards: CardService;
}

/**
 * A file the reader sent with a command: a Telegram document, a Discord attachment, or in
 * the terminal a path the reader typed. Nothing is downloaded until `read`.
 */
export interface IncomingFile {
  name: string;
  /** Its size in bytes, when the platform says so before the download. */
  size?: number;
  /** Its bytes, at most `maxBytes + 1` of them: more than `maxBytes` means the file is larger. */
  read(maxBytes: number): Promise<Uint8Array>;
}

/** What the adapter should do after a handler returns. */
export type CommandOutcome =
  /**
   * `reply`: a short answer for the actor alone (a button's toast, an ephemeral reply).
   * `redraw`: the offer's new look, for the adapter to draw (with `drawsRedraws`).
   */
  | { kind: "done"; reply?: string; redraw?: OfferRedraw }
  /** A chapter is being written; the adapter may wait for `ticket.job.finished`. */
  | { kind: "writing"; ticket: WriteTicket }
  /** The command needs more input: the core asks (a Discord adapter shows its modal instead). */
  | { kind: "ask"; question: Question }
  | { kind: "quit" }
  /** The command was refused or failed; the reader has been told why and nothing changed. */
  | { kind: "failed" };

export interface Command<S extends CommandSpec = CommandSpec> {
  readonly spec: S;
  run(ctx: CommandContext, args: ArgsOf<S>): Promise<CommandOutcome>;
}

/** Build a command; `as const` on the spec keeps option names and types for `ArgsOf`. */
export function defineCommand<const S extends CommandSpec>(
  spec: S,
  run: (ctx: CommandContext, args: ArgsOf<S>) => Promise<CommandOutcome>,
): Command<S> {
  return { spec, run };
}

/** The services a command reaches, the same in every process that handles reader actions. */
export type CommandServices = Pick<
  CommandContext,
  | "stories"
  | "ballots"
  | "ratings"
  | "queries"
  | "books"
  | "settings"
  | "themes"
  | "illustrations"
  | "talks"
  | "lore"
  | "cards"
>;

/** The command services out of anything holding them (an engine, an adapter's deps). */
export function commandServices(from: CommandServices): CommandServices {
  const { stories, ballots, ratings, queries, books, settings, themes, illustrations, talks, lore, cards } = from;
  return { stories, ballots, ratings, queries, books, settings, themes, illustrations, talks, lore, cards };
}
