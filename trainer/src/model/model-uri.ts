/**
 * Fetch a user's TensorFlow.js LayersModel (model.json and its weight shards)
 * from the location in {@link ENV.modelUri}: an absolute path or file://,
 * http(s)://, s3:// (through data/fetch.ts: retries, SigV4 signing), or
 * runs:/<run_id>/<path>, an artifact of an MLflow run: resolved through the
 * tracking server's REST API (runs/get -> artifact_uri; mlflow-artifacts:/
 * URIs are downloaded through the artifact proxy), or without a tracking
 * server from the local file store under outputDir/mlruns.
 *
 * A location that does not end in `.json` names a folder holding model.json.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { ENV } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { type FetchOptions, fetchBytes } from '../data/fetch';
import type { MlflowConnection } from '../tracking/mlflow-connection';

/** The file name of a model's topology and weights manifest. */
export const MODEL_JSON = 'model.json';
const RUNS_SCHEME = 'runs:/';
const MLFLOW_ARTIFACTS_SCHEME = 'mlflow-artifacts:';

/** What a model.json holds (tf.io.ModelJSON, the fields read here). */
export interface ModelJson {
  readonly modelTopology: unknown;
  readonly weightsManifest?: tf.io.WeightsManifestConfig;
  readonly format?: string;
  readonly generatedBy?: string;
  readonly convertedBy?: string | null;
}

/** A fetched model.json and its weights (absent: topology only). */
export interface FetchedModel {
  /** Where model.json was read from. */
  readonly location: string;
  readonly json: ModelJson;
  readonly weightSpecs?: tf.io.WeightsManifestEntry[];
  readonly weightData?: ArrayBuffer;
}

export interface ModelUriContext {
  /**
   * MLflow tracking server for runs:/ URIs; its credentials and TLS switch go to its own origin only (it is the
   * {@link FetchOptions.trackingServer} of every fetch). @default - the file store under {@link outputDir}
   */
  readonly tracking?: MlflowConnection;
  /** Holds the local MLflow file store (mlruns/). @default - runs:/ URIs need a trackingUri */
  readonly outputDir?: string;
  /** @default - the defaults of {@link FetchOptions} */
  readonly fetch?: FetchOptions;
}

function modelError(uri: string, message: string, cause?: unknown): TrainerError {
  return new TrainerError(
    'TRAINER_ERR_INVALID_ARGUMENT',
    `${ENV.modelUri}=${JSON.stringify(uri)}: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** `location` of a folder or of model.json -> the location of model.json. */
function modelJsonLocation(location: string): string {
  if (location.endsWith('.json')) return location;
  return location.endsWith('/') ? `${location}${MODEL_JSON}` : `${location}/${MODEL_JSON}`;
}

/** The location of `relative` next to the file at `location` (a path or URL). */
export function siblingLocation(location: string, relative: string): string {
  const rel = relative.replace(/^\.\//, '');
  const slash = location.lastIndexOf('/');
  return `${location.slice(0, slash + 1)}${rel}`;
}

/** Split runs:/<run_id>/<path> into its run id and artifact path. */
export function parseRunsUri(uri: string): { runId: string; path: string } {
  const rest = uri.slice(RUNS_SCHEME.length).replace(/^\/+/, '');
  const slash = rest.indexOf('/');
  const runId = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (!/^[0-9a-zA-Z_-]+$/.test(runId))
    throw modelError(uri, `runs:/ URIs must be runs:/<run_id>/<path>, got run id ${JSON.stringify(runId)}`);
  return { runId, path };
}

/** The artifacts root (a fetchable location, no trailing slash) of MLflow run `runId`. */
async function runArtifactRoot(uri: string, runId: string, context: ModelUriContext): Promise<string> {
  if (context.tracking !== undefined) {
    const base = context.tracking.trackingUri.replace(/\/+$/, '');
    const runsGet = `${base}/api/2.0/mlflow/runs/get?run_id=${encodeURIComponent(runId)}`;
    let body: { run?: { info?: { artifact_uri?: string } } };
    try {
      body = JSON.parse(
        (await fetchBytes(runsGet, { ...context.fetch, trackingServer: context.tracking })).toString('utf8'),
      ) as typeof body;
    } catch (err) {
      throw modelError(
        uri,
        `cannot read run ${runId} from the MLflow tracking server ${base} (GET /api/2.0/mlflow/runs/get): ${(err as Error).message}`,
        err,
      );
    }
    const artifactUri = body.run?.info?.artifact_uri;
    if (typeof artifactUri !== 'string' || artifactUri === '') throw modelError(uri, `run ${runId} on ${base} has no artifact_uri`);
    if (artifactUri.startsWith(MLFLOW_ARTIFACTS_SCHEME)) {
      // mlflow-artifacts:/<path> or mlflow-artifacts://<host>/<path>: served by the tracking server's artifact proxy.
      const path = artifactUri
        .slice(MLFLOW_ARTIFACTS_SCHEME.length)
        .replace(/^\/\/[^/]*/, '')
        .replace(/^\/+|\/+$/g, '');
      return `${base}/api/2.0/mlflow-artifacts/artifacts/${path}`;
    }
    return artifactUri.replace(/\/+$/, '');
  }
  if (context.outputDir === undefined) throw modelError(uri, `runs:/ URIs need ${ENV.trackingUri} or a local MLflow file store`);
  const mlruns = join(context.outputDir, 'mlruns');
  let experiments: string[];
  try {
    experiments = await fs.readdir(mlruns);
  } catch (err) {
    throw modelError(
      uri,
      `no ${ENV.trackingUri} is set and the local MLflow file store ${mlruns} cannot be read: ${(err as Error).message}`,
      err,
    );
  }
  for (const experiment of experiments.sort()) {
    const dir = join(mlruns, experiment, runId);
    const meta = await fs.readFile(join(dir, 'meta.yaml'), 'utf8').catch(() => undefined);
    if (meta === undefined) continue;
    const line = meta.split('\n').find((l) => l.startsWith('artifact_uri: '));
    const value = line
      ?.slice('artifact_uri: '.length)
      .trim()
      .replace(/^'(.*)'$/, '$1');
    return (value && value !== '' ? value : pathToFileURL(join(dir, 'artifacts')).href).replace(/\/+$/, '');
  }
  throw modelError(uri, `run ${runId} is not in the local MLflow file store ${mlruns} (and no ${ENV.trackingUri} is set)`);
}

/** The location of the model.json that `uri` names. */
export async function resolveModelUri(uri: string, context: ModelUriContext = {}): Promise<string> {
  if (uri.startsWith(RUNS_SCHEME)) {
    const { runId, path } = parseRunsUri(uri);
    const root = await runArtifactRoot(uri, runId, context);
    return modelJsonLocation(path === '' ? root : `${root}/${path}`);
  }
  return modelJsonLocation(uri);
}

/** Fetch the model.json `uri` names and, when its manifest lists any, its weight shards. */
export async function fetchModel(uri: string, context: ModelUriContext = {}): Promise<FetchedModel> {
  const location = await resolveModelUri(uri, context);
  const options: FetchOptions = { ...context.fetch, trackingServer: context.tracking };
  let json: ModelJson;
  try {
    json = JSON.parse((await fetchBytes(location, options)).toString('utf8')) as ModelJson;
  } catch (err) {
    throw modelError(uri, `cannot read the model's ${MODEL_JSON} at ${location}: ${(err as Error).message}`, err);
  }
  if (json === null || typeof json !== 'object' || json.modelTopology === undefined || json.modelTopology === null) {
    throw modelError(
      uri,
      `${location} is not a TensorFlow.js LayersModel model.json: ` +
        `it has no modelTopology (what tf.LayersModel.save() and tensorflowjs_converter write)`,
    );
  }
  const manifest = json.weightsManifest ?? [];
  const weightSpecs = manifest.flatMap((group) => group.weights);
  if (weightSpecs.length === 0) return { location, json };
  const shards = await Promise.all(
    manifest
      .flatMap((group) => group.paths)
      .map(async (path) => {
        const shard = siblingLocation(location, path);
        try {
          return await fetchBytes(shard, options);
        } catch (err) {
          throw modelError(uri, `cannot read the weight shard ${shard} listed in ${location}: ${(err as Error).message}`, err);
        }
      }),
  );
  const bytes = Buffer.concat(shards);
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return { location, json, weightSpecs, weightData };
}
