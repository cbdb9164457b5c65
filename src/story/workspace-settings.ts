/**
 * Per-workspace settings (a Telegram chat, a Discord server), stored as JSON on
 * the Workspace row and validated on every read, so a bad row never breaks a chat.
 */
import { z } from "zod";
import type { Locale } from "../i18n/locale.ts";
import type { Db } from "../store/db.ts";
import { UserFacingError } from "./errors.ts";
import { upsertWorkspace } from "./identity.ts";

export const VOTE_SECONDS_RANGE = { min: 10, max: 86_400 } as const;

const SettingsSchema = z.object({
  locale: z.enum(["en", "zh"]).optional(),
  voteSeconds: z.number().int().min(VOTE_SECONDS_RANGE.min).max(VOTE_SECONDS_RANGE.max).optional(),
  illustrations: z.boolean().optional(),
  /** Illustrations the story agent may add to one chapter. */
  imagesPerChapter: z.number().int().min(0).max(4).optional(),
  /** Illustrations per day in this chat or server, readers' /illustrate included. */
  imagesPerDay: z.number().int().min(0).max(10_000).optional(),
  /** How long chapters are. */
  chapterLength: z.enum(["short", "medium", "long"]).optional(),
  /** Chapters a member may ask for per day (0: no limit). */
  dailyQuota: z.number().int().min(0).max(1000).optional(),
  /** Content rating of stories started without a theme. */
  rating: z.enum(["general", "teen", "adult"]).optional(),
  /** Whether stories here may be shared and remixed (/share, /remix). */
  sharing: z.boolean().optional(),
  /** Channels where stories may start (Discord channel ids); empty or absent: anywhere. */
  allowedChannels: z
    .array(z.string().regex(/^\d{1,25}$/))
    .max(25)
    .optional(),
});

export type WorkspaceSettings = z.infer<typeof SettingsSchema>;

export interface ResolvedSettings {
  locale: Locale;
  voteSeconds: number;
  illustrations: boolean;
  imagesPerChapter: number;
  imagesPerDay: number;
  rating: "general" | "teen" | "adult";
  chapterLength: "short" | "medium" | "long";
  dailyQuota: number;
  allowedChannels: string[];
  sharing: boolean;
}

export class WorkspaceSettingsStore {
  constructor(
    private readonly db: Db,
    private readonly defaults: ResolvedSettings,
  ) {}

  async get(platform: string, externalId: string): Promise<ResolvedSettings> {
    const row = await this.db.workspace.findUnique({
      where: { platform_externalId: { platform, externalId } },
      select: { settings: true },
    });
    const parsed = SettingsSchema.safeParse(row?.settings ?? {});
    return resolve(this.defaults, parsed.success ? parsed.data : {});
  }

  /**
   * Change one setting; values are validated here, once, for every platform. The
   * settings are one JSON value: the write is a compare-and-set on their revision, tried
   * again when another change (another process) got there first, so none is lost.
   */
  async set(platform: string, externalId: string, patch: WorkspaceSettings): Promise<ResolvedSettings> {
    const checked = SettingsSchema.safeParse(patch);
    if (!checked.success) throw new UserFacingError("error.badSetting");
    const where = { platform_externalId: { platform, externalId } };
    for (let attempt = 0; attempt < SET_ATTEMPTS; attempt++) {
      const select = { id: true, settings: true, settingsRevision: true } as const;
      let row = await this.db.workspace.findUnique({ where, select });
      if (row === null) {
        await upsertWorkspace(this.db, { platform, externalId });
        row = await this.db.workspace.findUniqueOrThrow({ where, select });
      }
      const current = SettingsSchema.safeParse(row.settings);
      const settings = { ...(current.success ? current.data : {}), ...stripUndefined(checked.data) };
      const { count } = await this.db.workspace.updateMany({
        where: { id: row.id, settingsRevision: row.settingsRevision },
        data: { settings, settingsRevision: { increment: 1 } },
      });
      if (count === 1) return resolve(this.defaults, settings);
    }
    throw new Error(`settings of ${platform}:${externalId}: ${SET_ATTEMPTS} changes at once won over this one`);
  }
}

/** Compare-and-set tries before giving up (each loses only to a change that succeeded). */
const SET_ATTEMPTS = 5;

function resolve(defaults: ResolvedSettings, s: WorkspaceSettings): ResolvedSettings {
  return {
    locale: s.locale ?? defaults.locale,
    voteSeconds: s.voteSeconds ?? defaults.voteSeconds,
    illustrations: s.illustrations ?? defaults.illustrations,
    imagesPerChapter: s.imagesPerChapter ?? defaults.imagesPerChapter,
    imagesPerDay: s.imagesPerDay ?? defaults.imagesPerDay,
    rating: s.rating ?? defaults.rating,
    chapterLength: s.chapterLength ?? defaults.chapterLength,
    dailyQuota: s.dailyQuota ?? defaults.dailyQuota,
    allowedChannels: s.allowedChannels ?? defaults.allowedChannels,
    sharing: s.sharing ?? defaults.sharing,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
