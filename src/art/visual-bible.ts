/**
 * The visual bible: how every picture of a story is described. A character is drawn
 * from its fixed appearance text (set at first mention, editable with /character), and
 * every prompt is built the same way from the scene, the appearance of each character
 * in it and the story's art style, so the same character is described identically in
 * every image. Pure functions: no I/O.
 */
import type { Genre } from "../agent/types.ts";

/** Art style of a story started without a theme (a theme's art style wins). */
export const GENRE_ART_STYLES: Record<Genre, string> = {
  sweet: "soft watercolour, warm pastel light",
  angst: "moody oil painting, muted colours",
  "what-if": "cinematic digital painting",
  adventure: "vivid storybook illustration, bold shapes",
  horror: "dark ink wash, heavy shadows",
  "fan-fiction": "anime illustration, clean line art",
  none: "detailed digital illustration",
};

export const VISUAL_LIMITS = {
  /** Longest scene description sent (a reader's /illustrate text, or the agent's). */
  scene: 600,
  /** Longest appearance text (/character). */
  appearance: 400,
  /** Characters described in one picture (more would blur the likeness of each). */
  charactersPerImage: 4,
  /** Longest caption shown under a picture. */
  caption: 200,
} as const;

export interface VisualCharacter {
  name: string;
  appearance: string;
}

export function artStyleFor(themeArtStyle: string | null | undefined, genre: string): string {
  const fromTheme = themeArtStyle?.trim() ?? "";
  if (fromTheme !== "") return fromTheme;
  return GENRE_ART_STYLES[genre as Genre] ?? GENRE_ART_STYLES.none;
}

/**
 * The cast members in a picture: the ones the agent named (a full name, or a part of
 * one such as a first name), then the ones whose name appears in the scene text; in
 * the cast's order, at most `VISUAL_LIMITS.charactersPerImage`.
 */
export function charactersInScene(scene: string, named: string[], cast: VisualCharacter[]): VisualCharacter[] {
  const wanted = named.map((n) => n.trim().toLowerCase()).filter((n) => n !== "");
  const text = scene.toLowerCase();
  const picked = cast.filter((c) => {
    const name = c.name.toLowerCase();
    const parts = name.split(/\s+/).filter((p) => p.length >= 2);
    const byAgent = wanted.some((w) => w === name || parts.includes(w) || name.includes(w));
    return byAgent || mentions(text, name) || parts.some((p) => mentions(text, p));
  });
  return picked.slice(0, VISUAL_LIMITS.charactersPerImage);
}

/** `word` appears in `text` as a word (any script: CJK names have no spaces around them). */
function mentions(text: string, word: string): boolean {
  if (/^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]+$/u.test(word)) {
    return text.includes(word);
  }
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}($|[^\\p{L}\\p{N}])`, "u").test(text);
}

export interface ImagePromptInput {
  scene: string;
  characters: VisualCharacter[];
  artStyle: string;
  /** general | teen | adult */
  rating: string;
}

/**
 * The image prompt. Each character's line is exactly "<name>: <appearance>", the same
 * text in every picture of the story; the art style and content line close every prompt.
 */
export function buildImagePrompt(input: ImagePromptInput): string {
  const lines = [`Art style: ${input.artStyle}.`, `Scene: ${clip(input.scene, VISUAL_LIMITS.scene)}`];
  if (input.characters.length > 0) {
    lines.push("Characters (draw each exactly as described, the same in every picture):");
    for (const c of input.characters) lines.push(appearanceLine(c));
  }
  const audience = input.rating === "general" ? "all ages" : input.rating === "teen" ? "teens" : "adults";
  lines.push(`Suitable for ${audience}, no nudity. No text, letters, captions or speech bubbles in the image.`);
  return lines.join("\n");
}

/** The one way a character is described in a prompt. */
export function appearanceLine(c: VisualCharacter): string {
  const appearance = c.appearance.trim() === "" ? "appearance as the scene describes" : c.appearance.trim();
  return `- ${c.name}: ${appearance}`;
}

/** A short caption: the scene's first sentence, cut at a word. */
export function captionFor(scene: string, max: number = VISUAL_LIMITS.caption): string {
  const flat = scene.replace(/\s+/g, " ").trim();
  const sentence = /^(.+?(?:[.!?](?=\s|$)|[。！？]))/u.exec(flat)?.[1] ?? flat;
  return clip(sentence, max);
}

export function clip(text: string, max: number): string {
  const flat = text.trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max - 1);
  const space = cut.lastIndexOf(" ");
  return `${space > max / 2 ? cut.slice(0, space) : cut}…`;
}
