import { randomBytes } from 'node:crypto';
import { LABELS, MANAGED_BY, PART_OF, SecretSpec, retainsSecret } from '../contract';
import { KubeApi, ServiceAccountIdentity, statusMessage } from './api-client';

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

export interface EnsureSecretsOptions {
  /**
   * The ServiceAccount that owns the Secrets that are not retained (see SecretSpec.retain):
   * deleting it (DELETE /jobs/{name}, or removing the chart) makes the garbage collector
   * delete them. `null`: no owner.
   *
   * @default - the service account of the client's token (the ensure-secrets Job's own)
   */
  readonly owner?: ServiceAccountIdentity | null;
  /**
   * How long to wait for the garbage collector to remove a Secret owned by an earlier
   * ServiceAccount of the same name (a job deleted and submitted again).
   *
   * @default 60000
   */
  readonly staleWaitMs?: number;
  /** @default 1000 */
  readonly pollMs?: number;
}

interface SecretObject {
  data?: Record<string, string>;
  metadata?: { ownerReferences?: Array<{ kind?: string; name?: string; uid?: string }> };
}

/**
 * Create each Secret that does not exist yet, with a random value per key.
 * Existing Secrets are never overwritten (so a restart keeps the database's password)
 * nor adopted; one that lacks a key is an error naming it. A Secret that is not retained
 * is created owned by `owner`, so that it goes when its job goes.
 */
export async function ensureSecrets(
  api: KubeApi,
  namespace: string,
  specs: readonly SecretSpec[],
  log: (line: string) => void = () => {},
  options: EnsureSecretsOptions = {},
): Promise<Record<string, EnsureOutcome>> {
  const outcome: Record<string, EnsureOutcome> = {};
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  const identity = options.owner === undefined ? api.serviceAccount() : (options.owner ?? undefined);
  // Owner references name objects of the same namespace only.
  const owner = identity && (identity.namespace === undefined || identity.namespace === namespace) ? identity : undefined;
  const staleWaitMs = options.staleWaitMs ?? 60_000;
  const pollMs = options.pollMs ?? 1000;
  for (const spec of specs) {
    const path = `${base}/${encodeURIComponent(spec.name)}`;
    let existing = await api.request('GET', path);
    if (existing.status === 200 && owner && staleOwner(existing.body as SecretObject, owner)) {
      // Ours from before: the job was deleted and submitted again before the garbage collector got to it.
      log(
        `secret ${namespace}/${spec.name}: owned by an earlier ServiceAccount ${owner.name}; ` +
          `waiting for the garbage collector to delete it`,
      );
      const deadline = Date.now() + staleWaitMs;
      while (existing.status === 200 && staleOwner(existing.body as SecretObject, owner) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, pollMs));
        existing = await api.request('GET', path);
      }
      if (existing.status === 200 && staleOwner(existing.body as SecretObject, owner)) {
        throw new Error(
          `Secret ${namespace}/${spec.name} is still owned by an earlier ServiceAccount ${owner.name} after ${staleWaitMs}ms; ` +
            `the garbage collector has not deleted it yet`,
        );
      }
    }
    if (existing.status === 200) {
      const data = (existing.body as SecretObject).data ?? {};
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
    const owned = owner !== undefined && !retainsSecret(spec);
    const secret = (withOwner: boolean): Record<string, unknown> => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: spec.name,
        namespace,
        labels: { [LABELS.partOf]: PART_OF, [LABELS.managedBy]: MANAGED_BY },
        ...(withOwner && owner
          ? { ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: owner.name, uid: owner.uid }] }
          : {}),
      },
      type: 'Opaque',
      data,
    });
    let created = await api.request('POST', `${base}?fieldManager=tensorfleet`, secret(owned));
    let ownedNow = owned;
    if (owned && created.status === 403 && /ownerRef/i.test(statusMessage(created))) {
      // OwnerReferencesPermissionEnforcement wants delete on the Secret to set an owner: keep it instead.
      log(
        `secret ${namespace}/${spec.name}: may not be owned by ServiceAccount ${owner!.name} here (${statusMessage(created)}); ` +
          `created without an owner, it is kept after the job`,
      );
      created = await api.request('POST', `${base}?fieldManager=tensorfleet`, secret(false));
      ownedNow = false;
    }
    if (created.status === 201 || created.status === 200) {
      outcome[spec.name] = 'created';
      const lifetime = ownedNow ? `owned by ServiceAccount ${owner!.name} (deleted with it)` : 'kept when the job is deleted';
      log(`secret ${namespace}/${spec.name}: created with key(s) ${spec.keys.join(', ')}, ${lifetime}`);
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

/** Whether a Secret is owned by a ServiceAccount of our name that is not us (an earlier one, being garbage-collected). */
function staleOwner(secret: SecretObject, owner: ServiceAccountIdentity): boolean {
  return (secret.metadata?.ownerReferences ?? []).some((r) => r.kind === 'ServiceAccount' && r.name === owner.name && r.uid !== owner.uid);
}
