import { describe, expect, it } from "vitest";
import {
  type ChatExample,
  estimateExampleTokens,
  MAX_REPORTED_ERRORS,
  type PreferenceExample,
  type ToolDefinition,
  tokenStats,
  validateChatExample,
  validateJsonl,
  validatePreferenceExample,
} from "../../src/training/jsonl-format.ts";

const TOOLS: ToolDefinition[] = [
  {
    type: "function",
    function: {
      name: "roll_dice",
      description: "Roll dice for a reader's choice.",
      parameters: { type: "object", properties: { sides: { type: "integer" } } },
    },
  },
  { type: "function", function: { name: "remember", parameters: { type: "object" } } },
];

/** A valid chat example: tools, two parallel tool calls answered by tool messages, a final answer. */
function chat(): ChatExample {
  return {
    messages: [
      { role: "system", content: "You narrate a web novel." },
      { role: "user", content: "I open the door and roll for luck." },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "roll_dice", arguments: '{"sides":20}' } },
          { id: "call_2", type: "function", function: { name: "remember", arguments: '{"fact":"door open"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "17" },
      { role: "tool", tool_call_id: "call_2", content: "ok" },
      { role: "assistant", content: "The door swings open onto moonlight." },
    ],
    tools: TOOLS,
    parallel_tool_calls: true,
  };
}

/** A mutable deep copy, to break one rule at a time. */
// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary (invalid) shapes
function broken(): any {
  return structuredClone(chat());
}

function preference(): PreferenceExample {
  return {
    input: {
      messages: [
        { role: "system", content: "You narrate a web novel." },
        { role: "user", content: "What is behind the door?" },
      ],
    },
    preferred_output: [{ role: "assistant", content: "A staircase, spiralling down into warm light." }],
    non_preferred_output: [{ role: "assistant", content: "Stuff." }],
  };
}

const line = (value: unknown) => JSON.stringify(value);

describe("validateChatExample", () => {
  it("accepts a chat example with tools, tool calls and tool results", () => {
    expect(validateChatExample(chat())).toEqual([]);
  });

  it("accepts a final assistant message that ends on an unanswered tool call", () => {
    const example = broken();
    example.messages = example.messages.slice(0, 3);
    expect(validateChatExample(example)).toEqual([]);
  });

  it("accepts metadata, developer messages and weight 0 on earlier assistant turns", () => {
    const example: ChatExample = {
      messages: [
        { role: "developer", content: "Stay in character." },
        { role: "user", content: "Hello" },
        { role: "assistant", content: "Meh.", weight: 0 },
        { role: "user", content: "Hello again" },
        { role: "assistant", content: "Welcome, traveller.", weight: 1 },
      ],
      metadata: { story: "s1" },
    };
    expect(validateChatExample(example)).toEqual([]);
  });

  it("rejects a value that is not an object", () => {
    expect(validateChatExample([1, 2])).toEqual(["the example must be a JSON object (found an array)"]);
  });

  it("rejects missing or empty messages", () => {
    expect(validateChatExample({})).toEqual(["messages must be a non-empty array"]);
    expect(validateChatExample({ messages: [] })).toEqual(["messages must be a non-empty array"]);
  });

  it("rejects an unknown role", () => {
    const example = broken();
    example.messages[1].role = "narrator";
    expect(validateChatExample(example)).toContain(
      'messages[1].role "narrator" is not one of system, developer, user, assistant, tool',
    );
  });

  it("rejects empty or non-string content on system/user messages", () => {
    const example = broken();
    example.messages[0].content = "";
    example.messages[1].content = [{ type: "text", text: "hi" }];
    const problems = validateChatExample(example);
    expect(problems).toContain("messages[0].content must be a non-empty string");
    expect(problems).toContain("messages[1].content must be a non-empty string");
  });

  it("rejects a tool answer without a matching call", () => {
    const example = broken();
    example.messages.splice(2, 0, { role: "tool", tool_call_id: "call_9", content: "?" });
    expect(validateChatExample(example)).toContain(
      'messages[2].tool_call_id "call_9" does not match an earlier assistant tool call',
    );
  });

  it("rejects a tool call answered twice", () => {
    const example = broken();
    example.messages.splice(4, 0, { role: "tool", tool_call_id: "call_1", content: "again" });
    expect(validateChatExample(example)).toContain(
      'messages[4].tool_call_id "call_1" answers a tool call that was already answered',
    );
  });

  it("rejects a tool call left unanswered before the next user turn", () => {
    const example = broken();
    example.messages.splice(4, 1, { role: "user", content: "and then?" });
    expect(validateChatExample(example)).toEqual([
      'messages[2].tool_calls[1] (id "call_2") is not answered by a tool message before messages[4]',
    ]);
  });

  it("rejects a tool call left unanswered before the next assistant turn", () => {
    const example = broken();
    example.messages.splice(4, 1);
    expect(validateChatExample(example)).toEqual([
      'messages[2].tool_calls[1] (id "call_2") is not answered by a tool message before messages[4]',
    ]);
  });

  it("rejects an example whose last message is not an assistant message", () => {
    const example = broken();
    example.messages.push({ role: "user", content: "More!" });
    expect(validateChatExample(example)).toEqual([
      "messages[6] is a user message but the last message must be an assistant message",
    ]);
  });

  it("rejects an example ending on a tool result, naming the unanswered call too", () => {
    const example = broken();
    example.messages = example.messages.slice(0, 4);
    expect(validateChatExample(example)).toEqual([
      "messages[3] is a tool message but the last message must be an assistant message",
      'messages[2].tool_calls[1] (id "call_2") is never answered by a tool message',
    ]);
  });

  it("rejects tool-call arguments that are not JSON", () => {
    const example = broken();
    example.messages[2].tool_calls[0].function.arguments = "{sides: 20";
    expect(validateChatExample(example)).toEqual(["messages[2].tool_calls[0].function.arguments is not valid JSON"]);
  });

  it("rejects tool-call arguments that are JSON but not an object", () => {
    const example = broken();
    example.messages[2].tool_calls[0].function.arguments = "20";
    expect(validateChatExample(example)).toEqual([
      "messages[2].tool_calls[0].function.arguments must encode a JSON object",
    ]);
  });

  it("rejects a tool call whose name is not in tools", () => {
    const example = broken();
    example.messages[2].tool_calls[1].function.name = "forget";
    expect(validateChatExample(example)).toEqual([
      'messages[2].tool_calls[1].function.name "forget" is not defined in tools',
    ]);
  });

  it("accepts any tool name when the example declares no tools", () => {
    const example = broken();
    delete example.tools;
    expect(validateChatExample(example)).toEqual([]);
  });

  it("rejects malformed tool calls", () => {
    const example = broken();
    example.messages[2].tool_calls[0] = { id: "", type: "code", function: { name: "roll_dice" } };
    example.messages[2].tool_calls[1].id = "call_1";
    expect(validateChatExample(example)).toEqual(
      expect.arrayContaining([
        "messages[2].tool_calls[0].id must be a non-empty string",
        'messages[2].tool_calls[0].type must be "function" (found "code")',
        "messages[2].tool_calls[0].function.arguments must be a string holding JSON",
      ]),
    );
    const duplicate = broken();
    duplicate.messages[2].tool_calls[1].id = "call_1";
    expect(validateChatExample(duplicate)).toContain(
      'messages[2].tool_calls[1].id "call_1" is already used by an earlier tool call',
    );
  });

  it("rejects weight 2, and weight on a non-assistant message", () => {
    const example = broken();
    example.messages[5].weight = 2;
    example.messages[1].weight = 1;
    expect(validateChatExample(example)).toEqual([
      "messages[1].weight is only allowed on assistant messages",
      "messages[5].weight must be 0 or 1 (found 2)",
    ]);
  });

  it("rejects an example with no assistant message to train on", () => {
    const example = broken();
    example.messages[2].weight = 0;
    example.messages[5].weight = 0;
    expect(validateChatExample(example)).toEqual([
      "messages has no assistant message to train on (every assistant message has weight 0)",
    ]);
  });

  it("rejects an assistant message with neither content nor tool calls", () => {
    const example = broken();
    example.messages[5] = { role: "assistant", content: null };
    expect(validateChatExample(example)).toEqual(["messages[5] has neither content nor tool_calls"]);
    example.messages[5] = { role: "assistant", content: "", tool_calls: [] };
    expect(validateChatExample(example)).toEqual([
      "messages[5].tool_calls must not be empty (leave it out instead)",
      "messages[5] has neither content nor tool_calls",
    ]);
  });

  it("rejects a non-string tool result", () => {
    const example = broken();
    example.messages[3].content = 17;
    expect(validateChatExample(example)).toEqual(["messages[3].content must be a string"]);
  });

  it("rejects unknown keys at the top level and in messages", () => {
    const example = broken();
    example.prompt = "x";
    example.messages[2].tool_call = [];
    expect(validateChatExample(example)).toEqual([
      "prompt is not an allowed key at the top level (allowed: messages, tools, parallel_tool_calls, metadata)",
      "messages[2].tool_call is not an allowed key on an assistant message (allowed: role, content, tool_calls, weight, name)",
    ]);
  });

  it("checks tool definitions: shape and unique names", () => {
    const example = broken();
    example.tools.push({ type: "function", function: { name: "roll_dice" } });
    example.tools.push({ type: "retrieval", function: { name: "bad name", parameters: [] } });
    expect(validateChatExample(example)).toEqual([
      'tools[2].function.name "roll_dice" is already defined by tools[0]',
      'tools[3].type must be "function" (found "retrieval")',
      'tools[3].function.name "bad name" must be 1-64 letters, digits, "_" or "-"',
      "tools[3].function.parameters must be a JSON object",
    ]);
    expect(validateChatExample({ ...chat(), tools: {} })).toContain("tools must be an array");
  });

  it("rejects several calls in one message when parallel_tool_calls is false", () => {
    const example = broken();
    example.parallel_tool_calls = false;
    expect(validateChatExample(example)).toEqual([
      "messages[2].tool_calls has 2 calls but parallel_tool_calls is false",
    ]);
    example.parallel_tool_calls = "no";
    expect(validateChatExample(example)).toEqual(["parallel_tool_calls must be a boolean"]);
  });
});

describe("validatePreferenceExample", () => {
  it("accepts a valid preference example", () => {
    expect(validatePreferenceExample(preference())).toEqual([]);
  });

  it("accepts an input ending on a tool result, and tool calls in the outputs", () => {
    const example: PreferenceExample = {
      input: {
        messages: [
          { role: "user", content: "Roll for me." },
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "c1", type: "function", function: { name: "roll_dice", arguments: "{}" } }],
          },
          { role: "tool", tool_call_id: "c1", content: "3" },
        ],
        tools: TOOLS,
      },
      preferred_output: [
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c2", type: "function", function: { name: "remember", arguments: '{"roll":3}' } }],
        },
      ],
      non_preferred_output: [{ role: "assistant", content: "You rolled a 3." }],
    };
    expect(validatePreferenceExample(example)).toEqual([]);
  });

  it("rejects an input that ends with an assistant message", () => {
    const example = preference();
    example.input.messages.push({ role: "assistant", content: "Hmm." });
    expect(validatePreferenceExample(example)).toEqual([
      "input.messages[2] is an assistant message but the input must end with a user or tool message",
    ]);
  });

  it("checks input messages like chat messages", () => {
    // biome-ignore lint/suspicious/noExplicitAny: invalid shape on purpose
    const example: any = preference();
    example.input.messages[1].role = "reader";
    example.input.messages.push({ role: "tool", tool_call_id: "x", content: "" });
    expect(validatePreferenceExample(example)).toEqual([
      'input.messages[1].role "reader" is not one of system, developer, user, assistant, tool',
      'input.messages[2].tool_call_id "x" does not match an earlier assistant tool call',
    ]);
  });

  it("rejects outputs that are not exactly one assistant message", () => {
    // biome-ignore lint/suspicious/noExplicitAny: invalid shape on purpose
    const example: any = preference();
    example.preferred_output.push({ role: "assistant", content: "Also this." });
    example.non_preferred_output = [{ role: "user", content: "Stuff." }];
    expect(validatePreferenceExample(example)).toEqual([
      "preferred_output must be an array of exactly one assistant message",
      'non_preferred_output[0].role must be "assistant" (found "user")',
    ]);
  });

  it("rejects an output without content", () => {
    // biome-ignore lint/suspicious/noExplicitAny: invalid shape on purpose
    const example: any = preference();
    example.preferred_output[0].content = 42;
    example.non_preferred_output[0].content = null;
    expect(validatePreferenceExample(example)).toEqual([
      "preferred_output[0].content must be a string or null",
      "non_preferred_output[0] has neither content nor tool_calls",
    ]);
  });

  it("rejects identical preferred and non-preferred outputs, whatever their key order", () => {
    const example = preference();
    example.non_preferred_output = [{ content: "A staircase, spiralling down into warm light.", role: "assistant" }];
    expect(validatePreferenceExample(example)).toEqual(["preferred_output and non_preferred_output are identical"]);
  });

  it("rejects missing parts and unknown keys", () => {
    expect(validatePreferenceExample({ input: { messages: [{ role: "user", content: "hi" }] }, chosen: [] })).toEqual([
      "chosen is not an allowed key at the top level (allowed: input, preferred_output, non_preferred_output, metadata)",
      "preferred_output must be an array of exactly one assistant message",
      "non_preferred_output must be an array of exactly one assistant message",
    ]);
    expect(validatePreferenceExample({ ...preference(), input: undefined })).toEqual(["input is missing"]);
  });
});

describe("validateJsonl", () => {
  it("reports a valid chat file, with or without a trailing newline", () => {
    const text = `${line(chat())}\n${line(chat())}\n`;
    for (const t of [text, text.trimEnd(), text.replaceAll("\n", "\r\n")]) {
      const report = validateJsonl(t);
      expect(report).toMatchObject({ kind: "chat", lines: 2, valid: 2, errors: [], errorCount: 0 });
    }
  });

  it("prefixes problems with their line and names the JSON path", () => {
    const bad = broken();
    bad.messages[2].tool_calls[0].function.arguments = "{";
    const report = validateJsonl([line(chat()), line(chat()), line(bad)].join("\n"));
    expect(report.valid).toBe(2);
    expect(report.errors).toEqual([
      { line: 3, message: "line 3: messages[2].tool_calls[0].function.arguments is not valid JSON" },
    ]);
  });

  it("rejects a blank line in the middle and a line that is not JSON", () => {
    const report = validateJsonl(`${line(chat())}\n\n{"messages": [\n${line(chat())}\n\n`);
    expect(report.lines).toBe(4);
    expect(report.valid).toBe(2);
    expect(report.errors.map((e) => e.line)).toEqual([2, 3]);
    expect(report.errors[0]?.message).toBe(
      "line 2: the line is blank (blank lines are only allowed at the end of the file)",
    );
    expect(report.errors[1]?.message).toMatch(/^line 3: the line is not valid JSON \(/);
  });

  it("rejects an unknown key on its line", () => {
    const report = validateJsonl(`${line(chat())}\n${line({ ...chat(), id: 7 })}\n`);
    expect(report.errors).toEqual([
      {
        line: 2,
        message:
          "line 2: id is not an allowed key at the top level (allowed: messages, tools, parallel_tool_calls, metadata)",
      },
    ]);
  });

  it("reports an empty file as an error", () => {
    const report = validateJsonl("\n");
    expect(report).toMatchObject({ lines: 0, valid: 0, errorCount: 1 });
    expect(report.errors[0]?.message).toBe("line 1: the file has no examples");
  });

  it("detects the kind from the first non-empty line", () => {
    expect(validateJsonl(`${line(preference())}\n`)).toMatchObject({ kind: "preference", valid: 1, errorCount: 0 });
    expect(validateJsonl(`${line(chat())}\n`).kind).toBe("chat");
    // The whole file takes the first line's kind: a chat line in a preference file is an error.
    const mixed = validateJsonl(`${line(preference())}\n${line(chat())}\n`);
    expect(mixed).toMatchObject({ kind: "preference", valid: 1 });
    expect(mixed.errors[0]?.message).toMatch(/^line 2: messages is not an allowed key at the top level/);
  });

  it("checks against the requested kind when one is given", () => {
    const report = validateJsonl(`${line(preference())}\n`, "chat");
    expect(report.kind).toBe("chat");
    expect(report.valid).toBe(0);
    expect(report.errors.map((e) => e.message)).toContain(
      "line 1: input is not an allowed key at the top level (allowed: messages, tools, parallel_tool_calls, metadata)",
    );
    expect(validateJsonl(`${line(chat())}\n`, "preference").errors.map((e) => e.message)).toContain(
      "line 1: input is missing",
    );
  });

  it("reports the first 50 errors but counts them all", () => {
    const text = Array.from({ length: 60 }, () => "not json").join("\n");
    const report = validateJsonl(text);
    expect(report.errorCount).toBe(60);
    expect(report.errors).toHaveLength(MAX_REPORTED_ERRORS);
    expect(report.errors[49]?.line).toBe(50);
  });

  it("estimates tokens as characters / 4 of contents and tool-call arguments, rounded up", () => {
    // contents: "You narrate a web novel." (24) + "I open the door and roll for luck." (34) + "17" + "ok" (4)
    // + "The door swings open onto moonlight." (36); arguments: '{"sides":20}' (12) + '{"fact":"door open"}' (20)
    expect(estimateExampleTokens(chat())).toBe(Math.ceil((24 + 34 + 4 + 36 + 12 + 20) / 4));
    expect(estimateExampleTokens({ messages: [{ role: "user", content: "abcde" }] })).toBe(2);
    // Code points, not UTF-16 units: four emoji are four characters.
    expect(estimateExampleTokens({ messages: [{ role: "user", content: "🐉🐉🐉🐉" }] })).toBe(1);
    // Preference: the input and both outputs.
    expect(estimateExampleTokens(preference())).toBe(Math.ceil((24 + 24 + 45 + 6) / 4));
  });

  it("gives min, p50, p90 and max of the per-example estimates", () => {
    const sized = (chars: number) => line({ messages: [{ role: "assistant", content: "x".repeat(chars) }] });
    const text = Array.from({ length: 10 }, (_, i) => sized((i + 1) * 40)).join("\n");
    expect(validateJsonl(text).tokens).toEqual({ min: 10, p50: 50, p90: 90, max: 100 });
    expect(tokenStats([])).toEqual({ min: 0, p50: 0, p90: 0, max: 0 });
    expect(tokenStats([7])).toEqual({ min: 7, p50: 7, p90: 7, max: 7 });
  });
});
