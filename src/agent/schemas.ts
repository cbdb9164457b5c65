/**
 * Structured output of the story agent: one zod schema per tool call or JSON response,
 * and the JSON schema sent to the model for it (derived from the zod schema, so the two
 * never drift). Prose is never parsed for structure.
 */
import { z } from "zod";
import { dropNulls, grammarJsonSchema, registerGrammarSchema, strictJsonSchema } from "../llm/strict-schema.ts";
import type { ToolSpec } from "../llm/types.ts";

/** The language tags an embedded model's grammar offers for a story's `language` (any BCP-47 tag passes zod). */
export const GRAMMAR_LANGUAGE_TAGS: readonly string[] = (
  "en zh zh-Hans zh-Hant es fr de it pt pt-BR ru uk pl nl sv no da fi cs el tr ar he fa hi bn " +
  "ur ja ko vi th id ms tl sw ro hu bg sr hr ca eu gl et lv lt sk sl ta te"
).split(" ");

const characterSchema = z.object({
  name: z.string().trim().min(1).max(80),
  role: z.string().trim().min(1).max(200),
  appearance: z.string().trim().max(400),
});

const arcSchema = z.object({
  beats: z.array(z.string().trim().min(1).max(300)).min(3).max(8),
  open_threads: z.array(z.string().trim().min(1).max(300)).max(12),
});

export const planStorySchema = z.object({
  title: z.string().trim().min(1).max(120),
  language: z
    .string()
    .trim()
    .regex(/^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/, "language must be a BCP-47 tag such as en or zh")
    // A grammar cannot follow the pattern: the embedded model picks from these (strict-schema.ts).
    .meta({ grammarEnum: GRAMMAR_LANGUAGE_TAGS }),
  logline: z.string().trim().min(1).max(400),
  characters: z.array(characterSchema).min(1).max(8),
  places: z.array(z.object({ name: z.string().trim().min(1).max(80), description: z.string().trim().max(400) })).max(8),
  facts: z.array(z.string().trim().min(1).max(300)).max(12),
  arc: arcSchema,
});
export type PlanStory = z.infer<typeof planStorySchema>;

const choiceSchema = z.object({
  label: z.string().trim().min(1).max(80),
  direction: z.string().trim().min(1).max(300),
});

/** A scene worth a picture: what to draw, and who is in it (their fixed appearance is added for the image). */
export const illustrateArgsSchema = z.object({
  scene: z.string().trim().min(1).max(600),
  characters: z.array(z.string().trim().min(1).max(80)).max(4),
});
export type IllustrateArgs = z.infer<typeof illustrateArgsSchema>;

/** What a chapter changed in the story state (merged into the branch's state by the story code). */
export const stateUpdateSchema = z.object({
  relationships: z
    .array(
      z.object({
        name: z.string().trim().min(1).max(80),
        // A value out of range is brought into it, not refused: it never costs the chapter its parts.
        value: z
          .number()
          .describe("-100 hostile .. 100 devoted")
          .transform((v) => boundedInt(v, -100, 100)),
        standing: z.string().trim().min(1).max(160),
      }),
    )
    .max(8),
  milestones: z.array(z.string().trim().min(1).max(160)).max(4),
  arc_progress: z
    .number()
    .describe("0 .. 100")
    .transform((v) => boundedInt(v, 0, 100)),
});

/** `v` rounded and brought within [min, max]. */
function boundedInt(v: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round(v)));
}
export type StateUpdateParts = z.infer<typeof stateUpdateSchema>;

export const submitChapterSchema = z
  .object({
    chapter_title: z.string().trim().min(1).max(120),
    summary: z.string().trim().min(1).max(600),
    choices: z.array(choiceSchema).min(2).max(4),
    new_characters: z.array(characterSchema).max(6),
    new_facts: z.array(z.string().trim().min(1).max(300)).max(8),
    arc: arcSchema.optional(),
    /** The chapter's key scene, when it is worth an illustration. */
    illustration: illustrateArgsSchema.optional(),
    /** The story state this chapter changed: relationships, milestones, the arc's progress. */
    state: stateUpdateSchema.optional(),
  })
  .superRefine((value, ctx) => {
    const labels = value.choices.map((c) => c.label.toLowerCase());
    if (new Set(labels).size !== labels.length) {
      ctx.addIssue({ code: "custom", path: ["choices"], message: "choice labels must be distinct" });
    }
    const directions = value.choices.map((c) => c.direction.toLowerCase());
    if (new Set(directions).size !== directions.length) {
      ctx.addIssue({
        code: "custom",
        path: ["choices"],
        message: "each choice must lead somewhere different (directions must differ)",
      });
    }
  });
export type SubmitChapter = z.infer<typeof submitChapterSchema>;

/** The fallback when the chapter's structured parts failed: only its choices (a short call). */
export const offerChoicesSchema = z.object({ choices: submitChapterSchema.shape.choices });
export type OfferChoices = z.infer<typeof offerChoicesSchema>;

export const continuityReportSchema = z.object({
  ok: z.boolean(),
  issues: z.array(z.string().max(500)).max(12),
});
export type ContinuityReport = z.infer<typeof continuityReportSchema>;

export const recallArgsSchema = z.object({ query: z.string().trim().min(1).max(200) });
export const lookupArgsSchema = z.object({ name: z.string().trim().min(1).max(120) });
export const checkContinuityArgsSchema = z.object({ draft: z.string().trim().min(1).max(20_000) });
export const beginWritingArgsSchema = z.object({ plan: z.string().trim().min(1).max(4000) });

/**
 * JSON schema for a tool's `parameters` or a `response_format`, from its zod schema, in
 * the strict form OpenAI accepts with `strict: true` (see src/llm/strict-schema.ts).
 */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: "input" }) as Record<string, unknown>;
  const strict = strictJsonSchema(json);
  // The embedded model's grammar gets the lengths too (strict-schema.ts, grammarSchemaFor).
  registerGrammarSchema(strict, grammarJsonSchema(json));
  return strict;
}

function tool(name: string, description: string, schema: z.ZodType): ToolSpec {
  return { type: "function", function: { name, description, parameters: jsonSchemaOf(schema) } };
}

export const TOOL_NAMES = {
  planStory: "plan_story",
  submitChapter: "submit_chapter",
  recall: "recall",
  lookup: "lookup",
  checkContinuity: "check_continuity",
  beginWriting: "begin_writing",
  illustrate: "illustrate",
  offerChoices: "offer_choices",
} as const;

export const CONTINUITY_REPORT_NAME = "continuity_report";

export const planStoryTool = tool(
  TOOL_NAMES.planStory,
  "Plan a new story: title, language, logline, cast, places, canon facts and a hidden arc of beats.",
  planStorySchema,
);
export const submitChapterTool = tool(
  TOOL_NAMES.submitChapter,
  "Submit the structured parts of the chapter just written: title, summary, 2-4 choices that lead to different places, new characters and facts, the revised arc if it changed, the key scene to illustrate if one is worth a picture, and the story state after it (relationships with the main characters, milestones reached, arc progress).",
  submitChapterSchema,
);
export const recallTool = tool(
  TOOL_NAMES.recall,
  "Search earlier chapters by keywords; returns up to 3 short passages with their chapter numbers.",
  recallArgsSchema,
);
export const lookupTool = tool(
  TOOL_NAMES.lookup,
  "Look up a character, place or lore entry of the story by name or keyword (lore: world info the readers wrote).",
  lookupArgsSchema,
);
export const checkContinuityTool = tool(
  TOOL_NAMES.checkContinuity,
  "Check a draft against the story bible and recent chapters for contradictions and repetition.",
  checkContinuityArgsSchema,
);
export const beginWritingTool = tool(
  TOOL_NAMES.beginWriting,
  "Stop gathering and write the chapter following this plan.",
  beginWritingArgsSchema,
);

export const illustrateTool = tool(
  TOOL_NAMES.illustrate,
  "Ask for an illustration of a key scene of this chapter, drawn after the chapter and shown right after its text. Name the characters in the picture: their fixed appearance is added for you. Only for a scene worth a picture.",
  illustrateArgsSchema,
);

export const offerChoicesTool = tool(
  TOOL_NAMES.offerChoices,
  "Offer the reader 2-4 choices for what happens after the chapter just written; each leads somewhere different.",
  offerChoicesSchema,
);

/** Tools offered in the ReAct loop, in the order they are described. */
export const REACT_TOOLS: ToolSpec[] = [recallTool, lookupTool, checkContinuityTool, illustrateTool, beginWritingTool];

export const continuityResponseFormat = {
  name: CONTINUITY_REPORT_NAME,
  schema: jsonSchemaOf(continuityReportSchema),
};

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parse a tool call's JSON arguments (or a JSON response) and validate them. */
export function parseJsonWith<T>(schema: z.ZodType<T>, raw: string | null | undefined): ParseResult<T> {
  if (raw === null || raw === undefined || raw.trim() === "") return { ok: false, error: "empty arguments" };
  let data: unknown;
  try {
    // Strict schemas make optional fields nullable: null means absent.
    data = dropNulls(JSON.parse(raw));
  } catch (err) {
    return { ok: false, error: `arguments are not valid JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: z.prettifyError(parsed.error) };
}
