import type { StoryState } from "../src/agent/types.ts";
import type { Locale } from "../src/i18n/locale.ts";
import { t } from "../src/i18n/messages.ts";
import { stateChartPng } from "../src/render/state-chart.ts";
import { currentStory } from "./story-context.ts";
import { defineCommand } from "./types.ts";

const HALF = 10;

/** A relationship as a text bar: ten cells each side of a centre line, filled from it. */
export function relationshipBar(value: number): string {
  const cells = Math.min(HALF, Math.round(Math.abs(value) / 10));
  const left = value < 0 ? `${"░".repeat(HALF - cells)}${"█".repeat(cells)}` : "░".repeat(HALF);
  const right = value > 0 ? `${"█".repeat(cells)}${"░".repeat(HALF - cells)}` : "░".repeat(HALF);
  return `${left}│${right}`;
}

/** The arc's progress as a text bar of twenty cells. */
export function progressBar(progress: number): string {
  const cells = Math.min(2 * HALF, Math.max(0, Math.round(progress / 5)));
  return `${"█".repeat(cells)}${"░".repeat(2 * HALF - cells)}`;
}

/** The state as text: one bar per relationship, the milestones, the arc's progress. */
export function statusText(locale: Locale, title: string, chapter: number, state: StoryState): string {
  const lines = [t(locale, "status.heading", { title, chapter })];
  if (state.relationships.length > 0) {
    lines.push("", t(locale, "status.relationships"));
    for (const r of state.relationships) {
      const value = `${r.value > 0 ? "+" : ""}${r.value}`;
      lines.push(
        t(locale, "status.relationship", { name: r.name, bar: relationshipBar(r.value), value, standing: r.standing }),
      );
    }
  }
  if (state.milestones.length > 0) {
    lines.push(
      "",
      t(locale, "status.milestones"),
      ...state.milestones.map((m) => t(locale, "status.milestone", { milestone: m })),
    );
  }
  lines.push("", t(locale, "status.arc", { bar: progressBar(state.arcProgress), progress: state.arcProgress }));
  return lines.join("\n");
}

export const status = defineCommand(
  {
    name: "status",
    description: {
      en: "The story state: relationships, milestones, the arc's progress",
      zh: "故事状态：人物关系、里程碑、故事进度",
    },
    example: "/status",
    options: [],
  } as const,
  async (ctx) => {
    const { title, chapter, state } = await ctx.queries.status(currentStory(ctx));
    if (state === undefined) {
      await ctx.surface.notice(t(ctx.locale, "status.none"));
      return { kind: "done" };
    }
    const shownTitle = title || t(ctx.locale, "untitled");
    await ctx.surface.notice(statusText(ctx.locale, shownTitle, chapter, state));
    if (ctx.surface.showsImages === true) {
      const names = state.relationships.map((r) => r.name).join(", ");
      await ctx.surface.postImage({
        name: `status-${chapter}.png`,
        bytes: stateChartPng(state),
        mime: "image/png",
        caption: t(ctx.locale, "status.chartCaption", { chapter, names }).slice(0, 200),
      });
    }
    return { kind: "done" };
  },
);
