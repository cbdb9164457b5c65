/**
 * The direction of dependencies (docs/architecture.md), checked on the source: no import
 * circles, nothing but the entry points imports src/app, adapters never call a story,
 * ballot or illustration service for a reader action, and ports stay free of Prisma.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const LAYERS = ["src", "commands", "adapters"];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "generated" || name === "node_modules") continue;
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const FILES = LAYERS.flatMap((layer) => sources(join(ROOT, layer)));

/** Relative imports of a file (static and dynamic), resolved to paths under the root. */
function importsOf(file: string): { path: string; typeOnly: boolean }[] {
  const text = readFileSync(file, "utf8");
  const found: { path: string; typeOnly: boolean }[] = [];
  const pattern = /(?:import|export)\s+(type\s+)?[^;]*?from\s+["'](\.[^"']+)["']|import\(\s*["'](\.[^"']+)["']\s*\)/g;
  for (const match of text.matchAll(pattern)) {
    const spec = match[2] ?? match[3];
    if (spec === undefined) continue;
    found.push({ path: resolve(dirname(file), spec), typeOnly: match[1] !== undefined });
  }
  return found;
}

const rel = (path: string) => relative(ROOT, path);

/** Entry points: what package.json scripts run, and the training command lines. */
function entryPoints(): Set<string> {
  const scripts = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts as Record<string, string>;
  const entries = new Set<string>();
  for (const command of Object.values(scripts)) {
    for (const match of command.matchAll(/tsx\s+(?:--[\w-]+\s+)*([\w./-]+\.ts)/g)) {
      if (match[1] !== undefined) entries.add(match[1]);
    }
  }
  for (const file of FILES) if (rel(file).startsWith("src/training/cli/")) entries.add(rel(file));
  return entries;
}

describe("the direction of dependencies", () => {
  it("has no import circles in src, commands and adapters", () => {
    const graph = new Map(FILES.map((f) => [f, importsOf(f).map((i) => i.path)]));
    const state = new Map<string, "open" | "done">();
    const circles: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        circles.push([...path.slice(path.indexOf(file)), file].map(rel).join(" -> "));
        return;
      }
      state.set(file, "open");
      for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file]);
      state.set(file, "done");
    };
    for (const file of FILES) visit(file, []);
    expect(circles).toEqual([]);
  });

  it("lets only src/app and the entry points import src/app", () => {
    const entries = entryPoints();
    expect(entries.size).toBeGreaterThan(3);
    const offenders = FILES.filter((f) => !rel(f).startsWith("src/app/") && !entries.has(rel(f))).flatMap((f) =>
      importsOf(f)
        .filter((i) => rel(i.path).startsWith("src/app/"))
        .map((i) => `${rel(f)} imports ${rel(i.path)}`),
    );
    expect(offenders).toEqual([]);
  });

  it("keeps adapters from calling story, ballot or illustration services", () => {
    const calls = /\bdeps\.(stories|ballots|queries|ratings|books|illustrations)\.\w+\(/g;
    const offenders = FILES.filter((f) => rel(f).startsWith("adapters/")).flatMap((f) =>
      [...readFileSync(f, "utf8").matchAll(calls)].map((m) => `${rel(f)}: ${m[0]}`),
    );
    expect(offenders).toEqual([]);
  });

  it("keeps the core's ports free of Prisma and of platforms", () => {
    const ports = FILES.filter((f) => rel(f).startsWith("src/story/ports/") || rel(f) === "src/render/surface.ts");
    expect(ports.length).toBeGreaterThanOrEqual(4);
    for (const port of ports) {
      const text = readFileSync(port, "utf8");
      expect(text, rel(port)).not.toMatch(/generated\/prisma|@prisma\/client|discord\.js|telegraf/);
    }
  });

  it("keeps the core (src, but its composition root src/app) free of adapters and commands", () => {
    const core = FILES.filter((f) => rel(f).startsWith("src/") && !rel(f).startsWith("src/app/"));
    const offenders = core.flatMap((f) =>
      importsOf(f)
        .filter((i) => /^(adapters|commands)\//.test(rel(i.path)))
        .map((i) => `${rel(f)} imports ${rel(i.path)}`),
    );
    expect(offenders).toEqual([]);
  });
});
