/**
 * OpenAI's strict-mode rules for JSON schemas (`strict: true` on a function tool or a
 * `json_schema` response format), as the fake OpenAI server's "openai" profile enforces
 * them. The messages follow the wording of OpenAI's 400 errors, e.g.
 * `In context=('properties', 'summary'), 'additionalProperties' is required to be supplied and to be false.`
 *
 * Rules checked:
 * - the root is `type: "object"` (not `anyOf`);
 * - every object schema, wherever it sits (properties, items, anyOf branches, $defs,
 *   definitions), has `additionalProperties: false` and a `required` array listing every
 *   key of its `properties` (an optional field must be nullable instead);
 * - only the supported keywords appear (see `STRICT_KEYWORDS`); anything else
 *   (minLength, maxLength, default, allOf, oneOf, not, uniqueItems, $schema, ...) is
 *   "not permitted".
 */

/** Keywords a strict schema may use; any other keyword is rejected. */
export const STRICT_KEYWORDS: ReadonlySet<string> = new Set([
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

type Path = readonly (string | number)[];

/** A path as OpenAI prints it: a Python tuple repr, `()`, `('items',)`, `('properties', 'a')`. */
function context(path: Path): string {
  const parts = path.map((p) => (typeof p === "number" ? String(p) : `'${p}'`));
  if (parts.length === 1) return `(${parts[0]},)`;
  return `(${parts.join(", ")})`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function typeIncludes(schema: Record<string, unknown>, name: string): boolean {
  const type = schema.type;
  return type === name || (Array.isArray(type) && type.includes(name));
}

function describeType(type: unknown): string {
  if (typeof type === "string") return type;
  if (Array.isArray(type)) return type.map(String).join(", ");
  return "None";
}

/**
 * Every violation of OpenAI's strict-mode rules in `schema`, in the order they are found
 * (each node's own problems, then its children, depth first), as OpenAI words them.
 * Empty when the schema would be accepted.
 */
export function strictSchemaErrors(schema: unknown): string[] {
  if (!isRecord(schema) || schema.type !== "object") {
    const got = isRecord(schema) ? describeType(schema.type) : "None";
    return [`schema must be a JSON Schema of 'type: "object"', got 'type: "${got}"'.`];
  }
  const errors: string[] = [];
  visit(schema, [], errors);
  return errors;
}

function visit(schema: unknown, path: Path, errors: string[]): void {
  if (!isRecord(schema)) {
    // `true`/`false` schemas and other non-objects cannot say anything strict mode accepts.
    errors.push(`In context=${context(path)}, schema must be a JSON object.`);
    return;
  }
  const where = `In context=${context(path)}`;
  for (const key of Object.keys(schema)) {
    if (!STRICT_KEYWORDS.has(key)) errors.push(`${where}, '${key}' is not permitted.`);
  }
  const properties = isRecord(schema.properties) ? schema.properties : undefined;
  if (typeIncludes(schema, "object") || properties !== undefined) {
    if (schema.additionalProperties !== false) {
      errors.push(`${where}, 'additionalProperties' is required to be supplied and to be false.`);
    }
    if (properties !== undefined) {
      const required = Array.isArray(schema.required) ? schema.required : undefined;
      const missing = Object.keys(properties).find((key) => !required?.includes(key));
      if (required === undefined || missing !== undefined) {
        errors.push(
          `${where}, 'required' is required to be supplied and to be an array including every key in properties.` +
            (missing !== undefined ? ` Missing '${missing}'.` : ""),
        );
      }
    }
  }
  if (properties !== undefined) {
    for (const [key, child] of Object.entries(properties)) visit(child, [...path, "properties", key], errors);
  }
  if (schema.items !== undefined) {
    if (Array.isArray(schema.items)) {
      schema.items.forEach((child, i) => {
        visit(child, [...path, "items", i], errors);
      });
    } else visit(schema.items, [...path, "items"], errors);
  }
  if (Array.isArray(schema.anyOf)) {
    schema.anyOf.forEach((child, i) => {
      visit(child, [...path, "anyOf", i], errors);
    });
  }
  for (const defs of ["$defs", "definitions"] as const) {
    const table = schema[defs];
    if (isRecord(table)) {
      for (const [key, child] of Object.entries(table)) visit(child, [...path, defs, key], errors);
    }
  }
}

/** Throws an Error listing every violation (one per line) when `schema` is not strict-mode valid. */
export function assertStrictSchema(schema: unknown): void {
  const errors = strictSchemaErrors(schema);
  if (errors.length > 0) throw new Error(`Schema is not valid in OpenAI strict mode:\n${errors.join("\n")}`);
}
