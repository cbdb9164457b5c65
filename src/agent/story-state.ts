/**
 * The story state (relationships, milestones, the arc's progress): merging a chapter's
 * update into its branch's state, reading it back from a stored JSON value, and the lines
 * the prompt carries. Pure; the state is stored per chapter (Chapter.state), so undo and
 * branch read the state of the chapter they land on.
 */
import type { Relationship, StateUpdate, StoryState } from "./types.ts";

export const STATE_LIMITS = {
  /** Relationships kept (the most recently changed win). */
  relationships: 8,
  /** Milestones kept (the latest). */
  milestones: 12,
  standing: 160,
  milestone: 160,
  name: 80,
} as const satisfies Record<string, number>;

export const EMPTY_STATE: StoryState = { relationships: [], milestones: [], arcProgress: 0 };

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round(n)));
}

function cut(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

function cleanRelationship(r: Relationship): Relationship | undefined {
  const name = cut(r.name, STATE_LIMITS.name);
  if (name === "" || !Number.isFinite(r.value)) return undefined;
  return { name, value: clamp(r.value, -100, 100), standing: cut(r.standing, STATE_LIMITS.standing) };
}

/**
 * The state after a chapter: `update`'s relationships replace those of the same name
 * (case-insensitive; a changed one moves last), its milestones are added once each, and
 * its arc progress replaces the old one. Bounded by `STATE_LIMITS`.
 */
export function mergeState(previous: StoryState | undefined, update: StateUpdate): StoryState {
  const base = previous ?? EMPTY_STATE;
  const changed = update.relationships.map(cleanRelationship).filter((r): r is Relationship => r !== undefined);
  const changedNames = new Set(changed.map((r) => r.name.toLowerCase()));
  const relationships = [
    ...base.relationships.filter((r) => !changedNames.has(r.name.toLowerCase())),
    // Last one wins when the update names someone twice.
    ...changed.filter((r, i) => changed.findLastIndex((o) => o.name.toLowerCase() === r.name.toLowerCase()) === i),
  ].slice(-STATE_LIMITS.relationships);
  const milestones = [...base.milestones];
  const seen = new Set(milestones.map((m) => m.toLowerCase()));
  for (const m of update.milestones) {
    const line = cut(m, STATE_LIMITS.milestone);
    if (line === "" || seen.has(line.toLowerCase())) continue;
    seen.add(line.toLowerCase());
    milestones.push(line);
  }
  const arcProgress = Number.isFinite(update.arcProgress) ? clamp(update.arcProgress, 0, 100) : base.arcProgress;
  return { relationships, milestones: milestones.slice(-STATE_LIMITS.milestones), arcProgress };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A stored state (Chapter.state), or undefined when there is none or it is not a state. */
export function parseState(value: unknown): StoryState | undefined {
  if (!isRecord(value)) return undefined;
  const relationships = Array.isArray(value.relationships)
    ? value.relationships
        .filter(isRecord)
        .map((r) =>
          cleanRelationship({
            name: typeof r.name === "string" ? r.name : "",
            value: typeof r.value === "number" ? r.value : Number.NaN,
            standing: typeof r.standing === "string" ? r.standing : "",
          }),
        )
        .filter((r): r is Relationship => r !== undefined)
    : [];
  const milestones = Array.isArray(value.milestones)
    ? value.milestones.filter((m): m is string => typeof m === "string")
    : [];
  const arcProgress = typeof value.arcProgress === "number" ? clamp(value.arcProgress, 0, 100) : 0;
  return { relationships, milestones, arcProgress };
}

/** The state as the prompt carries it (empty when there is nothing to carry). */
export function stateLines(state: StoryState | undefined): string {
  if (state === undefined) return "";
  const lines: string[] = [];
  if (state.relationships.length > 0) {
    lines.push("Relationships with the protagonist (-100 hostile .. 100 devoted):");
    for (const r of state.relationships) {
      lines.push(`- ${r.name}: ${r.value > 0 ? "+" : ""}${r.value}${r.standing ? ` (${r.standing})` : ""}`);
    }
  }
  if (state.milestones.length > 0) lines.push("Milestones reached:", ...state.milestones.map((m) => `- ${m}`));
  lines.push(`Arc progress: ${state.arcProgress}%`);
  return lines.join("\n");
}
