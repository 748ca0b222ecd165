/**
 * A request body as JSON, with its nesting bounded before it is parsed: every
 * later step that walks a value (validation, the error body's JSON.stringify)
 * recurses, so a body of thousands of nested arrays must never reach one.
 */
import type { FieldProblem } from '../contract';

/** Deepest nesting of arrays and objects a body may have (a job request needs 3). */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether `text` nests arrays or objects deeper than `limit`: one pass, no recursion,
 * brackets inside strings not counted. Exact for valid JSON; invalid JSON fails to parse anyway.
 */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

export type ParsedBody =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string; readonly problem: FieldProblem };

/** `raw` as JSON, or why not (a problem of the field "(body)", quoting at most 80 characters of it). */
export function parseJsonBody(raw: Buffer): ParsedBody {
  const text = raw.toString('utf8');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    return {
      ok: false,
      message: `the body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels`,
      problem: { field: '(body)', value: text.slice(0, 80), allowed: `a JSON object nested at most ${MAX_JSON_DEPTH} levels deep` },
    };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return {
      ok: false,
      message: `the body is not JSON: ${String((e as Error).message).slice(0, 100)}`,
      problem: { field: '(body)', value: text.slice(0, 80), allowed: 'a JSON object' },
    };
  }
}
