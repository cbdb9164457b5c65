/** Markdown export of one branch of a story. Pure: the caller decides where it goes. */
import type { StorySnapshot } from "../agent/types.ts";

export function storyToMarkdown(story: StorySnapshot, untitled: string): string {
  const lines: string[] = [`# ${story.title || untitled}`, "", `> ${story.premise.replace(/\n/g, "\n> ")}`, ""];
  if (story.bible.characters.length > 0) {
    lines.push("## Cast", "");
    for (const c of story.bible.characters) lines.push(`- **${c.name}**${c.role ? ` — ${c.role}` : ""}`);
    lines.push("");
  }
  for (const ch of story.chapters) {
    lines.push(`## ${ch.number}. ${ch.title || `Chapter ${ch.number}`}`, "");
    if (ch.action !== "") lines.push(`*${ch.action}*`, "");
    lines.push(ch.text.trim(), "");
  }
  return `${lines.join("\n").trimEnd()}\n`;
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
