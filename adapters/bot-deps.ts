/** What a chat-platform adapter gets from the engine (src/app/wiring.ts builds it). */
import type { AudienceRegistry } from "../src/story/audience-registry.ts";
import type { BallotService } from "../src/story/ballot-service.ts";
import type { IllustrationService } from "../src/story/illustrations.ts";
import type { StoryService } from "../src/story/story-service.ts";
import type { ThemeService } from "../src/story/themes.ts";
import type { WorkspaceSettingsStore } from "../src/story/workspace-settings.ts";

export interface BotDeps {
  stories: StoryService;
  ballots: BallotService;
  settings: WorkspaceSettingsStore;
  themes: ThemeService;
  illustrations: IllustrationService;
  /** The adapter registers how its conversations are shown. */
  audiences: AudienceRegistry;
  /** Operator messages (never secrets). */
  log: (message: string) => void;
}
