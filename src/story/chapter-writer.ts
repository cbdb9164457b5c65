/**
 * The chapter job: runs the story agent for one pending chapter, streams its
 * prose to the conversation's surface, and saves the result in one
 * transaction. A chapter is only ever marked done with its complete text;
 * on failure it is marked failed and the reader is offered a retry.
 */
import { chaptersToFold } from "../agent/memory.ts";
import type {
  AgentInput,
  ChapterResult,
  IllustrationProposal,
  Method,
  RunRecord,
  StoryAgent,
  StorySnapshot,
  WritingTask,
} from "../agent/types.ts";
import { Prisma } from "../generated/prisma/client.ts";
import type { Locale } from "../i18n/locale.ts";
import { t } from "../i18n/messages.ts";
import { ModelError } from "../llm/types.ts";
import { StreamRenderer } from "../render/stream-renderer.ts";
import type { ChoiceOffer, Surface } from "../render/surface.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import type { Preplanner } from "./preplanner.ts";
import { ProgressSaver, parseProgress, resumeFrom } from "./progress.ts";
import { runData } from "./run-data.ts";
import { CANON, type ChainChapter, writingInputFor } from "./snapshot.ts";
import type { ChapterJobPayload } from "./story-service.ts";

export interface Audience {
  surface: Surface;
  locale: Locale;
  /** Set where members vote on the choices (group chats, Discord threads). */
  voting?: {
    windowSeconds: number;
    /** Close early once everyone who voted on the previous ballot has voted again. */
    closeWhenPreviousVotersReturn?: boolean;
  };
}

/** Finds where a story is shown; undefined when nobody is watching (the chapter is still written). */
export type AudienceResolver = (conversationId: string) => Audience | undefined | Promise<Audience | undefined>;

/** Opens a ballot once a voting conversation was offered a chapter's choices (see BallotService). */
export interface BallotOpener {
  open(input: {
    storyId: string;
    chapterId: string;
    revision: number;
    starterId: string;
    windowSeconds: number;
    messageRef: string;
  }): Promise<void>;
}

/** A chapter being saved, with the scenes its agent proposed to illustrate. */
export interface ChapterPictures {
  storyId: string;
  workspaceId: string;
  chapterId: string;
  number: number;
  text: string;
  proposals: IllustrationProposal[];
}

/** Plans a chapter's illustrations with it and starts drawing them once it is saved (IllustrationService). */
export interface IllustrationPlanner {
  planForChapter(input: ChapterPictures): Promise<Prisma.IllustrationCreateManyInput[]>;
  enqueue(ids: string[]): Promise<void>;
}

export interface ChapterWriterOptions {
  methods: Record<WritingTask, Method>;
  recentChapters: number;
  /** Logs operator-facing problems (never secrets). */
  log?: (message: string) => void;
  /** Speculative planning of offered choices (PREPLAN on). */
  preplanner?: Pick<Preplanner, "planChoices" | "take" | "cancel">;
  /** Repairs the parts of chapters kept without them. */
  repairs?: { enqueue(chapterId: string): Promise<void> };
  /** Readers are told "still writing…" once the model's retries have waited this long (default 3 s). */
  stillWritingAfterMs?: number;
}

const STILL_WRITING_AFTER_MS = 3000;
/** Where the fallback "Continue" choice leads. */
const CONTINUE_DIRECTION = "Continue the story from where the chapter stops.";

const SILENT: Audience = {
  locale: "en",
  surface: {
    limits: { maxMessageLength: 1_000_000, minEditIntervalMs: 0 },
    post: async () => ({ id: "0" }),
    edit: async () => {},
    offerChoices: async () => ({ id: "0" }),
    updateChoices: async () => {},
    closeChoices: async () => {},
    notice: async () => {},
    failed: async () => {},
    sendFile: async () => {},
    postImage: async () => ({ id: "0" }),
  },
};

export class ChapterWriter {
  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly audiences: AudienceResolver,
    private readonly options: ChapterWriterOptions,
    private readonly ballots?: BallotOpener,
    private readonly illustrations?: IllustrationPlanner,
  ) {}

  /** The job handler. Safe to call twice for one chapter: only a pending chapter is claimed. */
  /**
   * The job handler. An aborted `signal` (the process is shutting down) stops the chapter
   * where it is and leaves it `writing`, with its progress: the next start resumes it.
   */
  async run(payload: ChapterJobPayload, signal?: AbortSignal): Promise<void> {
    const { chapterId } = payload;
    let chapter: ClaimedChapter;
    try {
      chapter = await this.claim(chapterId);
    } catch (error) {
      // Not pending: written already, being written, or failed meanwhile.
      if (isPrismaError(error, "P2025")) return;
      throw error;
    }
    try {
      await this.write(chapter, signal);
    } catch (error) {
      if (signal?.aborted) return;
      // Whatever broke (database, surface, a bug), the chapter must not stay "writing":
      // mark it failed so the reader can retry, and say so.
      this.options.log?.(`chapter ${chapterId} crashed: ${error instanceof Error ? error.message : String(error)}`);
      await this.db.chapter
        .updateMany({
          where: { id: chapterId, status: "writing" },
          data: { status: "failed", error: "internal", progress: Prisma.DbNull },
        })
        .catch((e: unknown) => this.options.log?.(`chapter ${chapterId}: not marked failed: ${String(e)}`));
      const audience = (await this.audiences(chapter.story.conversationId)) ?? SILENT;
      await audience.surface
        .failed(t(audience.locale, "chapter.failed", { reason: t(audience.locale, "error.internal") }), {
          storyId: chapter.story.id,
        })
        .catch((e: unknown) => this.options.log?.(`chapter ${chapterId}: failure not shown: ${String(e)}`));
      throw error;
    }
  }

  private async write(chapter: ClaimedChapter, signal?: AbortSignal): Promise<void> {
    const chapterId = chapter.id;
    const { story } = chapter;
    const { chain, input: base } = await writingInputFor(this.db, story, chapter);
    const snapshot = base.story;
    const audience = (await this.audiences(story.conversationId)) ?? SILENT;
    const { surface, locale } = audience;
    const heading = `${t(locale, "chapter.headingUntitled", { number: chapter.number })}\n\n`;
    const saved = parseProgress(chapter.progress);
    const progress = new ProgressSaver(this.db, chapterId, saved, this.options.log);
    const renderer = new StreamRenderer(surface, (messages) => progress.shown(messages));
    const resume = saved === undefined ? undefined : resumeFrom(saved, heading);
    const input: AgentInput = {
      ...base,
      method: this.options.methods[base.task],
      ...(resume === undefined ? {} : { resume }),
    };
    let headingShown = false;
    if (saved !== undefined && saved.messages.length > 0) {
      // A restart: continue the messages already shown instead of posting a second copy.
      const adopted = saved.messages.map((m) => ({ ref: { id: m.id }, text: m.text }));
      await surface.adopt?.(adopted);
      renderer.adopt(adopted);
      headingShown = true;
    } else {
      await surface.typing?.().catch((error: unknown) => this.options.log?.(`typing failed: ${String(error)}`));
    }
    // Planned ahead while the readers read (PREPLAN): only the prose call remains.
    const plan =
      resume === undefined && input.task === "continue"
        ? await this.options.preplanner?.take(story.id, chapter.parentId, input)
        : undefined;
    this.options.preplanner?.cancel(story.id);
    let waited = 0;
    let toldWaiting = false;
    const onWait = (delayMs: number) => {
      waited += delayMs;
      // Before the prose only: a notice inside streaming text would split it.
      if (toldWaiting || headingShown || waited < (this.options.stillWritingAfterMs ?? STILL_WRITING_AFTER_MS)) return;
      toldWaiting = true;
      surface
        .notice(t(locale, "chapter.stillWriting"))
        .catch((error: unknown) => this.options.log?.(`chapter ${chapterId}: status not shown: ${String(error)}`));
    };
    let result: ChapterResult | undefined;
    let failure: { error: ModelError; runs: RunRecord[] } | undefined;
    try {
      const options = { onWait, ...(plan === undefined ? {} : { plan }), ...(signal === undefined ? {} : { signal }) };
      for await (const event of this.agent.write(input, options)) {
        if (event.type === "story") {
          progress.planned(event.plan);
          if (resume?.story === undefined) {
            const cast = event.cast.map((c) => (c.role ? `${c.name} (${c.role})` : c.name)).join(", ");
            await surface.notice(
              `${t(locale, "story.title", { title: event.title })}\n${t(locale, "story.cast", { cast })}`,
            );
            await surface
              .retitle?.(event.title)
              .catch((error: unknown) => this.options.log?.(`retitle failed: ${String(error)}`));
          }
        } else if (event.type === "text") {
          if (!headingShown) {
            // The heading opens the chapter's first message (one message fewer per chapter,
            // which matters where a chat may receive one message a second), pushed together
            // with the first prose so that message never shows a bare heading.
            headingShown = true;
            renderer.push(`${heading}${event.delta}`);
          } else {
            renderer.push(event.delta);
          }
        } else if (event.type === "status" && (event.phase === "checking" || event.phase === "choosing")) {
          // The prose is complete: a restart from here only asks for the parts.
          if (headingShown) progress.complete();
        } else if (event.type === "done") {
          result = event.result;
        } else if (event.type === "failed") {
          failure = { error: event.error, runs: event.runs };
        }
      }
    } catch (error) {
      failure = {
        error: error instanceof ModelError ? error : new ModelError("bad_output", String(error)),
        runs: [],
      };
    }

    if (signal?.aborted) {
      // Shutting down: what was shown stays, and is continued after the restart.
      await renderer.abort();
      await progress.settle();
      this.options.log?.(`chapter ${chapterId} stopped for shutdown; it resumes on the next start`);
      return;
    }
    if (result === undefined) {
      const error = failure?.error ?? new ModelError("bad_output", "agent ended without a result");
      await renderer.abort(t(locale, "chapter.interrupted"));
      await progress.settle();
      await this.db.$transaction([
        this.db.chapter.update({
          where: { id: chapterId },
          data: { status: "failed", error: error.kind, progress: Prisma.DbNull },
          select: { id: true },
        }),
        this.db.agentRun.createMany({ data: (failure?.runs ?? []).map((run) => runData(story.id, chapterId, run)) }),
      ]);
      this.options.log?.(`chapter ${chapterId} failed: ${error.kind}: ${error.message}`);
      await surface
        .failed(t(locale, "chapter.failed", { reason: t(locale, `model.${error.kind}`) }), { storyId: story.id })
        .catch((e: unknown) => this.options.log?.(`chapter ${chapterId}: failure not shown: ${String(e)}`));
      return;
    }
    if (result.choices.length === 0) {
      // Kept without its parts and without choices: the reader can go on, or write their own.
      result.choices = [{ label: t(locale, "choices.continue"), direction: CONTINUE_DIRECTION }];
    }

    // The text is complete whether or not every edit reached the reader: save it
    // (a resume shows it again) rather than lose a finished chapter to a display error.
    const rendered = await renderer.finish().catch((error: unknown) => {
      this.options.log?.(`chapter ${chapterId}: display failed: ${String(error)}`);
      return [];
    });
    await progress.settle();
    const done = result;
    // Appearance is fixed at first mention (illustrations depend on it staying the same),
    // so only characters the story does not know yet are added.
    const known = new Set(story.characters.map((c) => c.name));
    const fresh = [...(done.story?.bible.characters ?? []), ...done.bibleUpdates.characters].filter(
      (c) => !known.has(c.name) && known.add(c.name),
    );
    // Pictures are drawn after the text is saved, but planned with it: a crash loses neither.
    const pictures =
      (await this.illustrations
        ?.planForChapter({
          storyId: story.id,
          workspaceId: story.workspaceId,
          chapterId,
          number: chapter.number,
          text: done.text,
          proposals: done.illustrations,
        })
        .catch((error: unknown) => {
          this.options.log?.(`chapter ${chapterId}: illustrations not planned: ${String(error)}`);
          return [];
        })) ?? [];
    // Built anew for each try: a batch transaction's queries run once.
    const save = () =>
      this.db.$transaction([
        // Only a chapter still being written becomes done: a second delivery or a
        // recovery that marked it failed meanwhile makes this throw P2025.
        this.db.chapter.update({
          where: { id: chapterId, status: "writing" },
          data: {
            status: "done",
            title: done.chapterTitle,
            text: done.text,
            summary: done.summary,
            bibleUpdates: { facts: done.bibleUpdates.facts },
            ...(done.arc === undefined ? {} : { arc: { beats: done.arc.beats, openThreads: done.arc.openThreads } }),
            messageRefs: rendered.map((m) => m.ref.id),
            progress: Prisma.DbNull,
            needsRepair: done.needsRepair === true,
          },
          select: { id: true },
        }),
        this.db.choice.createMany({
          data: done.choices.map((c, i) => ({ chapterId, position: i + 1, label: c.label, direction: c.direction })),
        }),
        ...(fresh.length === 0
          ? []
          : [
              this.db.character.createMany({
                data: fresh.map((c) => ({ storyId: story.id, name: c.name, role: c.role, appearance: c.appearance })),
              }),
            ]),
        // The story's updatedAt already moved when the reader's request moved its head.
        ...(done.story === undefined
          ? []
          : [
              this.db.story.update({
                where: { id: story.id },
                data: {
                  title: done.story.title,
                  language: done.story.language,
                  bible: { places: done.story.bible.places, facts: done.story.bible.facts } as object,
                  arc: { beats: done.story.arc.beats, openThreads: done.story.arc.openThreads },
                },
                select: { id: true },
              }),
            ]),
        // createMany returns no rows: the trajectories' JSON is not read back.
        this.db.agentRun.createMany({ data: done.runs.map((run) => runData(story.id, chapterId, run)) }),
        ...(pictures.length === 0 ? [] : [this.db.illustration.createMany({ data: pictures })]),
      ]);
    try {
      await saveWithRetry(save, (error) =>
        this.options.log?.(`chapter ${chapterId}: saving failed once, trying again: ${String(error)}`),
      );
    } catch (error) {
      if (isPrismaError(error, "P2025")) return;
      throw error;
    }
    await this.illustrations
      ?.enqueue(pictures.map((p) => p.id).filter((id): id is string => id !== undefined))
      .catch((error: unknown) => {
        // The rows stay pending: the next start-up draws them.
        this.options.log?.(`chapter ${chapterId}: illustrations not queued: ${String(error)}`);
      });

    if (done.needsRepair === true) {
      await this.options.repairs
        ?.enqueue(chapterId)
        .catch((error: unknown) => this.options.log?.(`chapter ${chapterId}: repair not queued: ${String(error)}`));
    }
    // Nothing can change the story while its head chapter is being written, so the
    // revision read at the start is still current.
    await this.present(
      audience,
      story,
      chapterId,
      done.choices.map((c) => c.label),
    );
    const written: ChainChapter = {
      id: chapterId,
      parentId: chapter.parentId,
      number: chapter.number,
      status: "done",
      title: done.chapterTitle,
      text: done.text,
      summary: done.summary,
      action: chapter.action,
      rollingSummary: "",
      facts: done.bibleUpdates.facts,
      arc: done.arc ?? null,
    };
    await this.foldSummary(story.id, [...chain, written], snapshot).catch((error: unknown) => {
      // Not fatal: the chapters stay unfolded and are folded after the next chapter.
      this.options.log?.(`summary fold failed for story ${story.id}: ${String(error)}`);
    });
    // Planned after the fold: the next chapter is written from the folded summary, and a
    // plan made before it would not match (and be thrown away).
    this.planAhead(story.id);
  }

  /**
   * Offer the head chapter's choices again where the story is shown (after an
   * undo, a branch or a resume): a new ballot where members vote, buttons to pick
   * elsewhere. Returns false when there is nothing to offer.
   */
  async reoffer(storyId: string): Promise<boolean> {
    const story = await this.db.story.findUnique({
      where: { id: storyId },
      select: {
        id: true,
        revision: true,
        ownerId: true,
        conversationId: true,
        head: {
          select: { id: true, status: true, choices: { orderBy: { position: "asc" }, select: { label: true } } },
        },
      },
    });
    const head = story?.head;
    if (story == null || head == null || head.status !== "done" || head.choices.length === 0) return false;
    const audience = (await this.audiences(story.conversationId)) ?? SILENT;
    await this.present(
      audience,
      story,
      head.id,
      head.choices.map((c) => c.label),
    );
    this.planAhead(story.id);
    return true;
  }

  /** While the readers read (or vote), plan each offered choice ahead (PREPLAN). */
  private planAhead(storyId: string): void {
    this.options.preplanner
      ?.planChoices(storyId)
      .catch((error: unknown) => this.options.log?.(`story ${storyId}: planning ahead failed: ${String(error)}`));
  }

  /** Offer a chapter's choices: a vote (with its ballot) where members vote, a pick elsewhere. */
  private async present(
    audience: Audience,
    story: { id: string; revision: number; ownerId: string },
    chapterId: string,
    labels: string[],
  ): Promise<void> {
    const voting = audience.voting;
    const offer: ChoiceOffer = {
      storyId: story.id,
      revision: story.revision,
      chapterId,
      choices: labels,
      allowWriteIn: true,
      mode: voting === undefined ? "pick" : "vote",
      ...(voting === undefined
        ? {}
        : { counts: labels.map(() => 0), closesAt: new Date(Date.now() + voting.windowSeconds * 1000) }),
    };
    try {
      const ref = await audience.surface.offerChoices(offer);
      if (voting !== undefined && this.ballots !== undefined) {
        await this.ballots.open({
          storyId: story.id,
          chapterId,
          revision: story.revision,
          starterId: story.ownerId,
          windowSeconds: voting.windowSeconds,
          messageRef: ref.id,
        });
      }
    } catch (error) {
      // The chapter is saved; resuming the story shows its choices again.
      this.options.log?.(`chapter ${chapterId}: could not offer the choices: ${String(error)}`);
    }
  }

  /** pending -> writing, returning the chapter; throws P2025 when it is not pending. */
  private claim(chapterId: string): Promise<ClaimedChapter> {
    return this.db.chapter.update({
      where: { id: chapterId, status: "pending" },
      data: { status: "writing" },
      include: { story: { include: CANON } },
    });
  }

  /** Keep the prompt bounded: fold chapters that left the verbatim window into the rolling summary. */
  private async foldSummary(storyId: string, chain: ChainChapter[], before: StorySnapshot): Promise<void> {
    const story: StorySnapshot = {
      ...before,
      chapters: chain.map(({ number, title, text, summary, action }) => ({ number, title, text, summary, action })),
    };
    const fold = chaptersToFold(story, this.options.recentChapters);
    const last = fold.at(-1);
    if (last === undefined) return;
    const { summary, run } = await this.agent.summarize({ story, fold });
    const target = chain.find((c) => c.number === last.number);
    if (target === undefined) return;
    await this.db.$transaction([
      this.db.chapter.update({ where: { id: target.id }, data: { rollingSummary: summary }, select: { id: true } }),
      this.db.agentRun.createMany({ data: [runData(storyId, null, run)] }),
    ]);
  }
}

/**
 * The chapter's save, tried twice: the reader has read it, so a passing database hiccup
 * (a locked SQLite file, a dropped connection) must not lose it. A chapter that is no
 * longer being written (P2025) is not retried.
 */
async function saveWithRetry(save: () => Promise<unknown>, log: (error: unknown) => void): Promise<void> {
  try {
    await save();
  } catch (error) {
    if (isPrismaError(error, "P2025")) throw error;
    log(error);
    await new Promise((resolve) => setTimeout(resolve, SAVE_RETRY_MS));
    await save();
  }
}

const SAVE_RETRY_MS = 250;

type ClaimedChapter = Prisma.ChapterGetPayload<{ include: { story: { include: typeof CANON } } }>;
