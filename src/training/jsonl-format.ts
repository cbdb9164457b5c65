/**
 * Format checks for fine-tuning data written as JSON Lines (one example per
 * line), in the two shapes OpenAI accepts:
 *
 * - chat (supervised) examples: `{ messages, tools?, parallel_tool_calls?, metadata? }`
 * - preference (DPO) examples: `{ input: { messages, tools?, parallel_tool_calls? },
 *   preferred_output: [assistant], non_preferred_output: [assistant], metadata? }`
 *
 * Pure: no I/O. `validateChatExample` / `validatePreferenceExample` check one
 * parsed example and return its problems (empty = valid), each naming the JSON
 * path, e.g. `messages[2].tool_calls[0].function.arguments is not valid JSON`.
 * `validateJsonl` checks a whole file's text and prefixes each problem with its
 * line: `line 3: messages[2]...`.
 *
 * The checks are deliberately a little stricter than the upstream service
 * (unknown keys are rejected at every level), so typos such as `tool_call`
 * for `tool_calls` are caught before an upload rather than silently ignored.
 */

export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool";

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface InstructionMessage {
  role: "system" | "developer" | "user";
  content: string;
  name?: string;
}

export interface AssistantMessage {
  role: "assistant";
  content?: string | null;
  tool_calls?: ToolCall[];
  /** 0 = shown as context but not trained on; 1 (or absent) = trained on. Chat examples only. */
  weight?: 0 | 1;
  name?: string;
}

export interface ToolMessage {
  role: "tool";
  tool_call_id: string;
  content: string;
}

export type ChatMessage = InstructionMessage | AssistantMessage | ToolMessage;

export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

export interface ChatExample {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  parallel_tool_calls?: boolean;
  metadata?: Record<string, unknown>;
}

export interface PreferenceExample {
  input: { messages: ChatMessage[]; tools?: ToolDefinition[]; parallel_tool_calls?: boolean };
  preferred_output: [AssistantMessage];
  non_preferred_output: [AssistantMessage];
  metadata?: Record<string, unknown>;
}

export type JsonlKind = "chat" | "preference";

export interface TokenStats {
  min: number;
  p50: number;
  p90: number;
  max: number;
}

export interface JsonlError {
  line: number;
  /** Starts with `line N: ` and names the JSON path. */
  message: string;
}

export interface JsonlReport {
  kind: JsonlKind;
  /** Lines holding an example (or that should have): everything but trailing blank lines. */
  lines: number;
  /** Lines whose example has no problem. */
  valid: number;
  /** The first {@link MAX_REPORTED_ERRORS} problems, in file order. */
  errors: JsonlError[];
  /** Every problem found, including those left out of `errors`. */
  errorCount: number;
  /** Estimated tokens per example (see {@link estimateExampleTokens}) over every line that parsed as JSON. */
  tokens: TokenStats;
}

export const MAX_REPORTED_ERRORS = 50;

const ROLES: readonly ChatRole[] = ["system", "developer", "user", "assistant", "tool"];
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "object") return "an object";
  return String(value);
}

function article(role: ChatRole): string {
  return role === "assistant" ? "an assistant" : `a ${role}`;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Reports keys not in `allowed`; keys in `reportedElsewhere` are skipped (they get a clearer message). */
function checkKeys(
  value: Json,
  path: string,
  allowed: readonly string[],
  problems: string[],
  where = "here",
  reportedElsewhere: readonly string[] = [],
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key) && !reportedElsewhere.includes(key)) {
      problems.push(`${join(path, key)} is not an allowed key ${where} (allowed: ${allowed.join(", ")})`);
    }
  }
}

interface ConversationContext {
  /** Names declared in `tools`, or undefined when the example declares no tools. */
  tools: Set<string> | undefined;
  parallelToolCalls: boolean | undefined;
  /** Tool call ids seen so far in this example, to catch duplicates. */
  seenCallIds: Set<string>;
}

interface CheckedMessage {
  role: ChatRole | undefined;
  /** Assistant tool calls with a usable id: [id, path of the call]. */
  calls: [string, string][];
  weight: unknown;
}

// ---------------------------------------------------------------------------
// tools

function checkTools(value: unknown, path: string, problems: string[]): Set<string> | undefined {
  if (value === undefined) return undefined;
  const names = new Set<string>();
  if (!Array.isArray(value)) {
    problems.push(`${path} must be an array`);
    return names;
  }
  const firstIndex = new Map<string, number>();
  value.forEach((tool: unknown, i) => {
    const p = `${path}[${i}]`;
    if (!isObject(tool)) {
      problems.push(`${p} must be an object`);
      return;
    }
    checkKeys(tool, p, ["type", "function"], problems);
    if (tool.type !== "function") problems.push(`${p}.type must be "function" (found ${describe(tool.type)})`);
    const fn = tool.function;
    if (!isObject(fn)) {
      problems.push(`${p}.function must be an object`);
      return;
    }
    const fp = `${p}.function`;
    checkKeys(fn, fp, ["name", "description", "parameters", "strict"], problems);
    if (typeof fn.name !== "string" || fn.name === "") {
      problems.push(`${fp}.name must be a non-empty string`);
    } else {
      if (!TOOL_NAME.test(fn.name)) {
        problems.push(`${fp}.name ${describe(fn.name)} must be 1-64 letters, digits, "_" or "-"`);
      }
      const earlier = firstIndex.get(fn.name);
      if (earlier !== undefined) {
        problems.push(`${fp}.name ${describe(fn.name)} is already defined by ${path}[${earlier}]`);
      } else {
        firstIndex.set(fn.name, i);
        names.add(fn.name);
      }
    }
    if (fn.description !== undefined && typeof fn.description !== "string") {
      problems.push(`${fp}.description must be a string`);
    }
    if (fn.parameters !== undefined && !isObject(fn.parameters)) {
      problems.push(`${fp}.parameters must be a JSON object`);
    }
    if (fn.strict !== undefined && typeof fn.strict !== "boolean") problems.push(`${fp}.strict must be a boolean`);
  });
  return names;
}

// ---------------------------------------------------------------------------
// messages

function checkToolCall(call: unknown, p: string, ctx: ConversationContext, problems: string[]): string | undefined {
  if (!isObject(call)) {
    problems.push(`${p} must be an object`);
    return undefined;
  }
  checkKeys(call, p, ["id", "type", "function"], problems);
  let id: string | undefined;
  if (typeof call.id !== "string" || call.id === "") {
    problems.push(`${p}.id must be a non-empty string`);
  } else if (ctx.seenCallIds.has(call.id)) {
    problems.push(`${p}.id ${describe(call.id)} is already used by an earlier tool call`);
  } else {
    ctx.seenCallIds.add(call.id);
    id = call.id;
  }
  if (call.type !== "function") problems.push(`${p}.type must be "function" (found ${describe(call.type)})`);
  const fn = call.function;
  if (!isObject(fn)) {
    problems.push(`${p}.function must be an object`);
    return id;
  }
  const fp = `${p}.function`;
  checkKeys(fn, fp, ["name", "arguments"], problems);
  if (typeof fn.name !== "string" || fn.name === "") {
    problems.push(`${fp}.name must be a non-empty string`);
  } else if (ctx.tools !== undefined && !ctx.tools.has(fn.name)) {
    problems.push(`${fp}.name ${describe(fn.name)} is not defined in tools`);
  }
  if (typeof fn.arguments !== "string") {
    problems.push(`${fp}.arguments must be a string holding JSON`);
  } else {
    let parsed: unknown;
    let ok = true;
    try {
      parsed = JSON.parse(fn.arguments);
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`${fp}.arguments is not valid JSON`);
    else if (!isObject(parsed)) problems.push(`${fp}.arguments must encode a JSON object`);
  }
  return id;
}

function checkMessage(message: unknown, p: string, ctx: ConversationContext, problems: string[]): CheckedMessage {
  const result: CheckedMessage = { role: undefined, calls: [], weight: undefined };
  if (!isObject(message)) {
    problems.push(`${p} must be an object`);
    return result;
  }
  const role = message.role;
  if (role === undefined) {
    problems.push(`${p}.role is missing`);
    return result;
  }
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
    problems.push(`${p}.role ${describe(role)} is not one of ${ROLES.join(", ")}`);
    return result;
  }
  result.role = role as ChatRole;
  if (role !== "assistant" && "weight" in message) {
    problems.push(`${p}.weight is only allowed on assistant messages`);
  }
  if (message.name !== undefined && typeof message.name !== "string") problems.push(`${p}.name must be a string`);

  if (role === "system" || role === "developer" || role === "user") {
    checkKeys(message, p, ["role", "content", "name"], problems, `on a ${role} message`, ["weight"]);
    if (typeof message.content !== "string" || message.content === "") {
      problems.push(`${p}.content must be a non-empty string`);
    }
    return result;
  }

  if (role === "tool") {
    checkKeys(message, p, ["role", "tool_call_id", "content"], problems, "on a tool message", ["weight"]);
    if (typeof message.content !== "string") problems.push(`${p}.content must be a string`);
    return result;
  }

  // assistant
  checkKeys(message, p, ["role", "content", "tool_calls", "weight", "name"], problems, "on an assistant message");
  const content = message.content;
  const badContent = content !== undefined && content !== null && typeof content !== "string";
  if (badContent) problems.push(`${p}.content must be a string or null`);
  let callCount = 0;
  if (message.tool_calls !== undefined) {
    if (!Array.isArray(message.tool_calls)) {
      problems.push(`${p}.tool_calls must be an array`);
    } else if (message.tool_calls.length === 0) {
      problems.push(`${p}.tool_calls must not be empty (leave it out instead)`);
    } else {
      callCount = message.tool_calls.length;
      message.tool_calls.forEach((call: unknown, j) => {
        const cp = `${p}.tool_calls[${j}]`;
        const id = checkToolCall(call, cp, ctx, problems);
        if (id !== undefined) result.calls.push([id, cp]);
      });
      if (ctx.parallelToolCalls === false && callCount > 1) {
        problems.push(`${p}.tool_calls has ${callCount} calls but parallel_tool_calls is false`);
      }
    }
  }
  const badToolCalls = message.tool_calls !== undefined && !Array.isArray(message.tool_calls);
  const hasContent = typeof content === "string" && content !== "";
  if (!hasContent && callCount === 0 && !badContent && !badToolCalls) {
    problems.push(`${p} has neither content nor tool_calls`);
  }
  if (message.weight !== undefined && message.weight !== 0 && message.weight !== 1) {
    problems.push(`${p}.weight must be 0 or 1 (found ${describe(message.weight)})`);
  }
  result.weight = message.weight;
  return result;
}

/**
 * Checks a conversation's messages in order: each message on its own, then the
 * pairing of tool calls with tool results, then how it ends.
 * `mode` "chat": must end with an assistant message (whose tool calls may stay
 * unanswered) and train on at least one assistant message.
 * `mode` "input": the prompt of a preference example; must end with a user or
 * tool message and leave no tool call unanswered.
 */
function checkConversation(
  messages: unknown,
  path: string,
  ctx: ConversationContext,
  mode: "chat" | "input",
  problems: string[],
): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    problems.push(`${path} must be a non-empty array`);
    return;
  }
  /** Unanswered tool calls: id -> path of the call. */
  const pending = new Map<string, string>();
  const answered = new Set<string>();
  let assistants = 0;
  let trained = 0;
  let lastRole: ChatRole | undefined;

  messages.forEach((message: unknown, i) => {
    const p = `${path}[${i}]`;
    const checked = checkMessage(message, p, ctx, problems);
    lastRole = checked.role;
    if (checked.role === "assistant" || checked.role === "user") {
      for (const [id, callPath] of pending) {
        problems.push(`${callPath} (id ${describe(id)}) is not answered by a tool message before ${p}`);
      }
      pending.clear();
    }
    if (checked.role === "assistant") {
      assistants++;
      if (checked.weight !== 0) trained++;
      for (const [id, callPath] of checked.calls) pending.set(id, callPath);
    }
    if (checked.role === "tool" && isObject(message)) {
      const id = message.tool_call_id;
      if (typeof id !== "string" || id === "") {
        problems.push(`${p}.tool_call_id must be a non-empty string`);
      } else if (pending.has(id)) {
        pending.delete(id);
        answered.add(id);
      } else if (answered.has(id)) {
        problems.push(`${p}.tool_call_id ${describe(id)} answers a tool call that was already answered`);
      } else {
        problems.push(`${p}.tool_call_id ${describe(id)} does not match an earlier assistant tool call`);
      }
    }
  });

  const lastPath = `${path}[${messages.length - 1}]`;
  if (mode === "chat") {
    if (lastRole !== undefined && lastRole !== "assistant") {
      problems.push(`${lastPath} is ${article(lastRole)} message but the last message must be an assistant message`);
    }
    // The final assistant message may end on tool calls that are trained on but never answered.
    // (Pending calls can only be its own: every assistant message settles the earlier ones.)
    if (lastRole === "assistant") pending.clear();
    if (assistants > 0 && trained === 0) {
      problems.push(`${path} has no assistant message to train on (every assistant message has weight 0)`);
    }
  } else if (lastRole !== undefined && lastRole !== "user" && lastRole !== "tool") {
    problems.push(`${lastPath} is ${article(lastRole)} message but the input must end with a user or tool message`);
  }
  for (const [id, callPath] of pending) {
    problems.push(`${callPath} (id ${describe(id)}) is never answered by a tool message`);
  }
}

function newContext(tools: Set<string> | undefined, parallel: unknown): ConversationContext {
  return {
    tools,
    parallelToolCalls: typeof parallel === "boolean" ? parallel : undefined,
    seenCallIds: new Set(),
  };
}

function checkParallel(value: unknown, path: string, problems: string[]): void {
  if (value !== undefined && typeof value !== "boolean") problems.push(`${path} must be a boolean`);
}

function checkMetadata(value: unknown, problems: string[]): void {
  if (value !== undefined && !isObject(value)) problems.push("metadata must be a JSON object");
}

// ---------------------------------------------------------------------------
// examples

/** Problems with one chat fine-tuning example (one parsed JSONL line); empty when valid. */
export function validateChatExample(value: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(value)) return [`the example must be a JSON object (found ${describe(value)})`];
  checkKeys(value, "", ["messages", "tools", "parallel_tool_calls", "metadata"], problems, "at the top level");
  const tools = checkTools(value.tools, "tools", problems);
  checkParallel(value.parallel_tool_calls, "parallel_tool_calls", problems);
  checkMetadata(value.metadata, problems);
  checkConversation(value.messages, "messages", newContext(tools, value.parallel_tool_calls), "chat", problems);
  return problems;
}

/** Problems with one preference (DPO) example (one parsed JSONL line); empty when valid. */
export function validatePreferenceExample(value: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(value)) return [`the example must be a JSON object (found ${describe(value)})`];
  checkKeys(value, "", ["input", "preferred_output", "non_preferred_output", "metadata"], problems, "at the top level");
  checkMetadata(value.metadata, problems);
  const input = value.input;
  let ctx = newContext(undefined, undefined);
  if (!isObject(input)) {
    problems.push(input === undefined ? "input is missing" : "input must be a JSON object");
  } else {
    checkKeys(input, "input", ["messages", "tools", "parallel_tool_calls"], problems);
    const tools = checkTools(input.tools, "input.tools", problems);
    checkParallel(input.parallel_tool_calls, "input.parallel_tool_calls", problems);
    ctx = newContext(tools, input.parallel_tool_calls);
    checkConversation(input.messages, "input.messages", ctx, "input", problems);
  }
  const outputs: unknown[] = [];
  for (const key of ["preferred_output", "non_preferred_output"] as const) {
    const output = value[key];
    if (!Array.isArray(output) || output.length !== 1) {
      problems.push(`${key} must be an array of exactly one assistant message`);
      continue;
    }
    const message: unknown = output[0];
    const p = `${key}[0]`;
    // Each output continues the input on its own, so tool call ids only need to be unique within it.
    const own: ConversationContext = { ...ctx, seenCallIds: new Set(ctx.seenCallIds) };
    if (isObject(message) && message.role !== "assistant") {
      problems.push(`${p}.role must be "assistant" (found ${describe(message.role)})`);
      continue;
    }
    checkMessage(message, p, own, problems);
    outputs.push(message);
  }
  if (outputs.length === 2 && canonicalJson(outputs[0]) === canonicalJson(outputs[1])) {
    problems.push("preferred_output and non_preferred_output are identical");
  }
  return problems;
}

/** JSON with object keys sorted, so that key order does not make two equal values differ. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

// ---------------------------------------------------------------------------
// token estimate

function messageChars(message: unknown): number {
  if (!isObject(message)) return 0;
  let chars = typeof message.content === "string" ? [...message.content].length : 0;
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls as unknown[]) {
      if (isObject(call) && isObject(call.function) && typeof call.function.arguments === "string") {
        chars += [...call.function.arguments].length;
      }
    }
  }
  return chars;
}

function messagesChars(messages: unknown): number {
  return Array.isArray(messages) ? (messages as unknown[]).reduce<number>((sum, m) => sum + messageChars(m), 0) : 0;
}

/**
 * A rough token count for one example: characters (Unicode code points) of
 * every message content and tool-call arguments string, divided by 4 and
 * rounded up. This is an estimate, not a tokenizer: it ignores role and
 * formatting overhead and tool definitions, and undercounts scripts such as
 * Chinese or Japanese where a token covers fewer characters. For a preference
 * example it counts the input and both outputs.
 */
export function estimateExampleTokens(value: unknown): number {
  if (!isObject(value)) return 0;
  let chars = messagesChars(value.messages);
  if (isObject(value.input)) chars += messagesChars(value.input.messages);
  chars += messagesChars(value.preferred_output) + messagesChars(value.non_preferred_output);
  return Math.ceil(chars / 4);
}

/** Nearest-rank percentile of an ascending list; 0 for an empty one. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] ?? 0;
}

export function tokenStats(counts: readonly number[]): TokenStats {
  const sorted = [...counts].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? 0,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    max: sorted[sorted.length - 1] ?? 0,
  };
}

// ---------------------------------------------------------------------------
// files

/** Which kind an example looks like: one with an `input` key is a preference example. */
export function detectKind(value: unknown): JsonlKind {
  return isObject(value) && "input" in value ? "preference" : "chat";
}

function tryParse(line: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(line) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Checks the text of a JSONL file. Lines are split on "\n" ("\r\n" is
 * accepted); a leading byte-order mark is ignored; blank lines at the end of
 * the file are ignored, a blank line before the last example is an error.
 * `kind` "auto" (the default) decides for the whole file from its first
 * non-blank line: an object with an `input` key makes it a preference file.
 */
export function validateJsonl(text: string, kind: JsonlKind | "auto" = "auto"): JsonlReport {
  const raw = (text.startsWith("\uFEFF") ? text.slice(1) : text).split("\n").map((l) => l.replace(/\r$/, ""));
  let count = raw.length;
  while (count > 0 && (raw[count - 1] ?? "").trim() === "") count--;
  const lines = raw.slice(0, count);

  const parsed = lines.map((line) => (line.trim() === "" ? undefined : tryParse(line)));
  let resolved: JsonlKind = kind === "auto" ? "chat" : kind;
  if (kind === "auto") {
    const first = parsed.find((p) => p !== undefined);
    if (first?.ok) resolved = detectKind(first.value);
  }
  const validate = resolved === "preference" ? validatePreferenceExample : validateChatExample;

  const errors: JsonlError[] = [];
  let errorCount = 0;
  const report = (line: number, message: string) => {
    errorCount++;
    if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line, message: `line ${line}: ${message}` });
  };

  if (lines.length === 0) report(1, "the file has no examples");
  let valid = 0;
  const tokens: number[] = [];
  parsed.forEach((result, i) => {
    const line = i + 1;
    if (result === undefined) {
      report(line, "the line is blank (blank lines are only allowed at the end of the file)");
      return;
    }
    if (!result.ok) {
      report(line, `the line is not valid JSON (${result.error})`);
      return;
    }
    tokens.push(estimateExampleTokens(result.value));
    const problems = validate(result.value);
    for (const problem of problems) report(line, problem);
    if (problems.length === 0) valid++;
  });

  return { kind: resolved, lines: lines.length, valid, errors, errorCount, tokens: tokenStats(tokens) };
}
