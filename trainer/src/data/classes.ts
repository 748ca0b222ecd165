/**
 * Class names and indices from the label values found in a user's data: the
 * distinct values sorted (numerically when every value is a number, else
 * lexically), and each example's label as the index of its value there.
 */

/** Labels as read: an id per example into the distinct values, in order of first appearance. */
export interface RawLabels {
  readonly ids: Int32Array;
  readonly values: readonly string[];
}

/** The distinct values sorted: numbers numerically ("2" before "10"), otherwise strings lexically. */
export function sortClassNames(values: Iterable<string>): string[] {
  const distinct = [...new Set(values)];
  const numeric = distinct.every((v) => v.trim() !== '' && Number.isFinite(Number(v)));
  return numeric ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Each example's class index in `classNames` (every value of `raw` must be there). */
export function classIndices(raw: RawLabels, classNames: readonly string[]): Int32Array {
  const indexOf = new Map(classNames.map((name, i) => [name, i]));
  const map = raw.values.map((v) => indexOf.get(v) ?? -1);
  const out = new Int32Array(raw.ids.length);
  for (let i = 0; i < out.length; i++) out[i] = map[raw.ids[i]];
  return out;
}

/** Raw labels from numeric values (npz, idx): ids into their distinct values as strings. */
export function rawLabelsFromNumbers(values: ArrayLike<number>): RawLabels {
  const ids = new Int32Array(values.length);
  const seen = new Map<number, number>();
  const names: string[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let id = seen.get(v);
    if (id === undefined) {
      id = names.length;
      seen.set(v, id);
      names.push(String(v));
    }
    ids[i] = id;
  }
  return { ids, values: names };
}
