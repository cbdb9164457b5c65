/**
 * The evaluation report: a Markdown document and the SVG charts it links (written next to
 * it). The charts are hand-written SVG, no dependency: grouped bars for latency and tokens,
 * one stacked bar for B's wins, ties and losses against A.
 */

import type { ModelRoute } from "../llm/types.ts";
import { escapeXml } from "../render/xml.ts";
import type { EvalReport, SideMetrics } from "./eval.ts";
import { formatRoute } from "./routes.ts";

export interface RenderedReport {
  markdown: string;
  charts: { name: string; svg: string }[];
}

const COLORS = { a: "#4e79a7", b: "#f28e2b", win: "#59a14f", tie: "#bab0ac", loss: "#e15759" } as const;
const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\"";

export const CHART_FILES = { latency: "latency.svg", tokens: "tokens.svg", winRate: "win-rate.svg" } as const;

/** Text safe inside a Markdown table cell or line (no pipes, no line breaks, no HTML). */
function md(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/\r?\n/g, " ");
}

function routeLabel(route: ModelRoute): string {
  return formatRoute(route);
}

function num(value: number | null, digits = 0): string {
  if (value === null || !Number.isFinite(value)) return "—";
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pct(value: number | null, digits = 0): string {
  return value === null ? "—" : `${(value * 100).toFixed(digits)}%`;
}

function usd(value: number): string {
  return `$${value < 0.01 && value > 0 ? value.toFixed(6) : value.toFixed(4)}`;
}

/** A round step for about `count` ticks from 0 to `max`. */
function niceStep(max: number, count = 5): number {
  if (max <= 0) return 1;
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  const nice = residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1;
  return nice * magnitude;
}

function short(value: number): string {
  if (Math.abs(value) >= 10_000) return `${(value / 1000).toFixed(value >= 100_000 ? 0 : 1)}k`;
  if (Number.isInteger(value) || Math.abs(value) >= 100) return String(Math.round(value));
  return value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}

export interface GroupedBarChart {
  title: string;
  /** Y axis label (the unit). */
  unit: string;
  /** X axis categories. */
  groups: string[];
  series: { name: string; color: string; values: (number | null)[] }[];
}

/** Vertical grouped bars with a y axis, gridlines, values on the bars and a legend. */
export function groupedBarSvg(chart: GroupedBarChart): string {
  const width = 640;
  const height = 380;
  const margin = { top: 40 + chart.series.length * 16 + 16, right: 24, bottom: 48, left: 72 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const values = chart.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const step = niceStep(Math.max(0, ...values));
  const top = Math.max(step, Math.ceil(Math.max(0, ...values) / step) * step);
  const y = (v: number) => margin.top + plotH - (v / top) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`,
  );
  out.push(`<title>${escapeXml(chart.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>${escapeXml(chart.title)}</text>`,
  );
  // Legend: one line per series (route names can be long).
  for (const [i, s] of chart.series.entries()) {
    const ly = 36 + i * 16;
    out.push(`<rect x="${margin.left}" y="${ly}" width="12" height="12" fill="${escapeXml(s.color)}"/>`);
    out.push(`<text x="${margin.left + 16}" y="${ly + 10}" font-size="12" ${FONT}>${escapeXml(s.name)}</text>`);
  }
  // Y axis: gridlines and tick labels.
  out.push('<g class="y-axis">');
  for (let v = 0; v <= top + step / 1000; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${margin.left}" y1="${yy}" x2="${width - margin.right}" y2="${yy}" stroke="#e0e0e0"/>`);
    out.push(
      `<text x="${margin.left - 8}" y="${yy}" dy="4" text-anchor="end" font-size="11" ${FONT}>${escapeXml(short(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="#333333"/>`,
  );
  const cy = margin.top + plotH / 2;
  out.push(
    `<text x="18" y="${cy}" transform="rotate(-90 18 ${cy})" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(chart.unit)}</text>`,
  );
  out.push("</g>");
  // Bars.
  const groupW = plotW / Math.max(1, chart.groups.length);
  const barW = Math.min(64, (groupW * 0.7) / Math.max(1, chart.series.length));
  out.push('<g class="bars">');
  for (const [g, group] of chart.groups.entries()) {
    const start = margin.left + g * groupW + (groupW - barW * chart.series.length) / 2;
    for (const [si, s] of chart.series.entries()) {
      const value = s.values[g] ?? null;
      const x = start + si * barW;
      const label = value === null ? "n/a" : short(value);
      const yTop = value === null ? y(0) : y(Math.max(0, value));
      const h = margin.top + plotH - yTop;
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${yTop.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${escapeXml(s.color)}"><title>${escapeXml(`${s.name}, ${group}: ${label}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(yTop - 5).toFixed(1)}" text-anchor="middle" font-size="11" ${FONT}>${escapeXml(label)}</text>`,
      );
    }
  }
  out.push("</g>");
  // X axis.
  out.push('<g class="x-axis">');
  out.push(
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${width - margin.right}" y2="${margin.top + plotH}" stroke="#333333"/>`,
  );
  for (const [g, group] of chart.groups.entries()) {
    out.push(
      `<text x="${(margin.left + g * groupW + groupW / 2).toFixed(1)}" y="${margin.top + plotH + 20}" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(group)}</text>`,
    );
  }
  out.push("</g>");
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

export interface StackedBarChart {
  title: string;
  /** What 100% is, under the axis. */
  caption: string;
  segments: { name: string; color: string; count: number }[];
}

/** One horizontal bar split into segments (share of the total), with a 0-100% axis. */
export function stackedBarSvg(chart: StackedBarChart): string {
  const width = 640;
  const height = 180;
  const margin = { left: 40, right: 40 };
  const barY = 70;
  const barH = 40;
  const plotW = width - margin.left - margin.right;
  const total = chart.segments.reduce((s, x) => s + x.count, 0);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`,
  );
  out.push(`<title>${escapeXml(chart.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>${escapeXml(chart.title)}</text>`,
  );
  // Legend with counts.
  let lx = margin.left;
  for (const s of chart.segments) {
    const text = `${s.name}: ${s.count}`;
    out.push(`<rect x="${lx}" y="38" width="12" height="12" fill="${escapeXml(s.color)}"/>`);
    out.push(`<text x="${lx + 16}" y="48" font-size="12" ${FONT}>${escapeXml(text)}</text>`);
    lx += 28 + text.length * 7;
  }
  out.push('<g class="bars">');
  if (total === 0) {
    out.push(
      `<rect x="${margin.left}" y="${barY}" width="${plotW}" height="${barH}" fill="#f0f0f0" stroke="#cccccc"/>`,
    );
    out.push(
      `<text x="${width / 2}" y="${barY + barH / 2 + 4}" text-anchor="middle" font-size="12" ${FONT}>no judged cases</text>`,
    );
  } else {
    let x = margin.left;
    for (const s of chart.segments) {
      const w = (s.count / total) * plotW;
      if (w <= 0) continue;
      const share = `${Math.round((s.count / total) * 100)}%`;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${barY}" width="${w.toFixed(1)}" height="${barH}" fill="${escapeXml(s.color)}"><title>${escapeXml(`${s.name}: ${s.count} (${share})`)}</title></rect>`,
      );
      if (w >= 28) {
        out.push(
          `<text x="${(x + w / 2).toFixed(1)}" y="${barY + barH / 2 + 4}" text-anchor="middle" font-size="12" fill="#ffffff" font-weight="bold" ${FONT}>${escapeXml(share)}</text>`,
        );
      }
      x += w;
    }
  }
  out.push("</g>");
  // Axis 0-100%.
  out.push('<g class="x-axis">');
  const axisY = barY + barH + 8;
  out.push(`<line x1="${margin.left}" y1="${axisY}" x2="${margin.left + plotW}" y2="${axisY}" stroke="#333333"/>`);
  for (let p = 0; p <= 100; p += 25) {
    const x = margin.left + (p / 100) * plotW;
    out.push(`<line x1="${x}" y1="${axisY}" x2="${x}" y2="${axisY + 5}" stroke="#333333"/>`);
    out.push(`<text x="${x}" y="${axisY + 18}" text-anchor="middle" font-size="11" ${FONT}>${p}%</text>`);
  }
  out.push(
    `<text x="${width / 2}" y="${axisY + 40}" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(chart.caption)}</text>`,
  );
  out.push("</g>");
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function metricRows(a: SideMetrics, b: SideMetrics, report: EvalReport): [string, string, string][] {
  const rows: [string, (s: SideMetrics) => string][] = [
    ["Cases", (s) => String(s.cases)],
    ["Finished", (s) => String(s.finished)],
    ["Finish rate", (s) => pct(s.finishRate, 1)],
    ["Latency p50 (ms)", (s) => num(s.latencyMs.p50)],
    ["Latency p95 (ms)", (s) => num(s.latencyMs.p95)],
    ["Latency mean (ms)", (s) => num(s.latencyMs.mean)],
    ["Prompt tokens (total)", (s) => num(s.tokens.prompt)],
    ["Completion tokens (total)", (s) => num(s.tokens.completion)],
    ["Prompt tokens per case", (s) => num(s.tokens.promptPerCase, 1)],
    ["Completion tokens per case", (s) => num(s.tokens.completionPerCase, 1)],
    ["Cost (USD)", (s) => usd(s.costUsd)],
    ["Cost per case (USD)", (s) => usd(s.costPerCaseUsd)],
    ["Continuity-check failures", (s) => String(s.continuityFailures)],
    ["Tool calls", (s) => String(s.toolCalls)],
    ["Search tool calls", (s) => String(s.searchCalls)],
    [
      "Noisy tool results",
      (s) =>
        report.noisyTools > 0 && s.searchCalls > 0
          ? `${s.noisyToolResults} (${pct(s.noisyToolResults / s.searchCalls)} of searches)`
          : String(s.noisyToolResults),
    ],
  ];
  return rows.map(([name, f]) => [name, f(a), f(b)]);
}

/** The Markdown report and its charts (link targets: `CHART_FILES`, in the same folder). */
export function renderReport(report: EvalReport, options: { title: string; createdAt: Date }): RenderedReport {
  const { a, b, pairwise: p } = report;
  const aName = `A (${routeLabel(a.route)})`;
  const bName = `B (${routeLabel(b.route)})`;
  const charts = [
    {
      name: CHART_FILES.latency,
      svg: groupedBarSvg({
        title: "Latency per finished case",
        unit: "milliseconds",
        groups: ["p50", "p95"],
        series: [
          { name: aName, color: COLORS.a, values: [a.latencyMs.p50, a.latencyMs.p95] },
          { name: bName, color: COLORS.b, values: [b.latencyMs.p50, b.latencyMs.p95] },
        ],
      }),
    },
    {
      name: CHART_FILES.tokens,
      svg: groupedBarSvg({
        title: "Tokens per case (judge's checks excluded)",
        unit: "tokens",
        groups: ["prompt", "completion"],
        series: [
          { name: aName, color: COLORS.a, values: [a.tokens.promptPerCase, a.tokens.completionPerCase] },
          { name: bName, color: COLORS.b, values: [b.tokens.promptPerCase, b.tokens.completionPerCase] },
        ],
      }),
    },
    {
      name: CHART_FILES.winRate,
      svg: stackedBarSvg({
        title: "Pairwise judgement: B against A",
        caption: `B's win rate ${p.winRate === null ? "n/a" : pct(p.winRate, 1)} over ${p.judged} judged case(s), each judged twice with the positions swapped`,
        segments: [
          { name: "B wins", color: COLORS.win, count: p.wins },
          { name: "tie or split", color: COLORS.tie, count: p.ties },
          { name: "A wins", color: COLORS.loss, count: p.losses },
        ],
      }),
    },
  ];

  const lines: string[] = [];
  lines.push(`# ${md(options.title)}`, "");
  lines.push(`Created ${options.createdAt.toISOString()} (run took ${num(report.durationMs / 1000, 1)} s).`, "");
  lines.push("## Configurations", "");
  lines.push("| | Route | Fine-tuned |", "|---|---|---|");
  lines.push(
    `| A | \`${md(routeLabel(a.route))}\` | ${a.route.fineTuned ? "yes (zero-shot prompt)" : "no (few-shot prompt)"} |`,
  );
  lines.push(
    `| B | \`${md(routeLabel(b.route))}\` | ${b.route.fineTuned ? "yes (zero-shot prompt)" : "no (few-shot prompt)"} |`,
  );
  lines.push(
    `| Judge | \`${md(routeLabel(report.judge.route))}\` | continuity checks of both sides and pairwise verdicts |`,
  );
  lines.push("");
  const methods = Object.entries(report.methods)
    .map(([task, method]) => `${task}: ${method}`)
    .join(", ");
  lines.push(`- Held-out cases: ${a.cases}`);
  lines.push(`- Methods: ${md(methods)}`);
  lines.push(
    `- Noisy tools: ${report.noisyTools > 0 ? `${pct(report.noisyTools)} of search results (recall, lookup) replaced by nothing or a random result (FireAct's robustness test), seed ${report.seed}` : "off (0%)"}`,
  );
  lines.push("");

  lines.push("## Metrics", "");
  lines.push("| Metric | A | B |", "|---|---:|---:|");
  for (const [name, va, vb] of metricRows(a, b, report)) lines.push(`| ${name} | ${va} | ${vb} |`);
  lines.push("");
  lines.push(
    "Latency is the wall time of a finished case (the whole agent run: planning, tools, prose, continuity check, choices). " +
      "Tokens and cost count the side's own model calls; the continuity checks are the judge's and are counted below. " +
      "A continuity-check failure is a finished chapter the judge's check did not pass.",
  );
  lines.push("");
  lines.push(`![Latency](${CHART_FILES.latency})`, "", `![Tokens](${CHART_FILES.tokens})`, "");

  lines.push("## Pairwise win rate", "");
  const rate = p.winRate === null ? "—" : `${pct(p.winRate, 1)}`;
  lines.push(`**B's win rate against A: ${rate}** over ${p.judged} judged case(s).`, "");
  lines.push(
    "For every case both sides finished, the judge compared the two chapters twice, with the positions swapped. " +
      "B scores 1 when it wins both orders, 0 when it loses both, and 0.5 for a tie or a split verdict. " +
      "The win rate is B's mean score: 50% means no difference, above 50% means the judge prefers B, below 50% prefers A.",
  );
  lines.push("");
  lines.push("| | Cases |", "|---|---:|");
  lines.push(`| B wins (both orders) | ${p.wins} |`);
  lines.push(`| Ties (tie or split) | ${p.ties} |`);
  lines.push(`| — of which split verdicts | ${p.splits} |`);
  lines.push(`| A wins (both orders) | ${p.losses} |`);
  lines.push(`| Compared (both finished) | ${p.compared} |`);
  lines.push(`| Judge failures | ${p.judgeFailures} |`);
  lines.push("");
  lines.push(
    `Position bias: the judge picked position 1 in ${pct(p.positionBias, 1)} of ${p.verdicts} verdict(s) (50% is unbiased; a split verdict is the judge following the position rather than the text).`,
  );
  lines.push("");
  if (p.judgeFailures > 0) {
    lines.push(
      `Judge failures: ${p.judgeFailures} case(s) got no usable verdict (an error or an answer out of format); they are left out of the win rate.`,
      "",
    );
  }
  lines.push(`![Win, tie and loss](${CHART_FILES.winRate})`, "");
  lines.push(
    `Judge usage: ${report.judge.calls} call(s), ${num(report.judge.promptTokens)} prompt and ${num(report.judge.completionTokens)} completion tokens, ${usd(report.judge.costUsd)}.`,
    "",
  );

  lines.push("## Cases", "");
  lines.push(
    "| # | Case | Task | Chapter | A | A ms | B | B ms | B score |",
    "|---:|---|---|---:|---|---:|---|---:|---:|",
  );
  for (const [i, c] of report.cases.entries()) {
    const side = (s: typeof c.a) =>
      s.status === "done"
        ? s.continuityOk === false
          ? "done (continuity issues)"
          : "done"
        : `failed: ${md(s.error ?? "")}`;
    const score =
      c.judge === undefined
        ? "—"
        : c.judge.score === null
          ? `judge failed: ${md(c.judge.error ?? "")}`
          : String(c.judge.score);
    lines.push(
      `| ${i + 1} | ${md(c.caseId)} | ${c.task} | ${c.chapterNumber} | ${side(c.a)} | ${num(c.a.latencyMs)} | ${side(c.b)} | ${num(c.b.latencyMs)} | ${score} |`,
    );
  }
  lines.push("");
  return { markdown: lines.join("\n"), charts };
}
