/**
 * Terminal play: reads lines from standard input (a person or a pipe) and
 * turns each into a reader action for the core. Lines are handled one at a time, and a
 * chapter being written is waited for before the next line is read, so a
 * script piped in plays the same as a person typing.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { handleAction, type ReaderAction } from "../../commands/actions.ts";
import type { CommandContext, CommandOutcome, Session } from "../../commands/types.ts";
import { t } from "../../src/i18n/messages.ts";
import type { ConsoleSurface } from "./console-surface.ts";

export class ConsoleAdapter {
  private readonly session: Session = {};

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
    // The one reader at the terminal is always spoken to.
    const action: ReaderAction = line.startsWith("/")
      ? { kind: "command", name: line.slice(1).split(/\s+/)[0] ?? "", text: rest(line), addressed: true }
      : { kind: "text", text: line, addressed: true };
    const ctx: CommandContext = { ...this.context, session: this.session, surface: this.surface };
    const { outcome } = await handleAction(action, ctx, this.log);
    // The chapter writer reports success or failure on the surface itself.
    if (outcome.kind === "writing") await outcome.ticket.job.finished;
    return outcome;
  }
}

/** What follows `/name` on a command line. */
function rest(line: string): string {
  const space = line.search(/\s/);
  return space < 0 ? "" : line.slice(space + 1);
}
