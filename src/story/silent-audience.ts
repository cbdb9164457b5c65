/**
 * The audience of a story nobody is watching (no adapter registered its
 * conversation): chapters are still written and saved, and nothing is shown.
 */
import type { Audience } from "./ports/audience.ts";

export const SILENT_AUDIENCE: Audience = {
  locale: "en",
  surface: {
    limits: { maxMessageLength: 1_000_000, minEditIntervalMs: 0 },
    post: async () => ({ id: "0" }),
    edit: async () => {},
    offerChoices: async () => ({ id: "0" }),
    updateChoices: async () => {},
    closeChoices: async () => {},
    notice: async () => {},
    failed: async () => {},
    sendFile: async () => {},
    postImage: async () => ({ id: "0" }),
  },
};
