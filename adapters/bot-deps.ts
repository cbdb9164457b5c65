/** What a chat-platform adapter gets from the engine (src/app/wiring.ts builds it). */
import type { AudienceRegistry } from "../src/story/audience-registry.ts";
import type { BallotService } from "../src/story/ballot-service.ts";
import type { BookAssembler } from "../src/story/book-assembler.ts";
import type { CardService } from "../src/story/cards.ts";
import type { IllustrationPlanning } from "../src/story/illustration-planning.ts";
import type { LoreService } from "../src/story/lore-service.ts";
import type { ChapterRatings } from "../src/story/ratings.ts";
import type { StoryCommands } from "../src/story/story-commands.ts";
import type { StoryQueries } from "../src/story/story-queries.ts";
import type { TalkService } from "../src/story/talk.ts";
import type { ThemeService } from "../src/story/themes.ts";
import type { WorkspaceSettingsStore } from "../src/story/workspace-settings.ts";

export interface BotDeps {
  stories: StoryCommands;
  queries: StoryQueries;
  ratings: ChapterRatings;
  books: BookAssembler;
  ballots: BallotService;
  settings: WorkspaceSettingsStore;
  themes: ThemeService;
  illustrations: IllustrationPlanning;
  talks: TalkService;
  lore: LoreService;
  /** Character cards (/card). */
  cards: CardService;
  /** The adapter registers how its conversations are shown. */
  audiences: AudienceRegistry;
  /** Operator messages (never secrets). */
  log: (message: string) => void;
}
