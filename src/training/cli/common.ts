/**
 * What the `train:*` command-line tools share: the .env file, the database, the
 * configuration when there is one, and how they fail (exit code 2: usage, 1: the work failed).
 */
import { existsSync } from "node:fs";
import { type Config, ConfigError, DEFAULTS, loadConfig } from "../../app/config.ts";
import { type Db, openDatabase } from "../../store/db.ts";

export function loadEnvFile(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The configuration, or undefined when none is usable (a tool that can do without says so). */
export function tryConfig(): Config | undefined {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

export function databaseUrl(flag?: string): string {
  return flag ?? process.env.DATABASE_URL ?? DEFAULTS.DATABASE_URL;
}

export function openTrainingDb(flag?: string): Promise<Db> {
  return openDatabase(databaseUrl(flag));
}

/** Run a tool's main: usage errors exit 2 with the message, other failures exit 1. */
export function runCli(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      const usage = error instanceof UsageError;
      process.stderr.write(`${usage ? "" : "error: "}${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = usage ? 2 : 1;
    },
  );
}

/** `continue=0.5,open=0.2`: shares by name (for --tasks and --methods). */
export function parseRatios(flag: string, text: string | undefined): Record<string, number> | undefined {
  if (text === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of text.split(",")) {
    const [name = "", value = ""] = part.split("=").map((x) => x.trim());
    const n = Number(value);
    if (name === "" || value === "" || !Number.isFinite(n) || n < 0) {
      throw new UsageError(`--${flag} takes name=share pairs, such as continue=0.5,open=0.2 (got "${part}")`);
    }
    out[name] = n;
  }
  return out;
}
