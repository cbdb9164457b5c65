/**
 * Moderator-defined themes of a workspace (a Discord server): a name readers
 * pick at /start, a description and rules (banned topics included) that every
 * chapter of those stories must respect, a content rating and an art style.
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

export interface ThemeView {
  id: string;
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

export class ThemeService {
  constructor(private readonly db: Db) {}

  async list(ws: WorkspaceRef): Promise<ThemeView[]> {
    const rows = await this.db.theme.findMany({
      where: { workspace: { platform: ws.platform, externalId: ws.externalId } },
      orderBy: { name: "asc" },
    });
    return rows.map(view);
  }

  /** The theme by name (case-insensitive), or a reader-facing error. */
  async find(ws: WorkspaceRef, name: string): Promise<ThemeView> {
    const wanted = name.trim().toLowerCase();
    const theme = (await this.list(ws)).find((t) => t.name.toLowerCase() === wanted);
    if (theme === undefined) throw new UserFacingError("error.noTheme", { name: name.trim() });
    return theme;
  }

  async add(ws: WorkspaceRef, fields: ThemeFields): Promise<ThemeView> {
    const input = parse(fields);
    if ((await this.list(ws)).some((t) => t.name.toLowerCase() === input.name.toLowerCase())) {
      throw new UserFacingError("error.themeExists", { name: input.name });
    }
    const workspace = await upsertWorkspace(this.db, ws);
    return view(await this.db.theme.create({ data: { ...input, workspaceId: workspace.id } }));
  }

  /** Change the given fields of a theme; the others stay. */
  async edit(ws: WorkspaceRef, name: string, patch: Partial<ThemeFields>): Promise<ThemeView> {
    const theme = await this.find(ws, name);
    const input = parse({ ...theme, ...definedOnly(patch) });
    return view(await this.db.theme.update({ where: { id: theme.id }, data: input }));
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

function view(row: { id: string; name: string; description: string; rules: string; rating: string; artStyle: string }) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    rules: row.rules,
    rating: (RATINGS as readonly string[]).includes(row.rating) ? (row.rating as Rating) : "general",
    artStyle: row.artStyle,
  };
}
