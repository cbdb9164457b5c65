/**
 * Moderator-defined themes of a workspace (a Discord server, a Telegram chat): a name
 * readers pick at /start, a description and rules (banned topics included) that every
 * chapter of those stories must respect, a content rating and an art style.
 *
 * The bot's owner may also set a catalogue (THEMES_FILE, read by src/app/config.ts):
 * themes offered at /start in private conversations. They are stored as the themes of
 * one workspace of their own (CATALOGUE_WORKSPACE), written when first needed, so a
 * story started from one links to its row like any other theme.
 */
import { z } from "zod";
import type { Db } from "../store/db.ts";
import { UserFacingError } from "./errors.ts";
import { upsertWorkspace } from "./identity.ts";

export const RATINGS = ["general", "teen", "adult"] as const;
export type Rating = (typeof RATINGS)[number];

export const THEME_LIMITS = { name: 50, description: 500, rules: 1000, artStyle: 100 } as const;

const ThemeInput = z.object({
  name: z.string().trim().min(1).max(THEME_LIMITS.name),
  description: z.string().trim().max(THEME_LIMITS.description).default(""),
  rules: z.string().trim().max(THEME_LIMITS.rules).default(""),
  rating: z.enum(RATINGS).default("general"),
  artStyle: z.string().trim().max(THEME_LIMITS.artStyle).default(""),
});

export type ThemeFields = z.input<typeof ThemeInput>;

/** A theme of the owner's catalogue, as THEMES_FILE gives it (validated). */
export type CatalogueTheme = z.output<typeof ThemeInput>;

/** The catalogue's own workspace: its rows are the catalogue's themes. */
export const CATALOGUE_WORKSPACE = { platform: "catalogue", externalId: "themes-file" } as const;

/** At most this many themes in THEMES_FILE (one button each at /start). */
export const CATALOGUE_MAX_THEMES = 20;

/**
 * The catalogue file's content checked: `{ "themes": [ { name, description, rules, rating, artStyle } ] }`.
 * Returns the themes, or the problems found (each naming the theme and the field).
 */
export function parseCatalogue(data: unknown): { themes: CatalogueTheme[] } | { problems: string[] } {
  const File = z.object({ themes: z.array(z.unknown()) }).strict();
  const file = File.safeParse(data);
  if (!file.success) return { problems: ['it must be a JSON object { "themes": [ ... ] } and nothing else'] };
  const problems: string[] = [];
  if (file.data.themes.length > CATALOGUE_MAX_THEMES) {
    problems.push(`it lists ${file.data.themes.length} themes; the limit is ${CATALOGUE_MAX_THEMES}`);
  }
  const themes: CatalogueTheme[] = [];
  const names = new Set<string>();
  file.data.themes.forEach((raw, i) => {
    const label = `theme ${i + 1}${nameOf(raw)}`;
    const parsed = ThemeInput.strict().safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push(`${label}: ${describeIssue(issue)}`);
      return;
    }
    const key = parsed.data.name.toLowerCase();
    if (names.has(key)) problems.push(`${label}: the name is used twice`);
    names.add(key);
    themes.push(parsed.data);
  });
  return problems.length > 0 ? { problems } : { themes };
}

function nameOf(raw: unknown): string {
  const name = typeof raw === "object" && raw !== null ? (raw as { name?: unknown }).name : undefined;
  return typeof name === "string" && name.trim() !== "" ? ` (“${name.trim().slice(0, THEME_LIMITS.name)}”)` : "";
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = String(issue.path[0] ?? "");
  if (issue.code === "unrecognized_keys") {
    return `unknown field ${issue.keys.join(", ")} (fields: name, description, rules, rating, artStyle)`;
  }
  if (field === "rating") return `rating must be one of ${RATINGS.join(", ")}`;
  if (field === "") return "must be an object with a name";
  const max = THEME_LIMITS[field as keyof typeof THEME_LIMITS];
  if (issue.code === "too_big" && max !== undefined) return `${field} is longer than ${max} characters`;
  if (issue.code === "too_small") return `${field} is empty`;
  return `${field} must be text${field === "name" ? " (required)" : ""}`;
}

export interface ThemeView {
  id: string;
  /** The workspace's own (its moderators'), or the owner's catalogue (private conversations). */
  source: "workspace" | "catalogue";
  name: string;
  description: string;
  rules: string;
  rating: Rating;
  artStyle: string;
}

export interface WorkspaceRef {
  platform: string;
  externalId: string;
}

/** Where a conversation's themes come from: with `catalogue`, the owner's too (a private conversation). */
export interface ThemeScope {
  catalogue?: boolean;
}

export class ThemeService {
  /** The catalogue's rows, written once per process when first needed. */
  private catalogueRows: Promise<ThemeView[]> | undefined;

  constructor(
    private readonly db: Db,
    private readonly catalogue: readonly CatalogueTheme[] = [],
  ) {}

  /** The workspace's own themes. */
  async list(ws: WorkspaceRef): Promise<ThemeView[]> {
    const rows = await this.db.theme.findMany({
      where: { workspace: { platform: ws.platform, externalId: ws.externalId } },
      orderBy: { name: "asc" },
    });
    return rows.map((row) => view(row, "workspace"));
  }

  /**
   * The themes a reader may pick here: the workspace's own, then (with `scope.catalogue`)
   * the owner's catalogue, in its order; a workspace theme hides a catalogue one of the same name.
   */
  async offered(ws: WorkspaceRef, scope: ThemeScope = {}): Promise<ThemeView[]> {
    const own = await this.list(ws);
    if (scope.catalogue !== true || this.catalogue.length === 0) return own;
    const taken = new Set(own.map((t) => t.name.toLowerCase()));
    return [...own, ...(await this.catalogueThemes()).filter((t) => !taken.has(t.name.toLowerCase()))];
  }

  /** The theme by name (case-insensitive) among those offered here, or a reader-facing error. */
  async find(ws: WorkspaceRef, name: string, scope: ThemeScope = {}): Promise<ThemeView> {
    const wanted = name.trim().toLowerCase();
    const theme = (await this.offered(ws, scope)).find((t) => t.name.toLowerCase() === wanted);
    if (theme === undefined) throw new UserFacingError("error.noTheme", { name: name.trim() });
    return theme;
  }

  /** The theme a button names, if it is still offered here (a button of another chat names none). */
  async findById(ws: WorkspaceRef, id: string, scope: ThemeScope = {}): Promise<ThemeView | undefined> {
    return (await this.offered(ws, scope)).find((t) => t.id === id);
  }

  /** The catalogue as rows of its workspace: written (created or brought up to date) once per process. */
  private catalogueThemes(): Promise<ThemeView[]> {
    this.catalogueRows ??= this.writeCatalogue().catch((error: unknown) => {
      this.catalogueRows = undefined;
      throw error;
    });
    return this.catalogueRows;
  }

  private async writeCatalogue(): Promise<ThemeView[]> {
    const workspace = await upsertWorkspace(this.db, CATALOGUE_WORKSPACE);
    const rows: ThemeView[] = [];
    for (const theme of this.catalogue) {
      const where = { workspaceId_name: { workspaceId: workspace.id, name: theme.name } };
      const upsert = () =>
        this.db.theme.upsert({ where, create: { ...theme, workspaceId: workspace.id }, update: theme });
      // Another process writing the same row at once: its create won, this one updates.
      const row = await upsert().catch(upsert);
      rows.push(view(row, "catalogue"));
    }
    return rows;
  }

  async add(ws: WorkspaceRef, fields: ThemeFields): Promise<ThemeView> {
    const input = parse(fields);
    if ((await this.list(ws)).some((t) => t.name.toLowerCase() === input.name.toLowerCase())) {
      throw new UserFacingError("error.themeExists", { name: input.name });
    }
    const workspace = await upsertWorkspace(this.db, ws);
    return view(await this.db.theme.create({ data: { ...input, workspaceId: workspace.id } }), "workspace");
  }

  /** Change the given fields of a theme; the others stay. */
  async edit(ws: WorkspaceRef, name: string, patch: Partial<ThemeFields>): Promise<ThemeView> {
    const theme = await this.find(ws, name);
    const { source: _source, id: _id, ...fields } = { ...theme, ...definedOnly(patch) };
    return view(await this.db.theme.update({ where: { id: theme.id }, data: parse(fields) }), "workspace");
  }

  async remove(ws: WorkspaceRef, name: string): Promise<void> {
    const theme = await this.find(ws, name);
    await this.db.theme.delete({ where: { id: theme.id } });
  }
}

function parse(fields: ThemeFields) {
  const parsed = ThemeInput.safeParse(fields);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserFacingError("error.badTheme", { field: String(issue?.path[0] ?? "name") });
  }
  return parsed.data;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function view(
  row: { id: string; name: string; description: string; rules: string; rating: string; artStyle: string },
  source: ThemeView["source"],
): ThemeView {
  return {
    id: row.id,
    source,
    name: row.name,
    description: row.description,
    rules: row.rules,
    rating: (RATINGS as readonly string[]).includes(row.rating) ? (row.rating as Rating) : "general",
    artStyle: row.artStyle,
  };
}
