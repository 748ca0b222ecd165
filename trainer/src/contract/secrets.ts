/**
 * Secrets generated in the cluster (never committed to dist/): the charts name
 * them, the trainer's `ensure-secrets` command creates the missing ones.
 */
export const SECRET_KEYS = {
  /** PostgreSQL password. */
  password: 'password',
  /** S3 credentials, in the names AWS SDKs, MLflow and boto3 read from env. */
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  /** Bearer token trainers present at the WebSocket upgrade. */
  authToken: 'token',
  /** MLflow basic auth (MlflowStack basicAuth): the admin's name, beside {@link password}. */
  username: 'username',
  /** MLflow basic auth: the Flask secret key of the auth app's sessions and CSRF tokens (MLFLOW_FLASK_SERVER_SECRET_KEY). */
  flaskSecretKey: 'flask-secret-key',
} as const;

/**
 * Env names of S3 credentials, the standard AWS SDK ones: the trainer reads them
 * for s3:// dataset URIs; charts fill them from a Secret with the same keys.
 */
export const S3_CREDENTIAL_ENV = {
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  sessionToken: 'AWS_SESSION_TOKEN',
  region: 'AWS_REGION',
} as const;

/** Env of the ensure-secrets command. */
export const ENSURE_SECRETS_ENV = {
  /** JSON: [{ "name": "mlflow-postgres", "keys": ["password"] }, ...]. */
  spec: 'TENSORFLEET_ENSURE_SECRETS',
  /** The namespace to create them in (downward API metadata.namespace). */
  namespace: 'POD_NAMESPACE',
} as const;

export interface SecretSpec {
  readonly name: string;
  readonly keys: readonly string[];
  /**
   * Keep the Secret when the ensure-secrets ServiceAccount (the job) is deleted. Otherwise
   * ensure-secrets makes that ServiceAccount the Secret's owner, and Kubernetes' garbage
   * collector deletes the Secret with it.
   *
   * @default - kept unless its only key is the bearer token ({@link SECRET_KEYS.authToken}): a
   * token authenticates the workload's own pods to each other, so nothing needs it once they
   * are gone; a password or S3 key guards stored data (a database volume) that outlives them
   */
  readonly retain?: boolean;
}

/** Whether a generated Secret outlives the workload it was generated for (see {@link SecretSpec.retain}). */
export function retainsSecret(spec: SecretSpec): boolean {
  return spec.retain ?? !(spec.keys.length === 1 && spec.keys[0] === SECRET_KEYS.authToken);
}

/** Parse the ensure-secrets spec, naming the variable and the problem. */
export function parseSecretSpecs(raw: string | undefined): SecretSpec[] {
  const fail = (why: string): never => {
    throw new Error(`invalid ${ENSURE_SECRETS_ENV.spec}: ${why}, got ${JSON.stringify(raw)}`);
  };
  if (raw === undefined || raw === '') return fail('it is missing');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail('it must be JSON');
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return fail('it must be a non-empty array of {name, keys}');
  return parsed.map((entry: unknown, i) => {
    const e = entry as Partial<SecretSpec> | null;
    if (!e || typeof e.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(e.name)) {
      return fail(`entry ${i} needs a DNS-1123 "name"`);
    }
    if (!Array.isArray(e.keys) || e.keys.length === 0 || !e.keys.every((k) => typeof k === 'string' && /^[-._a-zA-Z0-9]+$/.test(k))) {
      return fail(`entry ${i} needs "keys", a non-empty array of Secret key names`);
    }
    if (e.retain !== undefined && typeof e.retain !== 'boolean') return fail(`entry ${i} has a "retain" that is not true or false`);
    return { name: e.name, keys: [...e.keys], ...(e.retain !== undefined ? { retain: e.retain } : {}) };
  });
}
