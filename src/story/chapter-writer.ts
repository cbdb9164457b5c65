/**
 * The chapter job: runs the story agent for one pending chapter, streams its
 * prose to the conversation's surface, and saves the result in one
 * transaction. A chapter is only ever marked done with its complete text;
 * on failure it is marked failed and the reader is offered a retry.
 */
import { chaptersToFold } from "../agent/memory.ts";
import type { AgentInput, ChapterResult, Method, RunRecord, StoryAgent, WritingTask } from "../agent/types.ts";
import type { Locale } from "../app/config.ts";
import { t } from "../i18n/messages.ts";
import { ModelError } from "../llm/types.ts";
import { StreamRenderer } from "../render/stream-renderer.ts";
import type { Surface } from "../render/surface.ts";
import type { Db } from "../store/db.ts";
import { buildSnapshot, loadChain } from "./snapshot.ts";
import type { ChapterJobPayload } from "./story-service.ts";

export interface Audience {
  surface: Surface;
  locale: Locale;
}

/** Finds where a story is shown; undefined when nobody is watching (the chapter is still written). */
export type AudienceResolver = (conversationId: string) => Audience | undefined;

export interface ChapterWriterOptions {
  methods: Record<WritingTask, Method>;
  recentChapters: number;
  /** Logs operator-facing problems (never secrets). */
  log?: (message: string) => void;
}

const SILENT: Audience = {
  locale: "en",
  surface: {
    limits: { maxMessageLength: 1_000_000, minEditIntervalMs: 0 },
    post: async () => ({ id: "0" }),
    edit: async () => {},
    offerChoices: async () => ({ id: "0" }),
    notice: async () => {},
    sendFile: async () => {},
  },
};

export class ChapterWriter {
  constructor(
    private readonly db: Db,
    private readonly agent: StoryAgent,
    private readonly audiences: AudienceResolver,
    private readonly options: ChapterWriterOptions,
  ) {}

  /** The job handler. Safe to call twice for one chapter: only a pending chapter is claimed. */
  async run(payload: ChapterJobPayload): Promise<void> {
    const { chapterId } = payload;
    const claimed = await this.db.chapter.updateMany({
      where: { id: chapterId, status: "pending" },
      data: { status: "writing" },
    });
    if (claimed.count !== 1) return;
    const chapter = await this.db.chapter.findUniqueOrThrow({ where: { id: chapterId } });
    const story = await this.db.story.findUniqueOrThrow({ where: { id: chapter.storyId } });
    const chain = await loadChain(this.db, story.id, chapter.parentId);
    const snapshot = await buildSnapshot(this.db, story.id, chain);
    const replaced =
      chapter.rewriteOfId === null ? null : await this.db.chapter.findUnique({ where: { id: chapter.rewriteOfId } });
    const task = chapter.task as WritingTask;
    const input: AgentInput = {
      task,
      method: this.options.methods[task],
      story: snapshot,
      chapterNumber: chapter.number,
      ...(chapter.action === "" ? {} : { action: chapter.action }),
      ...(chapter.direction === "" ? {} : { direction: chapter.direction }),
      ...(replaced === null
        ? {}
        : {
            replacing: {
              number: replaced.number,
              title: replaced.title,
              text: replaced.text,
              summary: replaced.summary,
              action: replaced.action,
            },
          }),
    };
    const { surface, locale } = this.audiences(story.conversationId) ?? SILENT;
    const renderer = new StreamRenderer(surface);
    let result: ChapterResult | undefined;
    let failure: { error: ModelError; runs: RunRecord[] } | undefined;
    let headingShown = false;
    try {
      for await (const event of this.agent.write(input)) {
        if (event.type === "story") {
          const cast = event.cast.map((c) => (c.role ? `${c.name} (${c.role})` : c.name)).join(", ");
          await surface.notice(
            `${t(locale, "story.title", { title: event.title })}\n${t(locale, "story.cast", { cast })}`,
          );
        } else if (event.type === "text") {
          if (!headingShown) {
            headingShown = true;
            await surface.notice(t(locale, "chapter.headingUntitled", { number: chapter.number }));
          }
          renderer.push(event.delta);
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

    if (result === undefined) {
      const error = failure?.error ?? new ModelError("bad_output", "agent ended without a result");
      await renderer.abort(t(locale, "chapter.interrupted")).catch(() => {});
      await this.db.$transaction(async (tx) => {
        await tx.chapter.update({ where: { id: chapterId }, data: { status: "failed", error: error.kind } });
        for (const run of failure?.runs ?? []) await tx.agentRun.create({ data: runData(story.id, chapterId, run) });
      });
      this.options.log?.(`chapter ${chapterId} failed: ${error.kind}: ${error.message}`);
      await surface.notice(t(locale, "chapter.failed", { reason: t(locale, `model.${error.kind}`) })).catch(() => {});
      return;
    }

    const rendered = await renderer.finish();
    const done = result;
    const saved = await this.db.$transaction(async (tx) => {
      const { count } = await tx.chapter.updateMany({
        where: { id: chapterId, status: "writing" },
        data: {
          status: "done",
          title: done.chapterTitle,
          text: done.text,
          summary: done.summary,
          bibleUpdates: { facts: done.bibleUpdates.facts },
          ...(done.arc === undefined ? {} : { arc: { beats: done.arc.beats, openThreads: done.arc.openThreads } }),
          messageRefs: rendered.map((m) => m.ref.id),
        },
      });
      if (count !== 1) return false;
      await tx.choice.createMany({
        data: done.choices.map((c, i) => ({ chapterId, position: i + 1, label: c.label, direction: c.direction })),
      });
      const newCharacters = [...(done.story?.bible.characters ?? []), ...done.bibleUpdates.characters];
      for (const c of newCharacters) {
        // Appearance is fixed at first mention: illustrations depend on it staying the same.
        await tx.character.upsert({
          where: { storyId_name: { storyId: story.id, name: c.name } },
          create: { storyId: story.id, name: c.name, role: c.role, appearance: c.appearance },
          update: {},
        });
      }
      if (done.story !== undefined) {
        await tx.story.update({
          where: { id: story.id },
          data: {
            title: done.story.title,
            language: done.story.language,
            bible: { places: done.story.bible.places, facts: done.story.bible.facts } as object,
            arc: { beats: done.story.arc.beats, openThreads: done.story.arc.openThreads },
          },
        });
      } else {
        await tx.story.update({ where: { id: story.id }, data: { updatedAt: new Date() } });
      }
      for (const run of done.runs) await tx.agentRun.create({ data: runData(story.id, chapterId, run) });
      return true;
    });
    if (!saved) return;

    const { revision } = await this.db.story.findUniqueOrThrow({ where: { id: story.id }, select: { revision: true } });
    await surface.offerChoices({
      storyId: story.id,
      revision,
      choices: done.choices.map((c) => c.label),
      allowWriteIn: true,
    });
    await this.foldSummary(story.id, chapterId).catch((error: unknown) => {
      // Not fatal: the chapters stay unfolded and are folded after the next chapter.
      this.options.log?.(`summary fold failed for story ${story.id}: ${String(error)}`);
    });
  }

  /** Keep the prompt bounded: fold chapters that left the verbatim window into the rolling summary. */
  private async foldSummary(storyId: string, headId: string): Promise<void> {
    const chain = await loadChain(this.db, storyId, headId);
    const snapshot = await buildSnapshot(this.db, storyId, chain);
    const fold = chaptersToFold(snapshot, this.options.recentChapters);
    const last = fold.at(-1);
    if (last === undefined) return;
    const { summary, run } = await this.agent.summarize({ story: snapshot, fold });
    const target = chain.find((c) => c.number === last.number);
    if (target === undefined) return;
    await this.db.$transaction([
      this.db.chapter.update({ where: { id: target.id }, data: { rollingSummary: summary } }),
      this.db.agentRun.create({ data: runData(storyId, null, run) }),
    ]);
  }
}

function runData(storyId: string, chapterId: string | null, run: RunRecord) {
  return {
    storyId,
    chapterId,
    task: run.task,
    method: run.method,
    model: run.model,
    baseUrl: run.baseUrl,
    promptVersion: run.promptVersion,
    messages: run.messages as unknown as object,
    tools: run.tools as unknown as object,
    promptTokens: run.promptTokens,
    completionTokens: run.completionTokens,
    costUsd: run.costUsd,
    latencyMs: Math.round(run.latencyMs),
    status: run.status,
    error: run.error ?? "",
    checks: run.checks as object,
    outcome: {},
  };
}
