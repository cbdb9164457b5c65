import { describe, expect, it } from "vitest";
import { describeError, validateArgs } from "../../commands/dispatch.ts";
import { findCommand } from "../../commands/index.ts";
import { parseChange } from "../../commands/settings.ts";
import { answerGenreQuestion, parseGenre } from "../../commands/start.ts";
import { argsFromText } from "../../commands/text-args.ts";
import { ModelError } from "../../src/llm/types.ts";
import { UserFacingError } from "../../src/story/errors.ts";

function spec(name: string) {
  const command = findCommand(name);
  if (command === undefined) throw new Error(`no command ${name}`);
  return command.spec;
}

function errorId(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof UserFacingError ? error.id : "other";
  }
  return undefined;
}

describe("command arguments", () => {
  it("parses integers from text and refuses words, negatives and huge numbers", () => {
    expect(validateArgs(spec("branch"), { chapter: "3" })).toEqual({ chapter: 3 });
    expect(errorId(() => validateArgs(spec("branch"), { chapter: "two" }))).toBe("error.badInteger");
    expect(errorId(() => validateArgs(spec("branch"), { chapter: "0" }))).toBe("error.badInteger");
    expect(errorId(() => validateArgs(spec("branch"), { chapter: "99999999999" }))).toBe("error.badInteger");
  });

  it("a missing required option names the option and shows an example", () => {
    try {
      validateArgs(spec("branch"), {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UserFacingError);
      expect(describeError(error, "en")).toBe("/branch needs chapter. Example: /branch 2");
    }
  });

  it("refuses strings over the option's limit", () => {
    expect(errorId(() => validateArgs(spec("rewrite"), { direction: "x".repeat(301) }))).toBe("error.argumentTooLong");
    expect(validateArgs(spec("rewrite"), { direction: "  happier  " })).toEqual({ direction: "happier" });
    expect(validateArgs(spec("rewrite"), {})).toEqual({ direction: undefined });
  });
});

describe("describeError", () => {
  it("shows model failures in the reader's language and hides internal errors", () => {
    expect(describeError(new ModelError("timeout", "x"), "en")).toBe("the story model took too long to answer.");
    expect(describeError(new ModelError("timeout", "x"), "zh")).toBe("故事模型响应超时。");
    expect(describeError(new Error("SQLITE_BUSY at /secret/path"), "en")).toBe(
      "Something went wrong on our side. Please try again.",
    );
  });
});

describe("parseGenre", () => {
  it("accepts a number, an English or Chinese name, or nothing for none", () => {
    expect(parseGenre("5")).toBe("horror");
    expect(parseGenre("Fan Fiction")).toBe("fan-fiction");
    expect(parseGenre("同人")).toBe("fan-fiction");
    expect(parseGenre("")).toBe("none");
    expect(parseGenre("8")).toBeUndefined();
    expect(parseGenre("banana")).toBeUndefined();
  });
});

describe("command registry", () => {
  it("has every command the terminal documents, with English and Chinese descriptions", () => {
    for (const name of ["start", "stories", "undo", "rewrite", "branch", "retry", "recap", "export", "help", "quit"]) {
      const s = spec(name);
      expect(s.description.en).not.toBe("");
      expect(s.description.zh).not.toBe("");
    }
    expect(findCommand("nope")).toBeUndefined();
  });

  it("splits typed /character text at a colon, else after the first word", () => {
    const character = spec("character");
    expect(argsFromText(character, "Mara Quill: long red hair, green cloak")).toEqual({
      name: "Mara Quill",
      appearance: "long red hair, green cloak",
    });
    expect(argsFromText(character, "Mara long red hair")).toEqual({ name: "Mara", appearance: "long red hair" });
    expect(argsFromText(character, "Mara")).toEqual({ name: "Mara" });
    expect(argsFromText(character, "")).toEqual({});
    // Other commands keep the whole text in their first option.
    expect(argsFromText(spec("illustrate"), "Mara: on the pier")).toEqual({ what: "Mara: on the pier" });
  });

  it("reads the illustration budgets from /settings text", () => {
    expect(parseChange("images-per-chapter 2")).toEqual({ imagesPerChapter: 2 });
    expect(parseChange("images-per-day 0")).toEqual({ imagesPerDay: 0 });
    expect(errorId(() => parseChange("images-per-day many"))).toBe("error.badSetting");
  });
});

describe("the /start genre question, typed", () => {
  it("a genre name or number picks it, nothing picks none, a bad number is refused, anything else is the scenario", () => {
    expect(answerGenreQuestion("horror")).toEqual({ genre: "horror" });
    expect(answerGenreQuestion(" 2 ")).toEqual({ genre: "angst" });
    expect(answerGenreQuestion("")).toEqual({ genre: "none" });
    expect(answerGenreQuestion("9")).toEqual({ badNumber: "9", max: 7 });
    expect(answerGenreQuestion("a ghost detective in Shanghai")).toEqual({
      genre: "none",
      scenario: "a ghost detective in Shanghai",
    });
  });
});

describe("errors in the platform's words", () => {
  it("Discord names /config and Manage Server; Telegram and the terminal /settings and a chat admin", () => {
    const refused = new UserFacingError("error.notModerator");
    const bad = new UserFacingError("error.badSetting");
    expect(describeError(refused, "en", "discord")).toBe("Only a moderator (Manage Server) can change the settings.");
    expect(describeError(bad, "en", "discord")).toContain("Type /config show to see");
    expect(describeError(refused, "en", "telegram")).toBe("Only a chat admin can change the settings.");
    expect(describeError(bad, "zh", "telegram")).toContain("输入 /settings 查看");
  });
});
