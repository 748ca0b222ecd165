/** Reading multi-document YAML manifests and naming the objects in them. */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ObjectLabel } from './findings';
import { getObject, getString } from './json-value';

/**
 * Parses every document of a multi-document YAML file, skipping empty (`null`) documents.
 * Throws with the file name and the first YAML error, since nothing can be validated past it.
 */
export function loadManifests(path: string): unknown[] {
  return parseManifests(readFileSync(path, 'utf8'), path);
}

/** As {@link loadManifests}, from text; `source` names the text in errors. */
export function parseManifests(text: string, source = '<string>'): unknown[] {
  const objects: unknown[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: invalid YAML: ${doc.errors[0].message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value);
  }
  return objects;
}

/** The kind and name a finding about `obj` (the `index`-th object of `file`) carries. */
export function labelOf(obj: unknown, index: number, file: string): ObjectLabel {
  return {
    file,
    kind: getString(obj, 'kind') ?? '<unknown>',
    name: getString(getObject(obj, 'metadata'), 'name') ?? `<unnamed #${index}>`,
  };
}
