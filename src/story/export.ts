/** Markdown export of one branch of a story. Pure: the caller decides where it goes. */
import type { StorySnapshot } from "../agent/types.ts";
import { bookToMarkdown } from "./book.ts";

export function storyToMarkdown(story: StorySnapshot, untitled: string): string {
  return bookToMarkdown({
    title: story.title,
    premise: story.premise,
    cast: story.bible.characters.map((c) => ({ name: c.name, role: c.role, appearance: "" })),
    artStyle: "",
    chapters: story.chapters.map((ch) => ({ ...ch, images: [] })),
    labels: { untitled, chapter: (n) => `Chapter ${n}`, cast: "Cast", illustration: "Illustration" },
  });
}

/** A file-name-safe slug; keeps letters of any script. */
export function slugify(text: string, max = 40): string {
  const slug = text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, max);
  return slug === "" ? "story" : slug;
}
