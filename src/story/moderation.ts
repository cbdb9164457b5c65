/**
 * Optional moderation of what readers write into a story (scenarios, their own
 * actions, write-ins), by a model on the `moderate` route (MODERATION_MODEL).
 * Structured verdict through a JSON-schema response; a model that cannot give
 * one fails closed, with a message the reader understands.
 */
import { z } from "zod";
import { jsonSchemaOf } from "../agent/schemas.ts";
import { type ModelClient, ModelError } from "../llm/types.ts";
import { UserFacingError } from "./errors.ts";

export const MODERATION_VERDICT = "moderation_verdict";

/** The moderation model's answer (exported for the strict-schema check). */
export const Verdict = z.object({ allowed: z.boolean(), reason: z.string().max(300) });

export interface Moderator {
  /** Throws `UserFacingError` when `text` may not enter a story of this `rating`. */
  check(text: string, rating: string): Promise<void>;
}

const SYSTEM = [
  "Inkloom: moderate",
  "You review text that readers of an interactive story want to add to it.",
  "Allow fiction, including conflict and darkness suitable for the content rating.",
  "Refuse: sexual content involving minors, real-person harassment, hate against protected groups,",
  "instructions for real-world harm, and anything beyond the content rating (general, teen or adult).",
  "Answer as JSON: allowed (boolean) and reason (one short sentence, empty when allowed).",
].join("\n");

export const moderationResponseFormat = { name: MODERATION_VERDICT, schema: jsonSchemaOf(Verdict) };

export class ModelModerator implements Moderator {
  constructor(private readonly model: ModelClient) {}

  async check(text: string, rating: string): Promise<void> {
    let content: string | null;
    try {
      const result = await this.model.complete({
        task: "moderate",
        messages: [
          { role: "system", content: SYSTEM },
          { role: "user", content: `Content rating: ${rating}\nText:\n${text}` },
        ],
        responseFormat: moderationResponseFormat,
        maxTokens: 200,
        temperature: 0,
      });
      content = result.message.content;
    } catch (error) {
      if (error instanceof ModelError) throw new UserFacingError("error.moderationUnavailable");
      throw error;
    }
    let verdict: z.infer<typeof Verdict> | undefined;
    try {
      verdict = Verdict.parse(JSON.parse(content ?? ""));
    } catch {
      throw new UserFacingError("error.moderationUnavailable");
    }
    if (!verdict.allowed) throw new UserFacingError("error.moderated", { reason: verdict.reason || "—" });
  }
}
