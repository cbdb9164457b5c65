/** File names of exports. */
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
