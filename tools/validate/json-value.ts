/** Helpers for untyped JSON values (parsed YAML). */

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The OpenAPI type name of a JSON value: `object`, `array`, `string`, `integer`, `number`, `boolean` or `null`. */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Whether `value` is an instance of OpenAPI `type` (an integer is also a number). */
export function matchesType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return true;
  }
}

/** `string "3"`, `number 1.5`, `object`, for type-mismatch messages. */
export function describeValue(value: unknown): string {
  const type = jsonTypeOf(value);
  if (type === 'object' || type === 'array' || type === 'null') return type;
  const text = JSON.stringify(value);
  return `${type} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

/** `obj[key]` when `obj` is an object, else undefined. */
export function get(obj: unknown, key: string): unknown {
  return isObject(obj) ? obj[key] : undefined;
}

/** `obj[key]` when it is an object, else undefined. */
export function getObject(obj: unknown, key: string): JsonObject | undefined {
  const v = get(obj, key);
  return isObject(v) ? v : undefined;
}

/** `obj[key]` when it is an array, else `[]`. */
export function getArray(obj: unknown, key: string): readonly unknown[] {
  const v = get(obj, key);
  return Array.isArray(v) ? v : [];
}

/** `obj[key]` when it is a string, else undefined. */
export function getString(obj: unknown, key: string): string | undefined {
  const v = get(obj, key);
  return typeof v === 'string' ? v : undefined;
}

/** Plain string-to-string entries of a map such as labels; non-string values are skipped. */
export function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(value)) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}
