/**
 * Sharing and remixing: a story's starter gives it an unguessable code (/share), and
 * anyone may start their own story from it (/remix): the shared story's setup (scenario,
 * cast with their looks, visual bible, lore) and, when asked, its chapters up to one,
 * copied as the done chapters of the new story's branch. The remix keeps a link to the
 * original and its content rating.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Prisma } from "../generated/prisma/client.ts";
import type { Locale } from "../i18n/locale.ts";
import { t } from "../i18n/messages.ts";
import { tryTakeCounter } from "../store/counters.ts";
import type { Db } from "../store/db.ts";
import { UserFacingError } from "./errors.ts";
import { type Actor, type Conversation, conversationKey, upsertUser, upsertWorkspace } from "./identity.ts";
import { loadChain } from "./snapshot.ts";

/** 32 letters and digits without look-alikes (0/o, 1/l): a byte's low 5 bits pick one evenly. */
const CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";
/** 16 characters of 5 bits: 80 random bits, beyond guessing. */
export const SHARE_CODE_LENGTH = 16;
const CODE_PATTERN = new RegExp(`^[${CODE_ALPHABET}]{${SHARE_CODE_LENGTH}}$`);
/** What a Telegram deep link's `start` payload carries before the code. */
export const REMIX_PAYLOAD_PREFIX = "remix-";

/** A fresh share code from the operating system's random source. */
export function newShareCode(): string {
  return [...randomBytes(SHARE_CODE_LENGTH)].map((b) => CODE_ALPHABET[b & 31]).join("");
}

/**
 * The code in what a reader typed or pasted: the code itself, `remix-<code>`, or a link
 * ending in one; undefined when it cannot be a code (no database lookup is spent on it).
 */
export function parseShareCode(input: string): string | undefined {
  const text = input.trim().toLowerCase();
  const tail = text.includes(REMIX_PAYLOAD_PREFIX) ? text.slice(text.lastIndexOf(REMIX_PAYLOAD_PREFIX) + 6) : text;
  return CODE_PATTERN.test(tail) ? tail : undefined;
}

/** Where a remix goes and who asks for it. */
export interface RemixTarget {
  actor: Actor;
  conversation: Conversation;
  /** The conversation is age-restricted: only there may an adult story be remixed. */
  ageRestricted: boolean;
}

/** The original a share code names, as a remix needs it. */
export interface SharedStory {
  id: string;
  title: string;
  rating: string;
  workspace: { platform: string; externalId: string };
}

/** A remix just created: its first chapter still to write (`pendingChapterId`), or copied up to `chapter`. */
export interface CreatedRemix {
  storyId: string;
  original: { id: string; title: string };
  chapter?: number;
  pendingChapterId?: string;
}

/** The story a live share code names; a revoked or unknown code is refused, saying which. */
export async function findShared(db: Db, input: string): Promise<SharedStory> {
  const code = parseShareCode(input);
  if (code === undefined) throw new UserFacingError("share.unknownCode");
  const story = await db.story.findUnique({
    where: { shareCode: code },
    select: {
      id: true,
      title: true,
      rating: true,
      status: true,
      shareRevokedAt: true,
      workspace: { select: { platform: true, externalId: true } },
    },
  });
  if (story === null) throw new UserFacingError("share.unknownCode");
  if (story.shareRevokedAt !== null) throw new UserFacingError("share.revokedCode");
  return { id: story.id, title: story.title, rating: story.rating, workspace: story.workspace };
}

/** Turn sharing on for `storyId` (its starter only): its live code, a new one when it had none or it was revoked. */
export async function shareStory(db: Db, storyId: string, by: Actor): Promise<string> {
  const story = await starterStory(db, storyId, by);
  if (story.shareCode !== null && story.shareRevokedAt === null) return story.shareCode;
  const code = newShareCode();
  // A compare-and-set on the code seen: of two /share at once, one code wins and both answer it.
  const { count } = await db.story.updateMany({
    where: { id: storyId, shareCode: story.shareCode, shareRevokedAt: story.shareRevokedAt },
    data: { shareCode: code, shareRevokedAt: null },
  });
  if (count === 1) return code;
  const now = await starterStory(db, storyId, by);
  if (now.shareCode === null || now.shareRevokedAt !== null) throw new UserFacingError("error.stale");
  return now.shareCode;
}

/** Revoke the story's code (its starter only): the code then answers that it was revoked. */
export async function unshareStory(db: Db, storyId: string, by: Actor): Promise<void> {
  const story = await starterStory(db, storyId, by);
  if (story.shareCode === null || story.shareRevokedAt !== null) throw new UserFacingError("share.notShared");
  await db.story.update({ where: { id: storyId }, data: { shareRevokedAt: new Date() }, select: { id: true } });
}

async function starterStory(db: Db, storyId: string, by: Actor) {
  const story = await db.story.findUnique({
    where: { id: storyId },
    select: { shareCode: true, shareRevokedAt: true, owner: { select: { platform: true, externalId: true } } },
  });
  if (story === null) throw new UserFacingError("error.noStory");
  if (story.owner.platform !== by.platform || story.owner.externalId !== by.id) {
    throw new UserFacingError("share.notStarter");
  }
  return story;
}

/**
 * Create the remix in one transaction: the new story with the original's setup, cast,
 * lore, and (with `upTo`) its current branch's chapters 1..upTo as done chapters with
 * their summaries, state and choices; else a pending opening chapter for the caller to
 * enqueue. Refused, with nothing written, when the original is adult and the target is
 * not age-restricted, or `upTo` is no done chapter of its current branch.
 */
export async function createRemix(
  db: Db,
  original: SharedStory,
  target: RemixTarget,
  upTo: number | undefined,
  /** A member's daily chapter quota: taken with the opening chapter (a copy writes none). */
  quota?: { key: string; limit: number },
): Promise<CreatedRemix> {
  if (original.rating === "adult" && !target.ageRestricted) throw new UserFacingError("share.adultRemix");
  const source = await db.story.findUnique({
    where: { id: original.id },
    include: { characters: { orderBy: { createdAt: "asc" } }, lore: { orderBy: { createdAt: "asc" } } },
  });
  if (source === null) throw new UserFacingError("share.unknownCode");
  const chain = upTo === undefined ? [] : await loadChain(db, source.id, source.headChapterId);
  const copied = upTo === undefined ? [] : chain.filter((c) => c.number <= upTo);
  const last = copied.at(-1);
  if (upTo !== undefined && (last === undefined || last.number !== upTo || copied.some((c) => c.status !== "done"))) {
    const max = chain.filter((c) => c.status === "done").at(-1)?.number ?? 0;
    throw new UserFacingError("share.chapterRange", { input: upTo, max });
  }
  // The copied chapters' rows, read once: the chain lacks the columns a copy needs.
  const rows = await db.chapter.findMany({
    where: { id: { in: copied.map((c) => c.id) } },
    include: { choices: { orderBy: { position: "asc" } } },
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  return db.$transaction(async (tx) => {
    if (upTo === undefined && quota !== undefined && !(await tryTakeCounter(tx, quota.key, { limit: quota.limit }))) {
      throw new UserFacingError("error.quota", { quota: quota.limit });
    }
    const user = await upsertUser(tx, target.actor);
    const workspace = await upsertWorkspace(tx, {
      platform: target.conversation.platform,
      externalId: target.conversation.workspaceId,
    });
    const storyId = randomUUID();
    await tx.story.create({
      data: {
        id: storyId,
        workspaceId: workspace.id,
        ownerId: user.id,
        conversationId: conversationKey(target.conversation),
        premise: source.premise,
        genre: source.genre,
        // A theme belongs to its server: another server's remix keeps its rules through the lore copied.
        ...(source.themeId !== null && source.workspaceId === workspace.id ? { themeId: source.themeId } : {}),
        title: source.title,
        language: source.language,
        rating: source.rating,
        chapterLength: source.chapterLength,
        artStyle: source.artStyle,
        bible: source.bible ?? {},
        arc: source.arc ?? {},
        revision: 1,
        remixOfId: source.id,
        ...(upTo === undefined ? {} : { remixOfChapter: upTo }),
      },
      select: { id: true },
    });
    if (source.characters.length > 0) {
      await tx.character.createMany({
        data: source.characters.map((c) => ({
          storyId,
          name: c.name,
          role: c.role,
          appearance: c.appearance,
          notes: c.notes,
          ...(c.card === null ? {} : { card: c.card as Prisma.InputJsonValue }),
        })),
      });
    }
    if (source.lore.length > 0) {
      await tx.loreEntry.createMany({
        data: source.lore.map((l) => ({
          storyId,
          keys: l.keys,
          content: l.content,
          constant: l.constant,
          order: l.order,
          source: l.source,
        })),
      });
    }
    let parentId: string | null = null;
    for (const c of copied) {
      const row = byId.get(c.id);
      if (row === undefined) continue;
      const id = randomUUID();
      await tx.chapter.create({
        data: {
          id,
          storyId,
          parentId,
          number: row.number,
          task: row.task,
          status: "done",
          action: row.action,
          title: row.title,
          text: row.text,
          summary: row.summary,
          rollingSummary: row.rollingSummary,
          bibleUpdates: (row.bibleUpdates ?? {}) as Prisma.InputJsonValue,
          ...(row.arc === null ? {} : { arc: row.arc as Prisma.InputJsonValue }),
          authorNote: row.authorNote,
          ...(row.state === null ? {} : { state: row.state as Prisma.InputJsonValue }),
          messageRefs: [],
          requestKey: `${storyId}:remix:${row.number}`,
          // The last copied chapter's choices are the remix's first offer.
          ...(row.id === last?.id && row.choices.length > 0
            ? {
                choices: {
                  create: row.choices.map((choice) => ({
                    position: choice.position,
                    label: choice.label,
                    direction: choice.direction,
                    writeIn: choice.writeIn,
                  })),
                },
              }
            : {}),
        },
        select: { id: true },
      });
      parentId = id;
    }
    let pendingChapterId: string | undefined;
    if (parentId === null) {
      pendingChapterId = randomUUID();
      await tx.chapter.create({
        data: {
          id: pendingChapterId,
          storyId,
          number: 1,
          task: "open",
          requestedById: user.id,
          requestKey: `${storyId}:r0`,
          bibleUpdates: {},
          messageRefs: [],
        },
        select: { id: true },
      });
    }
    await tx.story.update({
      where: { id: storyId },
      data: { headChapterId: parentId ?? pendingChapterId ?? null },
      select: { id: true },
    });
    return {
      storyId,
      original: { id: source.id, title: source.title },
      ...(upTo === undefined ? {} : { chapter: upTo }),
      ...(pendingChapterId === undefined ? {} : { pendingChapterId }),
    };
  });
}

/** The credit a remix carries: the original's title and the chapter it was taken up to. */
export async function remixCredit(
  db: Db,
  storyId: string,
): Promise<{ title: string; chapter: number | null; code: string | null } | undefined> {
  const story = await db.story.findUnique({
    where: { id: storyId },
    select: {
      remixOfChapter: true,
      remixOf: { select: { title: true, shareCode: true, shareRevokedAt: true } },
    },
  });
  if (story?.remixOf == null) return undefined;
  const { remixOf } = story;
  return {
    title: remixOf.title,
    chapter: story.remixOfChapter,
    // The link to the original stays only while it is shared.
    code: remixOf.shareRevokedAt === null ? remixOf.shareCode : null,
  };
}

/** How a remix credits its original, in the reader's language (lists, exports). */
export function remixCreditText(locale: Locale, original: { title: string; chapter: number | null }): string {
  const title = original.title || t(locale, "untitled");
  return original.chapter === null
    ? t(locale, "remix.credit", { title })
    : t(locale, "remix.creditAt", { title, chapter: original.chapter });
}
