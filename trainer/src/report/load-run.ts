/**
 * Finds the run a report is asked for: in local file stores (by id or prefix), or on an MLflow
 * tracking server (by id) when one is given, as MLflow's client does: the flag first, then
 * MLFLOW_TRACKING_URI (a run found in the local stores is still read from them). A `file:`
 * tracking URI (or a plain path) is a local store.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainerError } from '../contract';
import { RunFolder, RunNotFoundError, defaultStores, findRun, findStores, readRun } from '../tracking/file-store-reader';
import { mlflowConnectionFrom } from '../tracking/mlflow-connection';
import { readMlflowRun } from './mlflow-reader';
import { RunData } from '../tracking/run-data';

export interface LoadRunOptions {
  /** A folder holding file stores (an out folder, an mlruns folder, or a folder of out folders). */
  readonly dir?: string;
  /** The `--tracking-uri` flag. */
  readonly trackingUri?: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

export async function loadRun(ref: string, options: LoadRunOptions): Promise<RunData> {
  const fromEnv = options.trackingUri === undefined;
  const uri = options.trackingUri ?? (options.dir === undefined ? nonEmpty(options.env.MLFLOW_TRACKING_URI) : undefined);
  if (uri !== undefined && /^https?:/i.test(uri)) {
    // A server named only by the environment: a run of the local stores still reports from them.
    if (fromEnv) {
      const local = localRun(defaultStores(options.cwd), ref);
      if (local !== undefined) return readRun(local);
    }
    // MLflow's client variables: credentials, the TLS switch, and the server itself when no flag names it.
    const connection = mlflowConnectionFrom(options.trackingUri, options.env) ?? { trackingUri: uri };
    return readMlflowRun(connection, ref);
  }
  if (uri !== undefined && /^[a-z][a-z0-9+.-]*:/i.test(uri) && !/^file:/i.test(uri)) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `tracking URI ${JSON.stringify(uri)}: a report reads an http(s) MLflow server or a file store (file: URI or path)`,
    );
  }
  const dir = uri !== undefined ? (/^file:/i.test(uri) ? fileURLToPath(uri) : uri) : options.dir;
  const stores = dir !== undefined ? findStores(path.resolve(options.cwd, dir)) : defaultStores(options.cwd);
  if (stores.length === 0) {
    const where = dir !== undefined ? `in ${dir}` : `under ${path.join(options.cwd, '.tensorfleet')}`;
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `run ${JSON.stringify(ref)}: no MLflow file store ${where}; ` +
        'give --dir <out or mlruns folder>, or --tracking-uri <MLflow server>',
    );
  }
  return readRun(findRun(stores, ref));
}

/** The run in the local stores, or undefined when none has it (the server is asked then); an ambiguous prefix is refused. */
function localRun(stores: readonly string[], ref: string): RunFolder | undefined {
  try {
    return findRun(stores, ref);
  } catch (e) {
    if (e instanceof RunNotFoundError) return undefined;
    throw e;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
