/**
 * Runs a command for any adapter: validates raw arguments against the spec,
 * calls the handler, and is the one place that decides what a reader sees
 * when something goes wrong.
 */
import { t } from "../src/i18n/messages.ts";
import { ModelError } from "../src/llm/types.ts";
import { DeliveryError } from "../src/render/delivery-error.ts";
import { isDatabaseUnavailable } from "../src/store/db-errors.ts";
import { UserFacingError } from "../src/story/errors.ts";
import type { ArgsOf, Command, CommandContext, CommandOutcome, CommandSpec } from "./types.ts";

/** Validate raw option values (strings from a terminal, typed values from a platform). */
export function validateArgs<S extends CommandSpec>(spec: S, raw: Record<string, unknown>): ArgsOf<S> {
  const out: Record<string, string | number | undefined> = {};
  for (const option of spec.options) {
    const value = raw[option.name];
    const text = typeof value === "string" ? value.trim() : value;
    if (text === undefined || text === null || text === "") {
      if (option.required) {
        throw new UserFacingError("error.missingArgument", {
          name: spec.name,
          option: option.name,
          example: spec.example,
        });
      }
      out[option.name] = undefined;
      continue;
    }
    if (option.type === "integer") {
      const n = typeof text === "number" ? text : /^-?\d{1,9}$/.test(String(text)) ? Number(text) : Number.NaN;
      if (!Number.isSafeInteger(n) || (option.min !== undefined && n < option.min)) {
        throw new UserFacingError("error.badInteger", { input: String(text) });
      }
      out[option.name] = n;
    } else {
      const s = String(text);
      if (option.maxLength !== undefined && s.length > option.maxLength) {
        throw new UserFacingError("error.argumentTooLong", {
          option: option.name,
          length: s.length,
          max: option.maxLength,
        });
      }
      out[option.name] = s;
    }
  }
  return out as ArgsOf<S>;
}

/**
 * How a platform names what messages refer to: the settings command (Discord's is
 * `/config`) and who may moderate (a chat admin on Telegram, Manage Server on Discord).
 */
export function platformWords(platform: string, locale: CommandContext["locale"]): Record<string, string> {
  if (platform === "discord") {
    return {
      settingsShow: "/config show",
      settingsSet: "/config set",
      moderatorRole: t(locale, "role.discordModerator"),
    };
  }
  return { settingsShow: "/settings", settingsSet: "/settings", moderatorRole: t(locale, "role.chatAdmin") };
}

/**
 * The one place that decides what a reader sees for an error, in their platform's words;
 * internal details never leak. A chat platform's refusal arrives as a `DeliveryError` of a
 * neutral kind (each platform maps its own errors in adapters/<platform>/errors.ts).
 */
export function describeError(error: unknown, locale: CommandContext["locale"], platform = "console"): string {
  if (error instanceof UserFacingError)
    return t(locale, error.id, { ...platformWords(platform, locale), ...error.params });
  if (error instanceof ModelError) return t(locale, `model.${error.kind}`);
  if (error instanceof DeliveryError) return describeDelivery(error, locale);
  if (isDatabaseUnavailable(error)) return t(locale, "error.database");
  return t(locale, "error.internal");
}

function describeDelivery(error: DeliveryError, locale: CommandContext["locale"]): string {
  switch (error.kind) {
    case "forbidden":
      return error.permission === undefined
        ? t(locale, "delivery.forbidden")
        : t(locale, "delivery.missingPermission", { permission: error.permission });
    case "gone":
      return t(locale, "delivery.gone");
    case "rate-limited":
      return t(locale, "delivery.rateLimited");
    case "transient":
      return t(locale, "delivery.transient");
    case "other":
      return t(locale, "error.internal");
  }
}

/**
 * Whether an error needs no log line where it is caught: it is meant for the reader, or it
 * was logged where it arose (a surface logs each delivery error it maps, once).
 */
export function isReported(error: unknown): boolean {
  return error instanceof UserFacingError || error instanceof ModelError || error instanceof DeliveryError;
}

export async function dispatch(
  command: Command<CommandSpec>,
  raw: Record<string, unknown>,
  ctx: CommandContext,
  log: (message: string) => void = () => {},
): Promise<CommandOutcome> {
  try {
    return await command.run(ctx, validateArgs(command.spec, raw));
  } catch (error) {
    if (!isReported(error)) {
      log(
        `command /${command.spec.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
    const text = describeError(error, ctx.locale, ctx.conversation.platform);
    await (ctx.replyPrivately ? ctx.replyPrivately(text) : ctx.surface.notice(text));
    return { kind: "failed" };
  }
}
