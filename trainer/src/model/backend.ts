/**
 * TensorFlow.js backend selection: tfjs-node (native libtensorflow, what the
 * trainer image installs) when it loads, else WebAssembly, else plain JS.
 * The choice is logged, so a slow run says why.
 */
import * as tf from '@tensorflow/tfjs';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendChoice {
  readonly backend: BackendName;
  /** Why each preferred backend before it was passed over. */
  readonly skipped: ReadonlyArray<{ backend: BackendName; reason: string }>;
}

async function register(name: BackendName): Promise<void> {
  if (name === 'tensorflow') {
    // Optional dependency: its install downloads libtensorflow, which may have failed.
    require('@tensorflow/tfjs-node');
  } else if (name === 'wasm') {
    require('@tensorflow/tfjs-backend-wasm');
  }
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') returned false`);
  await tf.ready();
}

/** Select the first backend of `prefer` that initializes, and log the choice. */
export async function initBackend(
  prefer: readonly BackendName[] = BACKENDS,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<BackendChoice> {
  const skipped: { backend: BackendName; reason: string }[] = [];
  for (const backend of prefer) {
    try {
      await register(backend);
      const note = skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ');
      log(`tensorflow backend: ${backend}${note ? ` (skipped ${note})` : ''}`);
      return { backend, skipped };
    } catch (err) {
      skipped.push({ backend, reason: (err as Error).message.split('\n')[0] });
    }
  }
  throw new Error(`no TensorFlow.js backend could start: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
}
