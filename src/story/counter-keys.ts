/**
 * What the story's limits count, as keys of the shared counters
 * (src/store/counters.ts), and the UTC day they count in.
 */
import type { Actor, Conversation } from "./identity.ts";

/** Midnight UTC at the start of `at`'s day. */
export function startOfDayUtc(at = new Date()): Date {
  const day = new Date(at);
  day.setUTCHours(0, 0, 0, 0);
  return day;
}

/** When a count of `at`'s day stops mattering: the next midnight UTC, and a day's grace. */
export function dayCountExpiry(at = new Date()): Date {
  return new Date(startOfDayUtc(at).getTime() + 2 * 86_400_000);
}

const day = (at: Date) => at.toISOString().slice(0, 10);

export const COUNTER_KEYS = {
  /** Chapters a member asked for in a workspace on a day (the daily quota). */
  chapters: (conversation: Conversation, actor: Actor, at: Date) =>
    `chapters:${conversation.platform}:${conversation.workspaceId}:${actor.platform}:${actor.id}:${day(at)}`,
  /** Pictures of a workspace (its row id) on a day, failed ones given back (the daily image budget). */
  images: (workspaceId: string, at: Date) => `images:${workspaceId}:${day(at)}`,
  /** A reader's /illustrate requests: its `takenAt` is the last one (the cooldown). */
  illustrate: (userId: string) => `illustrate:${userId}`,
  /** A reader's /talk messages: its `takenAt` is the last one (the cooldown). */
  talk: (userId: string) => `talk:${userId}`,
} as const;
