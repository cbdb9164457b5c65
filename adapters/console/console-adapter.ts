/**
 * Terminal play: reads lines from standard input (a person or a pipe) and
 * turns them into command invocations. Lines are handled one at a time, and a
 * chapter being written is waited for before the next line is read, so a
 * script piped in plays the same as a person typing.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { dispatch } from "../../commands/dispatch.ts";
import { findCommand } from "../../commands/index.ts";
import { act, choose } from "../../commands/play.ts";
import { answerGenreQuestion, start } from "../../commands/start.ts";
import { argsFromText } from "../../commands/text-args.ts";
import type { Command, CommandContext, CommandOutcome, CommandSpec, Session } from "../../commands/types.ts";
import { GENRES, type Genre } from "../../src/agent/types.ts";
import { t } from "../../src/i18n/messages.ts";
import type { ConsoleSurface } from "./console-surface.ts";

type Ask = { field: "genre" } | { field: "scenario"; genre: Genre };

export class ConsoleAdapter {
  private readonly session: Session = {};
  private ask: Ask | undefined;

  constructor(
    private readonly input: Readable,
    private readonly surface: ConsoleSurface,
    private readonly context: Omit<CommandContext, "session" | "surface">,
    private readonly log: (message: string) => void,
  ) {}

  /** Play until /quit or end of input. */
  async run(): Promise<void> {
    const lines = createInterface({ input: this.input, terminal: false, crlfDelay: Number.POSITIVE_INFINITY });
    await this.surface.notice(t(this.context.locale, "welcome"));
    this.surface.prompt();
    for await (const line of lines) {
      const outcome = await this.handle(line);
      if (outcome.kind === "quit") break;
      this.surface.prompt();
    }
    lines.close();
  }

  private async handle(raw: string): Promise<CommandOutcome> {
    const line = raw.trim();
    const { locale } = this.context;
    if (line.startsWith("/")) {
      this.ask = undefined;
      const [name = "", ...rest] = line.slice(1).split(/\s+/);
      const command = findCommand(name);
      if (command === undefined || command.spec.hidden) {
        await this.surface.notice(t(locale, "error.unknownCommand", { name }));
        return { kind: "done" };
      }
      return this.run_(command, argsFromText(command.spec, rest.join(" ")));
    }
    if (this.ask?.field === "genre") {
      const answer = answerGenreQuestion(line);
      if ("badNumber" in answer) {
        await this.surface.notice(t(locale, "start.badGenre", { input: line, max: GENRES.length }));
        return { kind: "done" };
      }
      return this.run_(start, answer);
    }
    if (this.ask?.field === "scenario") {
      if (line === "") {
        await this.surface.notice(t(locale, "error.emptyScenario"));
        return { kind: "done" };
      }
      return this.run_(start, { genre: this.ask.genre, scenario: line });
    }
    if (line === "") return { kind: "done" };
    const offer = this.surface.lastOffer;
    if (this.session.storyId === undefined) {
      await this.surface.notice(t(locale, "error.noStory"));
      return { kind: "done" };
    }
    if (offer === undefined || offer.storyId !== this.session.storyId) {
      await this.surface.notice(t(locale, "error.noChoices"));
      return { kind: "done" };
    }
    if (/^\d+$/.test(line)) return this.run_(choose, { position: line, revision: offer.revision });
    return this.run_(act, { text: line, revision: offer.revision });
  }

  private async run_<S extends CommandSpec>(
    command: Command<S>,
    raw: Record<string, unknown>,
  ): Promise<CommandOutcome> {
    const ctx: CommandContext = { ...this.context, session: this.session, surface: this.surface };
    const outcome = await dispatch(command as unknown as Command<CommandSpec>, raw, ctx, this.log);
    // A refused scenario (too long, say) is asked for again; anything else ends the question.
    if (outcome.kind !== "failed") this.ask = undefined;
    if (outcome.kind === "ask") {
      this.ask = outcome.field === "genre" ? { field: "genre" } : { field: "scenario", genre: outcome.genre ?? "none" };
      const list = GENRES.map((g, i) => `${i + 1}) ${t(this.context.locale, `genre.${g}`)}`).join("  ");
      await this.surface.notice(
        outcome.field === "genre"
          ? t(this.context.locale, "start.askGenre", { list })
          : t(this.context.locale, "start.askScenario"),
      );
    } else if (outcome.kind === "writing") {
      // The chapter writer reports success or failure on the surface itself.
      await outcome.ticket.job.finished;
    }
    return outcome;
  }
}
