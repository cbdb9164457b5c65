/**
 * `npm run train:validate -- <file>... [--kind chat|preference|auto]`: checks
 * fine-tuning JSONL files (see ../jsonl-format.ts) and prints, for each, its
 * kind, line counts, token estimate and the problems found (with line numbers).
 * The kind defaults to auto (decided per file from its first line); "-" reads
 * standard input. Options need the `--` so that npm passes them on.
 *
 * Exit code: 0 when every line of every file is valid, 1 when some line is
 * not, 2 on a usage error (no file given, unknown option, unreadable file).
 */
import { readFileSync } from "node:fs";
import { type JsonlKind, type JsonlReport, validateJsonl } from "../jsonl-format.ts";

const USAGE = "usage: npm run train:validate -- <file.jsonl>... [--kind chat|preference|auto]";

interface Output {
  out(line: string): void;
  err(line: string): void;
}

type Parsed = { files: string[]; kind: JsonlKind | "auto"; help: boolean } | { error: string };

function parseArgs(args: readonly string[]): Parsed {
  const files: string[] = [];
  let kind: JsonlKind | "auto" = "auto";
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    let value: string | undefined;
    if (arg === "--kind") {
      value = args[++i];
      if (value === undefined) return { error: "--kind needs a value: chat, preference or auto" };
    } else if (arg.startsWith("--kind=")) {
      value = arg.slice("--kind=".length);
    } else if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    } else if (arg.startsWith("-") && arg !== "-") {
      return { error: `unknown option ${arg}` };
    } else {
      files.push(arg);
      continue;
    }
    if (value !== "chat" && value !== "preference" && value !== "auto") {
      return { error: `--kind must be chat, preference or auto (got ${JSON.stringify(value)})` };
    }
    kind = value;
  }
  return { files, kind, help };
}

function formatReport(file: string, report: JsonlReport): string[] {
  const invalid = report.lines - report.valid;
  const lines = [
    `${file}: ${report.kind}, ${report.lines} line(s), ${report.valid} valid, ${invalid} invalid`,
    `  tokens (estimate, characters / 4): p50 ${report.tokens.p50}, p90 ${report.tokens.p90}, max ${report.tokens.max}`,
  ];
  for (const error of report.errors) lines.push(`  ${error.message}`);
  const hidden = report.errorCount - report.errors.length;
  if (hidden > 0) lines.push(`  … and ${hidden} more error(s)`);
  return lines;
}

/** Runs the command on `args` (without node and the script) and returns the exit code. */
function run(args: readonly string[], io: Output): number {
  const parsed = parseArgs(args);
  if ("error" in parsed) {
    io.err(`train:validate: ${parsed.error}`);
    io.err(USAGE);
    return 2;
  }
  if (parsed.help) {
    io.out(USAGE);
    return 0;
  }
  if (parsed.files.length === 0) {
    io.err("train:validate: no file given");
    io.err(USAGE);
    return 2;
  }
  let code = 0;
  for (const file of parsed.files) {
    let text: string;
    try {
      text = readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === "ENOENT"
          ? "no such file"
          : error instanceof Error
            ? error.message
            : String(error);
      io.err(`train:validate: cannot read ${file}: ${reason}`);
      if (["chat", "preference", "auto"].includes(file)) {
        io.err("(npm keeps options for itself: put -- before the arguments, as in the usage)");
        io.err(USAGE);
      }
      code = 2;
      continue;
    }
    const report = validateJsonl(text, parsed.kind);
    for (const line of formatReport(file, report)) io.out(line);
    if (report.errorCount > 0 && code === 0) code = 1;
  }
  return code;
}

process.exitCode = run(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
