/**
 * The success score of an agent run: FireAct's "exact match" for stories. It combines
 * the run's own checks with what readers did after the chapter it wrote. Pure: the
 * exporter loads runs and reactions and asks here. The formula is documented in
 * docs/training.md; change both together.
 */

export interface RunForScore {
  status: string;
  checks: { finishedInFormat?: boolean; continuityOk?: boolean };
}

/** What happened to the chapter a run belongs to. */
export interface ChapterOutcome {
  /** The chapter's own continuity check (its writing run's), when it had one. */
  continuityOk?: boolean;
  /** Reactions recorded on the chapter, oldest first (Reaction rows: kind + data). */
  reactions: { kind: string; data: unknown }[];
}

export interface Score {
  /** 0..1; 0 for a run that failed or did not finish in format. */
  value: number;
  /** Each part's contribution, for the dataset card and for debugging the filter. */
  parts: Record<string, number>;
}

export const SCORE = {
  /** Where every run that finished in format starts. */
  base: 0.5,
  continuityPassed: 0.1,
  continuityFailed: -0.3,
  /** A reader picked a choice, typed their own action, or a vote continued the story. */
  wentOn: 0.3,
  /** Extra for a vote, full at `fullTurnout` voters. */
  turnout: 0.1,
  fullTurnout: 3,
  undone: -0.5,
  rewritten: -0.5,
  /** The readers went back to an earlier chapter and continued from there instead. */
  branchedAway: -0.2,
  /** Times the share of thumbs up minus thumbs down (each reader's latest rating). */
  rating: 0.2,
  /** Runs with no chapter (rolling summaries) have no reader signal: format only. */
  noChapter: 0.25,
  /** Default threshold of `train:export`. */
  defaultMinimum: 0.7,
} as const;

export function scoreRun(run: RunForScore, outcome: ChapterOutcome | undefined): Score {
  if (run.status !== "ok" || run.checks.finishedInFormat === false) return { value: 0, parts: { failed: 0 } };
  const parts: Record<string, number> = { base: SCORE.base };
  if (outcome === undefined) {
    parts.noChapter = SCORE.noChapter;
    return total(parts);
  }
  const continuity = run.checks.continuityOk ?? outcome.continuityOk;
  if (continuity === true) parts.continuity = SCORE.continuityPassed;
  if (continuity === false) parts.continuity = SCORE.continuityFailed;
  const kinds = new Set(outcome.reactions.map((r) => r.kind));
  if (kinds.has("choice") || kinds.has("action") || kinds.has("vote")) parts.wentOn = SCORE.wentOn;
  const turnout = Math.max(0, ...outcome.reactions.filter((r) => r.kind === "vote").map((r) => turnoutOf(r.data)));
  if (turnout > 0) parts.turnout = SCORE.turnout * Math.min(1, turnout / SCORE.fullTurnout);
  if (kinds.has("undo")) parts.undone = SCORE.undone;
  if (kinds.has("rewrite")) parts.rewritten = SCORE.rewritten;
  if (kinds.has("branch")) parts.branchedAway = SCORE.branchedAway;
  const { up, down } = latestRatings(outcome.reactions);
  if (up + down > 0) parts.rating = (SCORE.rating * (up - down)) / (up + down);
  return total(parts);
}

function total(parts: Record<string, number>): Score {
  const sum = Object.values(parts).reduce((a, b) => a + b, 0);
  return { value: Math.round(Math.min(1, Math.max(0, sum)) * 1000) / 1000, parts };
}

function turnoutOf(data: unknown): number {
  const t = (data as { turnout?: unknown } | null)?.turnout;
  return typeof t === "number" && Number.isFinite(t) ? t : 0;
}

/** Each reader's latest thumbs up (1) or down (-1). */
export function latestRatings(reactions: { kind: string; data: unknown }[]): { up: number; down: number } {
  const latest = new Map<string, number>();
  for (const r of reactions) {
    if (r.kind !== "rating") continue;
    const d = r.data as { value?: unknown; userId?: unknown } | null;
    if (typeof d?.userId === "string" && (d.value === 1 || d.value === -1)) latest.set(d.userId, d.value);
  }
  let up = 0;
  let down = 0;
  for (const v of latest.values()) v === 1 ? up++ : down++;
  return { up, down };
}
