/**
 * The `Surface` port: one conversation (Discord thread, Telegram chat, terminal)
 * that the core writes to. Adapters implement it; only the renderer
 * (src/render/stream-renderer.ts) and command handlers call it.
 */
import type { Genre } from "../agent/types.ts";

/** Platform numbers the renderer must respect. */
export interface SurfaceLimits {
  /** Longest message the platform accepts, in characters (Discord 2000, Telegram 4096). */
  maxMessageLength: number;
  /** Minimum time between two edits of one message, in ms (0 = edit freely). */
  minEditIntervalMs: number;
  /** Largest file the platform accepts from a bot, in bytes (absent: no limit). */
  maxUploadBytes?: number;
}

/** Opaque reference to a posted message (platform message id). */
export interface MessageRef {
  id: string;
}

export interface ChoiceOffer {
  /** Story and revision the choices belong to (buttons carry them, so stale ones are refused). */
  storyId: string;
  revision: number;
  /**
   * The finished chapter these choices end. Chat surfaces show thumbs up/down buttons
   * rating it (they stay after the choice is taken); readers' ratings are a training signal.
   */
  chapterId?: string;
  /** Labels, in order; readers pick by position (1-based in text). */
  choices: string[];
  /** Whether the reader may type their own action. */
  allowWriteIn: boolean;
  /** "pick": one reader decides at once; "vote": members vote until the ballot closes. */
  mode: "pick" | "vote";
  /** vote: current count per choice, in order. */
  counts?: number[];
  /** vote: when the ballot closes (null: it waits for a first vote). */
  closesAt?: Date | null;
}

/** How a ballot or a pick ended. */
export interface ChoiceResult {
  /** 1-based position of the choice taken. */
  chosen: number;
  /** The label of the choice taken (it may be a reader's own action). */
  label: string;
  /** vote: final count per choice, in order. */
  counts?: number[];
  /** vote: the winner was drawn at random among these tied positions. */
  tiedWith?: number[];
}

/**
 * An offer's new look after a reader acted on it: open with fresh counts, or decided
 * (`result`). A ballot hands it to the action's caller when the caller draws it in its
 * answer to the press (Discord's update callback); a surface draws it with `updateChoices`,
 * or `closeChoices` when decided.
 */
export interface OfferRedraw {
  ref: MessageRef;
  offer: ChoiceOffer;
  result?: ChoiceResult;
}

/** What pressing a button of an offer or a question does (encoded by each platform's action codec). */
export type OfferAction =
  | { kind: "pick" | "vote"; storyId: string; revision: number; position: number }
  | { kind: "suggest" | "close"; storyId: string; revision: number }
  | { kind: "rate"; chapterId: string; value: 1 | -1 }
  | { kind: "genre"; genre: Genre }
  | { kind: "theme"; themeId: string }
  /** Make my version of a shared story (drawn where the platform's buttons carry it: Discord). */
  | { kind: "remix"; code: string }
  /** 👍/👎 on a character's /talk reply (its agent run). */
  | { kind: "rate-talk"; runId: string; value: 1 | -1 };

export interface OfferButton {
  action: OfferAction;
  label: string;
  /** choice: take it; control: suggest or write your own; danger: close the vote; rating: 👍/👎. */
  tone: "choice" | "control" | "danger" | "rating";
}

/** How readers answer a question on a surface. */
export interface AnswerWays {
  /** Buttons can answer (Telegram, Discord); else the terminal lists the answers to type. */
  buttons: boolean;
  /** A typed answer can reply to the question's message (Telegram's ForceReply). */
  replies: boolean;
}

/** A question the core asks (/start's genre and scenario, a suggestion). */
export interface Prompt {
  text: string;
  /** Buttons answering it, in rows (drawn only where `answers.buttons`). */
  rows: OfferButton[][];
  /** The answer is typed as a reply to the question (where `answers.replies`). */
  reply: boolean;
}

export interface Surface {
  readonly limits: SurfaceLimits;
  /** How readers answer questions here (absent: typed, as in the terminal). */
  readonly answers?: AnswerWays;
  /**
   * Pictures show in the conversation itself (Telegram, Discord). Absent: they are saved
   * as files (the terminal), so a picture that only repeats text (the /status chart) is
   * left out.
   */
  readonly showsImages?: boolean;
  /** Post a new message with this text; resolves once the platform accepted it. */
  post(text: string): Promise<MessageRef>;
  /** Replace the text of a message this surface posted. */
  edit(ref: MessageRef, text: string): Promise<void>;
  /**
   * Optional: called once per message when its streaming is complete, with its
   * final text. A surface that streams into a temporary preview (Telegram's
   * message drafts) posts the real message here and returns its ref.
   */
  finalize?(ref: MessageRef, text: string): Promise<MessageRef>;
  /** Offer the chapter's choices (buttons, numbered list...). */
  offerChoices(offer: ChoiceOffer): Promise<MessageRef>;
  /** Show new counts or choices (a write-in joined) on an offer this surface posted. */
  updateChoices(ref: MessageRef, offer: ChoiceOffer): Promise<void>;
  /** Mark an offer as decided: the choice taken replaces the buttons. */
  closeChoices(ref: MessageRef, offer: ChoiceOffer, result: ChoiceResult): Promise<void>;
  /**
   * Optional: a chapter interrupted by a restart continues in these messages, posted by an
   * earlier process (ids and the text each shows). A surface that tracks what it showed
   * (the terminal) takes them as its own, so the next `edit` only adds the new text.
   */
  adopt?(messages: { ref: MessageRef; text: string }[]): Promise<void>;
  /** Optional: the story got its title (a Discord thread is renamed after it). */
  retitle?(title: string): Promise<void>;
  /** Optional: show that a chapter is being written (a typing indicator, a status line). */
  typing?(): Promise<void>;
  /**
   * Optional: ask a question with its buttons or as a reply prompt; resolves with its
   * message (replies to it answer it). Absent: the question is a notice.
   */
  ask?(prompt: Prompt): Promise<MessageRef | undefined>;
  /** A short notice that is not story text (status, confirmation, error). */
  notice(text: string): Promise<void>;
  /** Say a chapter failed, with a way to try again (a button, or the /retry hint in `text`). */
  failed(text: string, retry: { storyId: string }): Promise<void>;
  /** Deliver a file (an export): an attachment, a document, or a saved file in the terminal. */
  sendFile(file: OutgoingFile): Promise<void>;
  /**
   * Show an illustration right after the passage it illustrates: a Discord attachment,
   * a Telegram photo (a reply to `replyTo` where the platform allows), or the saved
   * file's path in the terminal. Resolves with the posted message.
   */
  postImage(image: OutgoingImage): Promise<MessageRef>;
}

export interface OutgoingImage {
  /** File name with extension, e.g. "chapter-3.png". */
  name: string;
  bytes: Uint8Array;
  /** image/png, image/jpeg or image/webp. */
  mime: string;
  /** Short caption shown with the image (at most 200 characters). */
  caption: string;
  /** The message holding the passage the image illustrates. */
  replyTo?: MessageRef;
  /** Where the image is stored on disk (the terminal shows this path). */
  path?: string;
}

export interface OutgoingFile {
  /** File name with extension, safe for any file system. */
  name: string;
  content: string | Uint8Array;
}
