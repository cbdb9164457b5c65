/**
 * Terminal play: reads lines from standard input (a person or a pipe) and
 * turns each into a reader action for the core. Lines are handled one at a time, and a
 * chapter being written is waited for before the next line is read, so a
 * script piped in plays the same as a person typing.
 */
import { statSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { handleAction, type ReaderAction } from "../../commands/actions.ts";
import type { CommandContext, CommandOutcome, IncomingFile, Session } from "../../commands/types.ts";
import { t } from "../../src/i18n/messages.ts";
import { UserFacingError } from "../../src/story/errors.ts";
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
    const ctx: CommandContext = { ...this.context, session: this.session, surface: this.surface, openPath: localFile };
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

/** A file named by the terminal's reader (a card to import), read no further than asked. */
function localFile(path: string): IncomingFile {
  const full = resolve(path.replace(/^["']|["']$/g, ""));
  const unreadable = (error: unknown): never => {
    const code = (error as { code?: string }).code;
    throw new UserFacingError("card.unreadable", { path: full, reason: code ?? String(error) });
  };
  let size: number | undefined;
  try {
    size = statSync(full).size;
  } catch {
    // Reported by read(), with the reason.
  }
  return {
    name: basename(full),
    ...(size === undefined ? {} : { size }),
    async read(maxBytes) {
      const info = await stat(full).catch(unreadable);
      if (!info.isFile()) unreadable({ code: "not a file" });
      const handle = await open(full, "r").catch(unreadable);
      try {
        const buffer = Buffer.alloc(Math.min(info.size, maxBytes + 1));
        const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, 0);
        return buffer.subarray(0, bytesRead);
      } finally {
        await handle.close();
      }
    },
  };
}
