/**
 * Port: where a story is shown. Adapters register audiences (src/story/audience-registry.ts);
 * the chapter job, the choice presenter, ballots and the illustration job write to them.
 */
import type { Locale } from "../../i18n/locale.ts";
import type { Surface } from "../../render/surface.ts";

/** One conversation's readers: the surface to write to and how to address them. */
export interface Audience {
  /** The conversation's chat surface (Discord thread, Telegram chat, terminal). */
  surface: Surface;
  /** The language every message to this conversation is written in. */
  locale: Locale;
  /** Set where members vote on the choices (group chats, Discord threads); absent where one reader picks. */
  voting?: {
    /** How long a ballot stays open, in seconds. */
    windowSeconds: number;
    /** Close early once everyone who voted on the previous ballot has voted again. */
    closeWhenPreviousVotersReturn?: boolean;
  };
}

/**
 * Finds where a story is shown from its conversation key (`<platform>:<id>`);
 * undefined when nobody is watching (the chapter is still written).
 */
export type AudienceResolver = (conversationId: string) => Audience | undefined | Promise<Audience | undefined>;
