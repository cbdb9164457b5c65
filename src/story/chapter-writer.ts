/**
 * The chapter job: runs the story agent for one pending chapter, streams its
 * prose to the conversation's surface, and saves the result in one
 * transaction. A chapter is only ever marked done with its complete text;
 * on failure it is marked failed and the reader is offered a retry.
 */
import { chaptersToFold } from "../agent/memory.ts";
import { mergeState } from "../agent/story-state.ts";
import type {
  AgentInput,
  ChapterResult,
  Method,
  RunRecord,
  StoryAgent,
  StorySnapshot,
  WritingTask,
} from "../agent/types.ts";
import { Prisma } from "../generated/prisma/client.ts";
import { t } from "../i18n/messages.ts";
import type { JobHandler, JobQueue } from "../jobs/job-queue.ts";
import { ModelError } from "../llm/types.ts";
import { StreamRenderer } from "../render/stream-renderer.ts";
import { type Db, isPrismaError } from "../store/db.ts";
import { BUSY, CHAPTER_JOB, type ChapterJobPayload } from "./chapter-job.ts";
import { saveChapter } from "./chapter-save.ts";
import type { ChoicePresenter } from "./choice-presenter.ts";
import type { AudienceResolver } from "./ports/audience.ts";
import type { IllustrationPlanner } from "./ports/illustration-planner.ts";
import type { Preplanner } from "./preplanner.ts";
import { ProgressSaver, parseProgress, resumeFrom } from "./progress.ts";
import { runData } from "./run-data.ts";
import { SILENT_AUDIENCE } from "./silent-audience.ts";
import { CANON, type ChainChapter, writingInputFor } from "./snapshot.ts";

export interface ChapterWriterOptions {
  methods: Record<WritingTask, Method>;
  recentChapters: number;
  /** Logs operator-facing problems (never secrets). */
  log?: (message: string) => void;
  /** Plans made ahead for the offered choices (PREPLAN on): the chapter's own is taken, the rest cancelled. */
  preplanner?: Pick<Preplanner, "take" | "cancel">;
  /** Repairs the parts of chapters kept without them. */
  repairs?: { enqueue(chapterId: string): Promise<void> };
  /** Readers are told "still writing…" once the model's retries have waited this long (default 3 s). */
  stillWritingAfterMs?: number;
}

const STILL_WRITING_AFTER_MS = 3000;
/** Where the fallback "Continue" choice leads. */
const CONTINUE_DIRECTION = "Continue the story from where the chapter stops.";

export class ChapterWriter {
  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly audiences: AudienceResolver,
    private readonly options: ChapterWriterOptions,
    /** Offers the chapter's choices once it is saved (and opens its ballot where members vote). */
    private readonly presenter: ChoicePresenter,
    private readonly illustrations?: IllustrationPlanner,
  ) {}

  /**
   * The job handler. Safe to call twice for one chapter: only a pending chapter is claimed,
   * or one left `writing` when the job was started again (`attempt` > 1: its worker died,
   * or handed it back at shutdown) or queued by start-up recovery (`payload.resume`); such
   * a chapter continues from its saved progress. An aborted `signal` (the process is
   * shutting down) stops the chapter where it is and leaves it `writing`, with its
   * progress: the next run resumes it.
   */
  async run(payload: ChapterJobPayload, signal?: AbortSignal, attempt = 1): Promise<void> {
    const { chapterId } = payload;
    let chapter: ClaimedChapter;
    try {
      chapter = await this.claim(chapterId, payload.resume === true || attempt > 1);
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
      await this.markFailed(chapter, { status: "writing" });
      throw error;
    }
  }

  /**
   * The `failed` hook of the chapter job: the queue gave the job up for good (its
   * worker died more often than the stalled check allows, or its retries ran out; the
   * handler may not have run at all). The chapter is marked failed and its readers
   * offered a retry only while it is still this job's: `pending` or `writing`, its story
   * still at the job's revision. A chapter that was saved, or already failed and said
   * so, is left alone: nothing is told twice.
   */
  async abandon(payload: ChapterJobPayload, reason: string): Promise<void> {
    const chapter = await this.db.chapter.findUnique({
      where: { id: payload.chapterId },
      select: { id: true, story: { select: { id: true, conversationId: true } } },
    });
    if (chapter === null) return;
    const marked = await this.markFailed(chapter, {
      status: { in: [...BUSY] },
      ...(payload.revision === undefined ? {} : { story: { revision: payload.revision } }),
    });
    if (marked) this.options.log?.(`chapter ${chapter.id} failed: its job was given up (${reason})`);
  }

  /**
   * Mark a chapter failed (`internal`) where `where` still holds, and only when this call
   * did, tell its readers, with a retry. A chapter that is not marked (saved meanwhile,
   * already failed, or the database unreachable) is never shown as failed: its retry
   * would be refused.
   */
  private async markFailed(
    chapter: { id: string; story: { id: string; conversationId: string } },
    where: Prisma.ChapterWhereInput,
  ): Promise<boolean> {
    const { id } = chapter;
    const { count } = await this.db.chapter
      .updateMany({ where: { ...where, id }, data: { status: "failed", error: "internal", progress: Prisma.DbNull } })
      .catch((e: unknown) => {
        this.options.log?.(`chapter ${id}: not marked failed: ${String(e)}`);
        return { count: 0 };
      });
    if (count === 0) return false;
    const audience = (await this.audiences(chapter.story.conversationId)) ?? SILENT_AUDIENCE;
    await audience.surface
      .failed(t(audience.locale, "chapter.failed", { reason: t(audience.locale, "error.internal") }), {
        storyId: chapter.story.id,
      })
      .catch((e: unknown) => this.options.log?.(`chapter ${id}: failure not shown: ${String(e)}`));
    return true;
  }

  private async write(chapter: ClaimedChapter, signal?: AbortSignal): Promise<void> {
    const chapterId = chapter.id;
    const { story } = chapter;
    const { chain, input: base } = await writingInputFor(this.db, story, chapter);
    const snapshot = base.story;
    const audience = (await this.audiences(story.conversationId)) ?? SILENT_AUDIENCE;
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
      this.options.log?.(`chapter ${chapterId} stopped for shutdown; its next run resumes it from here`);
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
    try {
      await saveChapter(
        this.db,
        {
          chapterId,
          story,
          result: done,
          messageRefs: rendered.map((m) => m.ref.id),
          pictures,
          ...(done.state === undefined ? {} : { state: mergeState(snapshot.state, done.state) }),
        },
        (error) => this.options.log?.(`chapter ${chapterId}: saving failed once, trying again: ${String(error)}`),
      );
    } catch (error) {
      // A second delivery, or a recovery that marked it failed meanwhile.
      if (isPrismaError(error, "P2025")) return;
      throw error;
    }
    await this.illustrations?.enqueue(pictures.map((p) => p.id)).catch((error: unknown) => {
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
    await this.presenter.present(
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
    this.presenter.planAhead(story.id);
  }

  /**
   * pending -> writing (or writing -> writing when `takeOver`), returning the chapter;
   * throws P2025 when it is in neither.
   */
  private claim(chapterId: string, takeOver: boolean): Promise<ClaimedChapter> {
    return this.db.chapter.update({
      where: { id: chapterId, status: takeOver ? { in: [...BUSY] } : "pending" },
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
 * Run chapter jobs on `queue` with `writer`: `run` (through `wrap`: the wiring adds
 * retries of a database briefly unreachable), and `abandon` when the queue gives a job
 * up for good, so its chapter never stays busy.
 */
export function handleChapterJobs(
  queue: JobQueue,
  writer: ChapterWriter,
  wrap: (handler: JobHandler<ChapterJobPayload>) => JobHandler<ChapterJobPayload> = (handler) => handler,
): void {
  queue.handle<ChapterJobPayload>(
    CHAPTER_JOB,
    wrap((payload, job) => writer.run(payload, job.signal, job.attempt)),
    { failed: (payload, failure) => writer.abandon(payload, failure.error.message) },
  );
}

type ClaimedChapter = Prisma.ChapterGetPayload<{ include: { story: { include: typeof CANON } } }>;
