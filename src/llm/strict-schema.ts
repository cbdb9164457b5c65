/**
 * JSON schemas as OpenAI's strict mode accepts them (`strict: true` on a function tool
 * or a `json_schema` response format). OpenAI answers 400 to any schema that breaks its
 * rules, and zod's `toJSONSchema` breaks two of them, so every schema the engine sends
 * goes through `strictJsonSchema` first:
 *
 * - every object has `additionalProperties: false`;
 * - every property is listed in `required`; one that was optional becomes nullable
 *   (the model sends `null` for "absent", and `dropNulls` turns that back into absent
 *   before zod validates);
 * - keywords strict mode does not support (minLength, maxLength, default, ...) are
 *   dropped. The zod schema still checks them when the answer comes back.
 *
 * Servers without strict validation (vLLM, llama.cpp, Ollama) read the same schema as
 * a grammar, so one form serves every endpoint.
 *
 * The embedded model (src/llm/local-client.ts) is the exception: its grammar follows
 * string lengths, and a weak model needs them (an empty `title` is well-formed JSON but
 * not a plan). `grammarJsonSchema` is the strict form with `minLength`/`maxLength` kept
 * and a `pattern` the grammar cannot follow replaced by the field's `grammarEnum` (zod
 * `.meta({ grammarEnum })`), and `grammarSchemaFor` finds it for a strict schema the agent
 * sent, so the port's requests stay as they are.
 */

/** Keywords OpenAI's strict mode accepts (checked December 2026). */
const SUPPORTED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "anyOf",
  "description",
  "title",
  "$ref",
  "$defs",
  "definitions",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minItems",
  "maxItems",
]);

/** Kept in the grammar form only: a JSON-schema grammar (node-llama-cpp, llama.cpp) follows them. */
const GRAMMAR_ONLY = new Set(["minLength", "maxLength"]);

type Schema = Record<string, unknown>;

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The strict form of a JSON schema (a new object; the input is not changed). */
export function strictJsonSchema(schema: Schema): Schema {
  return convert(schema, false);
}

/**
 * The form a JSON-schema grammar follows best: the strict form, plus `minLength` and
 * `maxLength`, and a string's `grammarEnum` (its allowed values, for a `pattern` the
 * grammar ignores, such as a language tag) as its `enum`.
 */
export function grammarJsonSchema(schema: Schema): Schema {
  return convert(schema, true);
}

const grammarForms = new Map<string, Schema>();

/** Remember `grammar` as the grammar form of the strict schema `strict` (see `grammarSchemaFor`). */
export function registerGrammarSchema(strict: Schema, grammar: Schema): void {
  grammarForms.set(JSON.stringify(strict), grammar);
}

/** The grammar form registered for a strict schema, or the schema itself when there is none. */
export function grammarSchemaFor(schema: Schema): Schema {
  return grammarForms.get(JSON.stringify(schema)) ?? schema;
}

function convert(schema: Schema, grammar: boolean): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (!SUPPORTED.has(key) && !(grammar && GRAMMAR_ONLY.has(key))) continue;
    if (key === "properties" || key === "$defs" || key === "definitions") {
      out[key] = Object.fromEntries(
        Object.entries(isSchema(value) ? value : {}).map(([k, v]) => [k, isSchema(v) ? convert(v, grammar) : v]),
      );
    } else if (key === "items") {
      out[key] = isSchema(value) ? convert(value, grammar) : value;
    } else if (key === "anyOf") {
      out[key] = Array.isArray(value) ? value.map((v) => (isSchema(v) ? convert(v, grammar) : v)) : value;
    } else {
      out[key] = value;
    }
  }
  if (grammar && Array.isArray(schema.grammarEnum) && out.enum === undefined) {
    out.enum = schema.grammarEnum;
    delete out.pattern;
    delete out.minLength;
    delete out.maxLength;
  }
  if (isSchema(out.properties)) {
    const properties = out.properties as Record<string, Schema>;
    const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
    for (const [name, property] of Object.entries(properties)) {
      if (!required.has(name)) properties[name] = nullable(property);
    }
    out.required = Object.keys(properties);
    out.additionalProperties = false;
  } else if (out.type === "object") {
    out.properties = {};
    out.required = [];
    out.additionalProperties = false;
  }
  return out;
}

/** The same schema, also accepting `null`. */
function nullable(schema: Schema): Schema {
  const type = schema.type;
  if (typeof type === "string") {
    const out: Schema = { ...schema, type: type === "null" ? "null" : [type, "null"] };
    if (Array.isArray(schema.enum) && !schema.enum.includes(null)) out.enum = [...schema.enum, null];
    return out;
  }
  if (Array.isArray(type)) return type.includes("null") ? schema : { ...schema, type: [...type, "null"] };
  if (Array.isArray(schema.anyOf)) {
    const hasNull = schema.anyOf.some((s) => isSchema(s) && s.type === "null");
    return hasNull ? schema : { ...schema, anyOf: [...schema.anyOf, { type: "null" }] };
  }
  return { anyOf: [schema, { type: "null" }] };
}

/**
 * Object properties whose value is `null` removed, recursively: a strict schema makes
 * optional fields nullable, and zod's `.optional()` means "absent", not null.
 */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (!isSchema(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (v !== null) out[key] = dropNulls(v);
  return out;
}

/**
 * The JSON object in a model's text answer: the whole text, or the first fenced block,
 * or from the first `{` to the last `}` (small local models add a sentence or a fence
 * around it). Undefined when there is none.
 */
export function extractJson(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith("{") && trimmed.endsWith("}")) return trimmed;
  const fenced = /```(?:json)?\s*\n?([\s\S]*?)```/i.exec(trimmed)?.[1]?.trim();
  if (fenced?.startsWith("{")) return fenced;
  const start = trimmed.indexOf("{");
  const end = trimmed.lastIndexOf("}");
  return start !== -1 && end > start ? trimmed.slice(start, end + 1) : undefined;
}
