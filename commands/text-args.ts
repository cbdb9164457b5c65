/**
 * A command typed as text (`/rewrite make it happier`, `/character Mara: short hair`), read
 * the same way on every platform that takes typed commands.
 */
import type { CommandSpec } from "./types.ts";

/**
 * Typed arguments: the whole rest of the line goes to the first option, or with
 * `spec.splitText` the part before a colon (else the first word) goes to the first
 * option and the rest to the second.
 */
export function argsFromText(spec: CommandSpec, rest: string): Record<string, unknown> {
  const [first, second] = spec.options;
  const text = rest.trim();
  if (first === undefined || text === "") return {};
  if (spec.keyedText === true) return keyedArgs(spec, text);
  if (spec.splitText !== true || second === undefined) return { [first.name]: text };
  // A colon, or a full-width one (typed in Chinese).
  const colon = text.search(/[:：]/u);
  const space = text.search(/\s/);
  const cut = colon > 0 ? colon : space;
  if (cut <= 0) return { [first.name]: text };
  const tail = text.slice(cut + 1).trim();
  return { [first.name]: text.slice(0, cut).trim(), ...(tail === "" ? {} : { [second.name]: tail }) };
}

/** `action name:Noir rating:teen`: the first word, then each `option:` up to the next one. */
function keyedArgs(spec: CommandSpec, text: string): Record<string, unknown> {
  const [first, second] = spec.options;
  if (first === undefined) return {};
  const space = text.search(/\s/);
  const out: Record<string, unknown> = { [first.name]: space < 0 ? text : text.slice(0, space) };
  const rest = space < 0 ? "" : text.slice(space + 1);
  const names = spec.options.slice(1).map((o) => o.name);
  const key = new RegExp(`(?:^|\\s)(${names.join("|")}):`, "gi");
  const marks = [...rest.matchAll(key)];
  const lead = rest.slice(0, marks[0]?.index ?? rest.length).trim();
  if (lead !== "" && second !== undefined) out[second.name] = lead;
  marks.forEach((mark, i) => {
    const name = (mark[1] ?? "").toLowerCase();
    const start = (mark.index ?? 0) + mark[0].length;
    const end = marks[i + 1]?.index ?? rest.length;
    out[name] = rest.slice(start, end).trim();
  });
  return out;
}
