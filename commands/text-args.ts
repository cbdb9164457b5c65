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
  if (spec.splitText !== true || second === undefined) return { [first.name]: text };
  // A colon, or a full-width one (typed in Chinese).
  const colon = text.search(/[:：]/u);
  const space = text.search(/\s/);
  const cut = colon > 0 ? colon : space;
  if (cut <= 0) return { [first.name]: text };
  const tail = text.slice(cut + 1).trim();
  return { [first.name]: text.slice(0, cut).trim(), ...(tail === "" ? {} : { [second.name]: tail }) };
}
