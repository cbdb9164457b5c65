import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

function validate(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", "src/training/cli/validate.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const good = JSON.stringify({
  messages: [
    { role: "user", content: "Roll for me." },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c1", type: "function", function: { name: "roll_dice", arguments: '{"sides":6}' } }],
    },
    { role: "tool", tool_call_id: "c1", content: "4" },
    { role: "assistant", content: "You rolled a four." },
  ],
  tools: [{ type: "function", function: { name: "roll_dice", parameters: { type: "object" } } }],
});
const badArguments = good.replace('{\\"sides\\":6}', "{sides");
const preference = JSON.stringify({
  input: { messages: [{ role: "user", content: "Open the door." }] },
  preferred_output: [{ role: "assistant", content: "It creaks open onto a garden." }],
  non_preferred_output: [{ role: "assistant", content: "Ok." }],
});

let dir: string;
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "inkloom-validate-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("train:validate", () => {
  it("exits 0 and prints the report for a valid file", () => {
    const path = file("good.jsonl", `${good}\n${good}\n`);
    const { code, stdout } = validate(path);
    expect(code).toBe(0);
    expect(stdout).toContain(`${path}: chat, 2 line(s), 2 valid, 0 invalid`);
    expect(stdout).toMatch(/tokens \(estimate, characters \/ 4\): p50 \d+, p90 \d+, max \d+/);
  });

  it("detects a preference file, and honours --kind", () => {
    const path = file("prefs.jsonl", `${preference}\n`);
    const auto = validate(path);
    expect(auto.code).toBe(0);
    expect(auto.stdout).toContain(`${path}: preference, 1 line(s), 1 valid`);
    const forced = validate("--kind", "chat", path);
    expect(forced.code).toBe(1);
    expect(forced.stdout).toContain("line 1: input is not an allowed key at the top level");
  });

  it("exits 1 and names the bad lines", () => {
    const path = file("bad.jsonl", `${good}\n\n${good}\n${badArguments}\n`);
    const { code, stdout } = validate(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`${path}: chat, 4 line(s), 2 valid, 2 invalid`);
    expect(stdout).toContain("line 2: the line is blank");
    expect(stdout).toContain("line 4: messages[1].tool_calls[0].function.arguments is not valid JSON");
  });

  it("reports every file given, and fails when one fails", () => {
    const ok = file("one.jsonl", `${good}\n`);
    const bad = file("two.jsonl", `${good}\n${badArguments}\n`);
    const { code, stdout } = validate(ok, bad);
    expect(code).toBe(1);
    expect(stdout).toContain(`${ok}: chat, 1 line(s), 1 valid, 0 invalid`);
    expect(stdout).toContain(`${bad}: chat, 2 line(s), 1 valid, 1 invalid`);
    expect(stdout).toContain("line 2: messages[1].tool_calls[0].function.arguments is not valid JSON");
  });

  it("exits 2 on usage errors", () => {
    const none = validate();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no file given");
    expect(none.stderr).toContain("usage:");

    const missing = validate(join(dir, "nope.jsonl"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read ${join(dir, "nope.jsonl")}: no such file`);

    const unreadable = validate(dir);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain(`cannot read ${dir}`);

    const kind = validate("--kind", "sft", file("x.jsonl", `${good}\n`));
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain("--kind must be chat, preference or auto");
  });
});
