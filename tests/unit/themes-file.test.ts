/** THEMES_FILE (the owner's theme catalogue): checked at start, each problem naming the file. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { argsFromText } from "../../commands/text-args.ts";
import { theme } from "../../commands/theme.ts";
import { ConfigError, loadConfig, loadThemeCatalogue } from "../../src/app/config.ts";
import { CATALOGUE_MAX_THEMES } from "../../src/story/themes.ts";

const dir = mkdtempSync(join(tmpdir(), "inkloom-themes-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function file(content: string): string {
  const path = join(dir, `themes-${n++}.json`);
  writeFileSync(path, content);
  return path;
}

function problems(content: string): string[] {
  const path = file(content);
  try {
    loadConfig({ OPENAI_API_KEY: "sk-test", THEMES_FILE: path });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

const themes = (...list: unknown[]) => JSON.stringify({ themes: list });

describe("THEMES_FILE", () => {
  it("the example in the repository loads, and becomes the config's catalogue", () => {
    const config = loadConfig({ OPENAI_API_KEY: "sk-test", THEMES_FILE: "examples/themes.json" });
    expect(config.themeCatalogue.map((t) => t.name)).toEqual(["Cozy Mystery", "Space Opera", "Ink Wash Wuxia"]);
    expect(config.themeCatalogue[1]).toMatchObject({ rating: "teen", artStyle: "retro sci-fi paperback cover" });
  });

  it("unset: no catalogue", () => {
    expect(loadConfig({ OPENAI_API_KEY: "sk-test" }).themeCatalogue).toEqual([]);
  });

  it("a theme's missing fields take the defaults", () => {
    expect(loadThemeCatalogue(file(themes({ name: "Noir" })))).toEqual([
      { name: "Noir", description: "", rules: "", rating: "general", artStyle: "" },
    ]);
  });

  it("a missing file, bad JSON or the wrong shape: the error names the file and the problem", () => {
    const missing = join(dir, "nope.json");
    expect(() => loadConfig({ OPENAI_API_KEY: "sk-test", THEMES_FILE: missing })).toThrow(
      `THEMES_FILE ${missing}: no such file`,
    );
    const [json] = problems("{ themes: [");
    expect(json).toMatch(/^THEMES_FILE .*themes-\d+\.json: not valid JSON/);
    expect(json).toContain("examples/themes.json");
    expect(problems("[]")[0]).toContain('it must be a JSON object { "themes": [ ... ] }');
    expect(problems(JSON.stringify({ themes: [], extra: 1 }))[0]).toContain('{ "themes": [ ... ] }');
  });

  it("each bad theme is named with its field and the limit", () => {
    const list = problems(
      themes(
        { name: "Long", rules: "x".repeat(1001) },
        { name: "Wrong", rating: "mature" },
        { name: "Typo", art_style: "ink" },
        { description: "no name" },
        { name: "" },
        { name: "n".repeat(51) },
        "just text",
      ),
    );
    expect(list).toEqual(
      expect.arrayContaining([
        expect.stringContaining("theme 1 (“Long”): rules is longer than 1000 characters"),
        expect.stringContaining("theme 2 (“Wrong”): rating must be one of general, teen, adult"),
        expect.stringContaining("theme 3 (“Typo”): unknown field art_style"),
        expect.stringContaining("theme 4: name must be text (required)"),
        expect.stringContaining("theme 5: name is empty"),
        expect.stringContaining("theme 6 (“nnnnn"),
        expect.stringContaining("theme 7: must be an object with a name"),
      ]),
    );
    expect(list.find((p) => p.includes("theme 6"))).toContain("name is longer than 50 characters");
  });

  it("names are unique (case-insensitive), and the count is limited", () => {
    expect(problems(themes({ name: "Noir" }, { name: "noir" }))[0]).toContain(
      "theme 2 (“noir”): the name is used twice",
    );
    const many = Array.from({ length: CATALOGUE_MAX_THEMES + 1 }, (_, i) => ({ name: `Theme ${i}` }));
    expect(problems(themes(...many))[0]).toContain(`it lists 21 themes; the limit is ${CATALOGUE_MAX_THEMES}`);
    expect(problems(themes(...many.slice(0, CATALOGUE_MAX_THEMES)))).toEqual([]);
  });

  it("an oversized file is refused before it is read", () => {
    expect(problems(" ".repeat(300 * 1024))[0]).toContain("the file is over 256 KB");
  });
});

describe("/theme typed as text (Telegram, the terminal)", () => {
  it("reads the action, then option:value pairs, or a bare name", () => {
    expect(
      argsFromText(theme.spec, "add name:Space Noir rating:teen rules: no gore, no romance art_style:ink"),
    ).toEqual({
      action: "add",
      name: "Space Noir",
      rating: "teen",
      rules: "no gore, no romance",
      art_style: "ink",
    });
    expect(argsFromText(theme.spec, "remove Space Noir")).toEqual({ action: "remove", name: "Space Noir" });
    expect(argsFromText(theme.spec, "edit Noir\ndescription: rain\nRULES: none")).toEqual({
      action: "edit",
      name: "Noir",
      description: "rain",
      rules: "none",
    });
    expect(argsFromText(theme.spec, "list")).toEqual({ action: "list" });
    // A colon inside a value is kept when no option name precedes it.
    expect(argsFromText(theme.spec, "add name:Noir description:Time: 1947")).toMatchObject({
      description: "Time: 1947",
    });
  });
});
