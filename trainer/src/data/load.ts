/**
 * One entry point for every role's data: the built-in datasets (by name) and
 * the user's own (csv, npz, image-folder, idx), from the trainer config. Gives
 * the train and test splits as {@link Dataset}s: features standardized with
 * the statistics of this process's training split (built-in image sets keep
 * their [0, 1] scaling), labels as class indices with their names, or
 * regression targets.
 */
import {
  BUILTIN_DATASETS,
  type BuiltinDatasetName,
  CLIENT_PLACEHOLDER,
  DATASET_FORMATS,
  DATASETS,
  type DatasetFormat,
  ENV,
  type TrainerConfig,
} from '../contract/env';
import { TrainerError } from '../contract/errors';
import { loadDataset } from './datasets';
import type { Dataset } from './examples';
import type { FetchOptions } from './fetch';
import { loadUserData } from './user-data';

/** What a role needs of its data. */
export interface LoadDataOptions {
  /** Load the training split. */
  readonly train: boolean;
  /** Load the test split. */
  readonly test: boolean;
  /**
   * A federated client's index: replaces {@link CLIENT_PLACEHOLDER} in the dataset URI.
   *
   * @default - the URI is used as it is
   */
  readonly client?: number;
  /** @default - the defaults of {@link FetchOptions} */
  readonly fetch?: FetchOptions;
  /** @default - nothing is logged */
  readonly log?: (line: string) => void;
}

export interface TrainerData {
  readonly train?: Dataset;
  readonly test?: Dataset;
}

/** The config's fields that say which data to load. */
export type DataConfig = Pick<
  TrainerConfig,
  | 'dataset'
  | 'datasetUri'
  | 'testDatasetUri'
  | 'datasetSize'
  | 'labelColumn'
  | 'featureColumns'
  | 'testFraction'
  | 'imageSize'
  | 'task'
  | 'seed'
  | 'dataDir'
>;

export function isBuiltinDataset(name: string): name is BuiltinDatasetName {
  return (BUILTIN_DATASETS as readonly string[]).includes(name);
}

export function isDatasetFormat(name: string): name is DatasetFormat {
  return (DATASET_FORMATS as readonly string[]).includes(name);
}

/** The dataset URI with {@link CLIENT_PLACEHOLDER} replaced by `client` (when given). */
export function resolveDatasetUri(uri: string | undefined, client: number | undefined): string | undefined {
  if (uri === undefined || client === undefined) return uri;
  return uri.split(CLIENT_PLACEHOLDER).join(String(client));
}

/** Whether each federated client reads data of its own (the dataset URI holds {@link CLIENT_PLACEHOLDER}). */
export function isPerSiteData(config: Pick<TrainerConfig, 'datasetUri'>): boolean {
  return config.datasetUri?.includes(CLIENT_PLACEHOLDER) ?? false;
}

/** Load the splits `options` asks for. */
export async function loadTrainerData(config: DataConfig, options: LoadDataOptions): Promise<TrainerData> {
  const uri = resolveDatasetUri(config.datasetUri, options.client);
  if (isBuiltinDataset(config.dataset)) {
    const name = config.dataset;
    const common = { cacheDir: config.dataDir, fetch: options.fetch };
    const [train, test] = await Promise.all([
      options.train ? loadDataset(name, uri, { ...common, split: 'train', datasetSize: config.datasetSize }) : undefined,
      options.test ? loadDataset(name, config.testDatasetUri ?? uri, { ...common, split: 'test' }) : undefined,
    ]);
    return { train, test };
  }
  if (isDatasetFormat(config.dataset)) return loadUserData(config.dataset, uri, config, options);
  throw new TrainerError(
    'TRAINER_ERR_DATASET',
    `${ENV.dataset} must be one of ${DATASETS.join(', ')}, got ${JSON.stringify(config.dataset)}`,
  );
}
