/**
 * How a chapter's choices are laid out, once for every chat surface: rows of buttons
 * (the choices with their live counts, "Suggest your own" / "Write your own", "Close
 * vote", the 👍/👎 rating row) and the text of an offer once it is decided. A surface only
 * draws the rows: it encodes each button's action for its platform and picks its style.
 */
import { GENRES } from "../agent/types.ts";
import type { Locale } from "../i18n/locale.ts";
import { t } from "../i18n/messages.ts";
import { clamp } from "./split.ts";
import type { ChoiceOffer, ChoiceResult, OfferButton } from "./surface.ts";

export type { OfferAction, OfferButton } from "./surface.ts";

/** A platform's room for buttons. */
export interface OfferShape {
  /** Most choice buttons in one row. */
  buttonsPerRow: number;
  /** Most rows in one message (controls and rating rows included). */
  maxRows: number;
  /** Longest button label, count and number included. */
  labelMax: number;
  /** Whether a pick (not only a vote) gets a "Write your own" button (Telegram readers just type). */
  writeOwnButton: boolean;
}

/** The rating buttons' labels: the same in every language. */
export const RATING_UP = "👍";
export const RATING_DOWN = "👎";

export interface OfferRows {
  rows: OfferButton[][];
  /** Some choice has no button, or a shortened one: the offer's text should list them all. */
  cut: boolean;
}

/**
 * The rows of an open offer: the choices (spread evenly over the rows left after the
 * controls and the rating row), then the controls, then the rating row.
 */
export function offerRows(offer: ChoiceOffer, locale: Locale, shape: OfferShape): OfferRows {
  const { storyId, revision } = offer;
  const controls: OfferButton[] = [];
  if (offer.allowWriteIn && (offer.mode === "vote" || shape.writeOwnButton)) {
    const label = t(locale, offer.mode === "vote" ? "vote.suggest" : "discord.writeOwn");
    controls.push({ action: { kind: "suggest", storyId, revision }, label, tone: "control" });
  }
  if (offer.mode === "vote") {
    controls.push({ action: { kind: "close", storyId, revision }, label: t(locale, "vote.close"), tone: "danger" });
  }
  const rating = ratingRow(offer);
  const maxRows = Math.max(1, shape.maxRows - (controls.length > 0 ? 1 : 0) - (rating.length > 0 ? 1 : 0));
  const shown = Math.min(offer.choices.length, maxRows * shape.buttonsPerRow);
  const rowCount = Math.max(1, Math.ceil(shown / shape.buttonsPerRow));
  const perRow = Math.max(1, Math.ceil(shown / rowCount));
  const kind = offer.mode === "vote" ? "vote" : "pick";
  const rows: OfferButton[][] = [];
  let cut = shown < offer.choices.length;
  for (let start = 0; start < shown; start += perRow) {
    const row: OfferButton[] = [];
    for (let i = start; i < Math.min(start + perRow, shown); i++) {
      const label = choiceLabel(offer, i, shape.labelMax);
      if (label !== `${i + 1}. ${offer.choices[i] ?? ""}${countOf(offer, i)}`) cut = true;
      row.push({ action: { kind, storyId, revision, position: i + 1 }, label, tone: "choice" });
    }
    rows.push(row);
  }
  if (controls.length > 0) rows.push(controls);
  if (rating.length > 0) rows.push(rating);
  return { rows, cut };
}

/** /start's genre question: one button a row. */
export function genreRows(locale: Locale): OfferButton[][] {
  return GENRES.map((genre) => [
    { action: { kind: "genre", genre }, label: t(locale, `genre.${genre}`), tone: "choice" },
  ]);
}

/** One button per theme a reader may pick at /start, after the genres. */
export function themeRows(themes: readonly { id: string; name: string }[], locale: Locale): OfferButton[][] {
  return themes.map((theme) => [
    {
      action: { kind: "theme", themeId: theme.id },
      label: t(locale, "start.themeButton", { name: theme.name }),
      tone: "choice",
    },
  ]);
}

/** 👍 and 👎 on the finished chapter an offer ends (none without a chapter): they stay after the choice. */
export function ratingRow(offer: Pick<ChoiceOffer, "chapterId">): OfferButton[] {
  const { chapterId } = offer;
  if (chapterId === undefined) return [];
  return [
    { action: { kind: "rate", chapterId, value: 1 }, label: RATING_UP, tone: "rating" },
    { action: { kind: "rate", chapterId, value: -1 }, label: RATING_DOWN, tone: "rating" },
  ];
}

/** 👍 and 👎 under a character's /talk reply (the run that wrote it). */
export function talkRatingRow(runId: string): OfferButton[] {
  return [
    { action: { kind: "rate-talk", runId, value: 1 }, label: RATING_UP, tone: "rating" },
    { action: { kind: "rate-talk", runId, value: -1 }, label: RATING_DOWN, tone: "rating" },
  ];
}

/**
 * The text an offer shows once decided: the decision, then every choice marked, with counts.
 * A vote's decision is its announcement (the winner and its votes, or the tie chance broke),
 * so closing a ballot is one edit, not an edit and a notice.
 */
export function closedOfferText(offer: ChoiceOffer, result: ChoiceResult, locale: Locale): string {
  const lines = offer.choices.map((label, i) => {
    const mark = i + 1 === result.chosen ? "✅" : "▫️";
    const count = result.counts === undefined ? "" : ` · ${result.counts[i] ?? 0}`;
    return `${mark} ${label}${count}`;
  });
  return [decision(offer, result, locale), "", ...lines].join("\n");
}

/** "Chosen: …" for a pick; for a vote, the winner with its share of the votes, or the tie drawn. */
function decision(offer: ChoiceOffer, result: ChoiceResult, locale: Locale): string {
  const { counts, tiedWith } = result;
  if (counts === undefined) return t(locale, "pick.taken", { label: result.label });
  if (tiedWith !== undefined && tiedWith.length > 1) {
    const choices = tiedWith.map((p) => `“${offer.choices[p - 1] ?? ""}”`).join(", ");
    return t(locale, "vote.tie", { choices, winner: result.label });
  }
  const total = counts.reduce((a, b) => a + b, 0);
  return t(locale, "vote.winner", { winner: result.label, votes: counts[result.chosen - 1] ?? 0, total });
}

function countOf(offer: ChoiceOffer, index: number): string {
  return offer.mode === "vote" ? ` · ${offer.counts?.[index] ?? 0}` : "";
}

/** "1. Go north" (pick) or "1. Go north · 2" (vote), the label cut so the whole fits `max`. */
function choiceLabel(offer: ChoiceOffer, index: number, max: number): string {
  const label = offer.choices[index] ?? "";
  const prefix = `${index + 1}. `;
  const count = countOf(offer, index);
  return `${prefix}${clamp(label, Math.max(1, max - prefix.length - count.length))}${count}`;
}
