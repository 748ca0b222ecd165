import { randomBytes } from 'node:crypto';
import { LABELS, MANAGED_BY, PART_OF, SecretSpec } from '../contract';
import { KubeApi, statusMessage } from './api-client';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random alphanumeric value (safe inside URIs and JSON), without modulo bias. */
export function randomSecretValue(length = 40): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

export type EnsureOutcome = 'created' | 'exists';

/**
 * Create each Secret that does not exist yet, with a random value per key.
 * Existing Secrets are never overwritten (so a restart keeps the database's password);
 * one that lacks a key is an error naming it.
 */
export async function ensureSecrets(
  api: KubeApi,
  namespace: string,
  specs: readonly SecretSpec[],
  log: (line: string) => void = () => {},
): Promise<Record<string, EnsureOutcome>> {
  const outcome: Record<string, EnsureOutcome> = {};
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  for (const spec of specs) {
    const existing = await api.request('GET', `${base}/${encodeURIComponent(spec.name)}`);
    if (existing.status === 200) {
      const data = (existing.body as { data?: Record<string, string> }).data ?? {};
      const missing = spec.keys.filter((k) => !(k in data));
      if (missing.length > 0) {
        throw new Error(`Secret ${namespace}/${spec.name} exists but lacks key(s) ${missing.join(', ')}; add them or delete the Secret`);
      }
      outcome[spec.name] = 'exists';
      log(`secret ${namespace}/${spec.name}: exists, left as it is`);
      continue;
    }
    if (existing.status !== 404) {
      throw new Error(`GET Secret ${namespace}/${spec.name} answered ${existing.status}: ${statusMessage(existing)}`);
    }
    const data = Object.fromEntries(spec.keys.map((k) => [k, Buffer.from(randomSecretValue()).toString('base64')]));
    const created = await api.request('POST', `${base}?fieldManager=tensorfleet`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: spec.name, namespace, labels: { [LABELS.partOf]: PART_OF, [LABELS.managedBy]: MANAGED_BY } },
      type: 'Opaque',
      data,
    });
    if (created.status === 201 || created.status === 200) {
      outcome[spec.name] = 'created';
      log(`secret ${namespace}/${spec.name}: created with key(s) ${spec.keys.join(', ')}`);
    } else if (created.status === 409) {
      // Another run created it between our GET and POST.
      outcome[spec.name] = 'exists';
      log(`secret ${namespace}/${spec.name}: created concurrently, left as it is`);
    } else {
      throw new Error(`POST Secret ${namespace}/${spec.name} answered ${created.status}: ${statusMessage(created)}`);
    }
  }
  return outcome;
}
