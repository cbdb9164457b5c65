/** Input limits for everything a reader can type. One place, used by every adapter. */
export const LIMITS = {
  /** Scenario for /start (Discord's modal text input allows 4000; stories need far less). */
  scenario: 2000,
  /** A typed action or a written-in choice. */
  action: 500,
  /** A /rewrite direction. */
  direction: 300,
  /** An action written into a ballot: it becomes a button label. */
  writeIn: 80,
  /** What a reader says to a character with /talk. */
  talk: 500,
  /** A character's name in /talk. */
  characterName: 80,
  /** An author's note (/note): a standing direction in every writing prompt. */
  authorNote: 300,
} as const satisfies Record<string, number>;
