/**
 * The TrainingApi's readiness: whether its executor (the Kubernetes API) answers. Asked by
 * GET /readyz; checked at most every `intervalMs`, and said in the log once at start and
 * then only when it changes (a probe every few seconds must not flood the log).
 */

export interface ReadinessOptions {
  /** Throws (with the reason) while the executor cannot serve jobs. */
  readonly check: () => Promise<void>;
  readonly log: (line: string) => void;
  /** @default 5000 */
  readonly intervalMs?: number;
  /** A check that has not answered by then counts as failed. @default 5000 */
  readonly timeoutMs?: number;
}

/** A `notReady` for createApiServer: undefined when ready, else why not. */
export function createReadiness(options: ReadinessOptions): () => Promise<string | undefined> {
  const intervalMs = options.intervalMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 5000;
  let last: { at: number; reason: string | undefined } | undefined;
  let pending: Promise<string | undefined> | undefined;
  const probe = async (): Promise<string | undefined> => {
    let reason: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        options.check(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the Kubernetes API did not answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      reason = (e as Error)?.message ?? String(e);
    } finally {
      clearTimeout(timer);
    }
    if (last === undefined || last.reason !== reason) {
      options.log(reason === undefined ? 'ready: the Kubernetes API answers' : `not ready: ${reason}`);
    }
    last = { at: Date.now(), reason };
    return reason;
  };
  return () => {
    if (last !== undefined && Date.now() - last.at < intervalMs) return Promise.resolve(last.reason);
    pending ??= probe().finally(() => (pending = undefined));
    return pending;
  };
}
