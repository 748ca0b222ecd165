/**
 * Values a peer sent, made safe to read: a peer's metadata may hold anything
 * msgpack can carry (objects whose `toString` is not a function, lists nested
 * thousands deep, megabytes of text). Nothing here calls a method of the value
 * or walks into it, and every result is bounded, so it can go into an error
 * message or a close reason without throwing or echoing an unbounded value.
 */

/** Longest peer-supplied text kept in a message, in characters. */
export const MAX_PEER_TEXT_CHARS = 100;

/** `text` cut to `max` characters (with `...` when cut). */
export function truncate(text: string, max = MAX_PEER_TEXT_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** A bounded description of any value: strings quoted and cut, numbers as they are, anything else by its kind only. */
export function describePeerValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(truncate(value));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (typeof value === 'bigint') return truncate(value.toString());
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.byteLength} bytes`;
  return typeof value === 'object' ? 'a map' : typeof value;
}

/** `value` if it is a string, cut to `max` characters; else undefined. */
export function peerString(value: unknown, max = MAX_PEER_TEXT_CHARS): string | undefined {
  return typeof value === 'string' ? truncate(value, max) : undefined;
}

/** The own property `key` of `meta` (never one inherited: `constructor`, `__proto__`...), or undefined. */
export function metaField(meta: Readonly<Record<string, unknown>> | undefined, key: string): unknown {
  return meta !== undefined && Object.prototype.hasOwnProperty.call(meta, key) ? meta[key] : undefined;
}
