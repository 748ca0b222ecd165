/**
 * What a job trains on and what it trains: the `dataset` and `model` props of every
 * training construct. Enum-like classes with static factories, as the aws-cdk
 * guidelines have them (`Dataset.csv(uri, { labelColumn })`, `Model.fromUri(uri)`);
 * the string shorthands (`dataset: 'mnist'`, `model: 'mlp'`) and the flat props the
 * TrainingApi sets (datasetUri, labelColumn, modelUri...) stay, and both resolve here
 * into the same trainer config, checked once for every construct.
 */
import { Construct } from 'constructs';
import {
  BUILTIN_DATASETS,
  BuiltinDatasetName,
  CLIENT_PLACEHOLDER,
  DATASETS,
  DATASET_MIRRORS,
  DatasetName,
  MODELS,
  ModelName,
  PATHS,
  TASKS,
  Task,
  TrainerConfigInput,
} from '../../trainer/src/contract';
import { PropError, checkOneOf } from './props';

/** Options every format of the user's own data takes. */
export interface DatasetOptions {
  /**
   * The test split as a file or folder of its own (same format); without it a seeded,
   * stratified holdout of the training data is the test split.
   *
   * @default - a holdout of testFraction
   */
  readonly testUri?: string;
  /**
   * Share of the examples held out as the test split when there is no test file.
   *
   * @default 0.2
   */
  readonly testFraction?: number;
}

export interface CsvDatasetOptions extends DatasetOptions {
  /** The column holding the label (class names or integers), or the numeric target for regression. */
  readonly labelColumn: string;
  /**
   * The feature columns, in input order.
   *
   * @default - every column but the label
   */
  readonly featureColumns?: readonly string[];
}

export interface ImageFolderDatasetOptions extends DatasetOptions {
  /**
   * Every image is resized to [height, width] (one number: a square).
   *
   * @default [28, 28]
   */
  readonly imageSize?: readonly [number, number] | number;
}

/**
 * The data a job trains on: a built-in benchmark (`Dataset.mnist()`), or the user's own
 * data in a format (`Dataset.csv`, `Dataset.npz`, `Dataset.imageFolder`, `Dataset.idx`).
 * A URI may be https://, http://, s3:// or an absolute path on a mounted volume; in a
 * FederatedFleet it may hold `{client}`, which each client replaces with its index (each
 * site its own data).
 */
export class Dataset {
  /** MNIST (IDX files); from its public mirror unless `uri` says otherwise. */
  public static mnist(uri?: string): Dataset {
    return Dataset.builtin('mnist', uri);
  }

  /** Fashion-MNIST (IDX files); from its public mirror unless `uri` says otherwise. */
  public static fashionMnist(uri?: string): Dataset {
    return Dataset.builtin('fashion-mnist', uri);
  }

  /** CIFAR-10 (binary version); from its authors' .tar.gz unless `uri` says otherwise. */
  public static cifar10(uri?: string): Dataset {
    return Dataset.builtin('cifar10', uri);
  }

  /** A built-in dataset by name. */
  public static builtin(name: BuiltinDatasetName, uri?: string): Dataset {
    return new Dataset(name, uri, {});
  }

  /** A folder of IDX files under MNIST's file names (gzipped or plain, any count and image size). */
  public static idx(uri: string, options: DatasetOptions = {}): Dataset {
    return new Dataset('idx', uri, { testDatasetUri: options.testUri, testFraction: options.testFraction });
  }

  /** A CSV file: a header row, numeric feature columns and one label column. */
  public static csv(uri: string, options: CsvDatasetOptions): Dataset {
    return new Dataset('csv', uri, {
      labelColumn: options.labelColumn,
      featureColumns: options.featureColumns,
      testDatasetUri: options.testUri,
      testFraction: options.testFraction,
    });
  }

  /** A NumPy .npz in Keras's layout (x_train, y_train, and x_test, y_test when present). */
  public static npz(uri: string, options: DatasetOptions = {}): Dataset {
    return new Dataset('npz', uri, { testDatasetUri: options.testUri, testFraction: options.testFraction });
  }

  /** A folder of one sub-folder of PNG/JPEG files per class (train/ and test/ inside it when present). */
  public static imageFolder(uri: string, options: ImageFolderDatasetOptions = {}): Dataset {
    const size = options.imageSize;
    return new Dataset('image-folder', uri, {
      imageSize: size === undefined ? undefined : typeof size === 'number' ? `${size}x${size}` : `${size[0]}x${size[1]}`,
      testDatasetUri: options.testUri,
      testFraction: options.testFraction,
    });
  }

  private constructor(
    /** The built-in dataset or the format. */
    public readonly type: DatasetName,
    /** Where the data is. @default - the built-in dataset's public mirror */
    public readonly uri: string | undefined,
    /** The format's options, named as the flat props name them. */
    public readonly options: DatasetSourceProps,
  ) {}
}

/** The model a job trains: a built-in architecture (`Model.mlp()`) or the user's own model.json (`Model.fromUri`). */
export class Model {
  /** The built-in multi-layer perceptron. */
  public static mlp(): Model {
    return new Model('mlp', undefined);
  }

  /** The built-in convolutional network. */
  public static cnn(): Model {
    return new Model('cnn', undefined);
  }

  /** The built-in small ResNet. */
  public static resnet(): Model {
    return new Model('resnet', undefined);
  }

  /**
   * The user's TensorFlow.js LayersModel: its model.json (topology, and weights when it has
   * them) at an https://, http:// or s3:// URI, an absolute path on a mounted volume, or
   * `runs:/<run_id>/<path>` of the job's MlflowStack (a model trained by another job).
   */
  public static fromUri(uri: string): Model {
    return new Model(undefined, uri);
  }

  private constructor(
    /** The built-in architecture, when it is one. */
    public readonly builtin: ModelName | undefined,
    /** The location of the user's model.json, when it is one. */
    public readonly uri: string | undefined,
  ) {}
}

/** The flat props of the data source (what the TrainingApi sets, and what a {@link Dataset} carries). */
export interface DatasetSourceProps {
  /**
   * The test split as a file or folder of its own (csv, npz, image-folder, idx).
   *
   * @default - a seeded, stratified holdout of testFraction
   */
  readonly testDatasetUri?: string;
  /**
   * csv: the column holding the label, or the numeric target for regression.
   *
   * @default - none (required for csv)
   */
  readonly labelColumn?: string;
  /**
   * csv: the feature columns (an array, or a comma-separated string).
   *
   * @default - every column but the label
   */
  readonly featureColumns?: readonly string[] | string;
  /**
   * Share of the examples held out as the test split when there is no test file.
   *
   * @default 0.2
   */
  readonly testFraction?: number;
  /**
   * image-folder: the size images are resized to, "<height>x<width>" or one side.
   *
   * @default "28x28"
   */
  readonly imageSize?: string;
}

/** The props every training construct takes for its data, model and task. */
export interface SourceProps extends DatasetSourceProps {
  /** @default Dataset.mnist() */
  readonly dataset?: DatasetName | Dataset;
  /**
   * Where the dataset is (see {@link Dataset}); a Dataset may carry it instead.
   *
   * @default - the public mirror of a built-in dataset
   */
  readonly datasetUri?: string;
  /** @default Model.mlp() */
  readonly model?: ModelName | Model;
  /**
   * The user's model.json (see {@link Model.fromUri}); exclusive with a built-in `model`.
   *
   * @default - the built-in model
   */
  readonly modelUri?: string;
  /**
   * classification (cross-entropy; accuracy) or regression (mean squared error; RMSE, MAE, R²).
   *
   * @default "classification"
   */
  readonly task?: Task;
}

/** How a construct takes its sources. */
export interface SourceRules {
  /** {@link CLIENT_PLACEHOLDER} may stand in the dataset URI (FederatedFleet: each client its own data). */
  readonly perClientData?: boolean;
  /** An MLflow stack is set (runs:/ model URIs need it). */
  readonly tracking?: boolean;
  /** The construct has a `datasetClaimName` prop (absolute paths on it are allowed). */
  readonly claimProp?: boolean;
  /** The dataset volume claim, when set: paths under PATHS.datasets are then allowed. */
  readonly datasetClaimName?: string;
}

/** The resolved sources: trainer config fields, and the URIs the pods reach (for egress). */
export interface ResolvedSources {
  readonly config: Pick<
    TrainerConfigInput,
    | 'dataset'
    | 'datasetUri'
    | 'testDatasetUri'
    | 'labelColumn'
    | 'featureColumns'
    | 'testFraction'
    | 'imageSize'
    | 'task'
    | 'model'
    | 'modelUri'
  >;
  readonly dataset: DatasetName;
  readonly datasetUri: string;
  /** The user's model.json location, when there is one. */
  readonly modelUri?: string;
  /** Every http(s):// or s3:// location the pods read (the dataset, its test split, the model). */
  readonly remoteUris: readonly string[];
}

const REMOTE = /^(s3|https?):\/\/\S+$/;
const RUNS = /^runs:\/[^/\s]+\/\S+$/;

/** Resolve and check the dataset, model and task props; every refusal names the prop, the value and what is allowed. */
export function resolveSources(scope: Construct, props: SourceProps, rules: SourceRules = {}): ResolvedSources {
  const given = props.dataset instanceof Dataset ? props.dataset : undefined;
  const dataset = given ? given.type : checkOneOf(scope, 'dataset', (props.dataset as string | undefined) ?? 'mnist', DATASETS);
  // A Dataset carries the values the flat props would; giving both ways is refused unless they agree.
  const pick = <K extends keyof DatasetSourceProps>(prop: K): DatasetSourceProps[K] => {
    const fromDataset = given?.options[prop];
    const flat = props[prop];
    if (fromDataset !== undefined && flat !== undefined && String(fromDataset) !== String(flat)) {
      throw new PropError(scope, prop, flat, `absent, or ${JSON.stringify(String(fromDataset))} as the Dataset gives it`);
    }
    return fromDataset ?? flat;
  };
  if (given?.uri !== undefined && props.datasetUri !== undefined && given.uri !== props.datasetUri) {
    throw new PropError(scope, 'datasetUri', props.datasetUri, `absent, or ${JSON.stringify(given.uri)} as the Dataset gives it`);
  }
  const datasetUri = given?.uri ?? props.datasetUri ?? DATASET_MIRRORS[dataset];
  if (datasetUri === undefined) {
    const what = (BUILTIN_DATASETS as readonly string[]).includes(dataset)
      ? `a folder holding its files (no public mirror serves them unpacked)`
      : `where the ${dataset} data is`;
    throw new PropError(scope, 'datasetUri', undefined, `set for ${dataset}: ${what}`);
  }
  checkLocation(scope, 'datasetUri', datasetUri, rules, rules.perClientData === true);
  const testDatasetUri = pick('testDatasetUri');
  if (testDatasetUri !== undefined) checkLocation(scope, 'testDatasetUri', testDatasetUri, rules, false);

  const isUserFormat = !(BUILTIN_DATASETS as readonly string[]).includes(dataset);
  const labelColumn = pick('labelColumn');
  if (dataset === 'csv' && (labelColumn === undefined || labelColumn.trim() === '')) {
    throw new PropError(
      scope,
      'labelColumn',
      labelColumn,
      'set for csv data: the name of the column holding the label (or the regression target)',
    );
  }
  if (dataset !== 'csv' && labelColumn !== undefined)
    throw new PropError(scope, 'labelColumn', labelColumn, `absent for dataset ${dataset} (csv only)`);
  const rawColumns = pick('featureColumns');
  let featureColumns: string | undefined;
  if (rawColumns !== undefined) {
    if (dataset !== 'csv') throw new PropError(scope, 'featureColumns', rawColumns, `absent for dataset ${dataset} (csv only)`);
    const names = (typeof rawColumns === 'string' ? rawColumns.split(',') : [...rawColumns]).map((n) => n.trim());
    if (
      names.length === 0 ||
      names.some((n) => n === '' || n.includes(',')) ||
      new Set(names).size !== names.length ||
      names.includes(labelColumn ?? '')
    ) {
      throw new PropError(
        scope,
        'featureColumns',
        rawColumns,
        'distinct, non-empty column names without commas, other than the label column',
      );
    }
    featureColumns = names.join(',');
  }
  const testFraction = pick('testFraction');
  if (testFraction !== undefined && !(Number.isFinite(testFraction) && testFraction > 0 && testFraction < 1)) {
    throw new PropError(scope, 'testFraction', testFraction, 'a number in (0, 1)');
  }
  if (testFraction !== undefined && !isUserFormat)
    throw new PropError(scope, 'testFraction', testFraction, `absent for dataset ${dataset} (it has its own test split)`);
  const imageSize = pick('imageSize');
  if (imageSize !== undefined) {
    if (dataset !== 'image-folder') throw new PropError(scope, 'imageSize', imageSize, `absent for dataset ${dataset} (image-folder only)`);
    const m = /^(\d{1,4})(?:x(\d{1,4}))?$/.exec(imageSize);
    if (!m || [m[1], m[2] ?? m[1]].some((s) => Number(s) < 1 || Number(s) > 4096)) {
      throw new PropError(
        scope,
        'imageSize',
        imageSize,
        'a size "<height>x<width>" or "<side>", each from 1 to 4096 (Dataset.imageFolder: [height, width])',
      );
    }
  }
  const task = checkOneOf(scope, 'task', props.task ?? 'classification', TASKS);
  if (task === 'regression' && dataset !== 'csv' && dataset !== 'npz') {
    throw new PropError(
      scope,
      'task',
      task,
      `classification for dataset ${dataset} (regression needs csv or npz data with a numeric target)`,
    );
  }

  const givenModel = props.model instanceof Model ? props.model : undefined;
  if (props.modelUri !== undefined && props.model !== undefined) {
    throw new PropError(scope, 'modelUri', props.modelUri, `absent when 'model' is set (model and modelUri are exclusive)`);
  }
  const modelUri = givenModel ? givenModel.uri : props.modelUri;
  const model =
    givenModel?.builtin ??
    (givenModel || props.modelUri !== undefined ? 'mlp' : checkOneOf(scope, 'model', (props.model as string | undefined) ?? 'mlp', MODELS));
  const modelProp = givenModel ? 'model' : 'modelUri';
  if (modelUri !== undefined) {
    if (RUNS.test(modelUri)) {
      if (!rules.tracking)
        throw new PropError(
          scope,
          modelProp,
          modelUri,
          `a runs:/ URI only with 'tracking' set (the MlflowStack that serves the run's artifacts)`,
        );
    } else {
      checkLocation(scope, modelProp, modelUri, rules, false, `runs:/<run_id>/<path> (with 'tracking'), `);
    }
  }

  const remoteUris = [datasetUri, testDatasetUri, modelUri].filter((u): u is string => u !== undefined && REMOTE.test(u));
  return {
    config: {
      dataset,
      datasetUri,
      testDatasetUri,
      labelColumn,
      featureColumns,
      testFraction,
      imageSize,
      task,
      model,
      modelUri,
    },
    dataset,
    datasetUri,
    modelUri,
    remoteUris: remoteUris.map((u) => u.split(CLIENT_PLACEHOLDER).join('0')),
  };
}

/** An http(s):// or s3:// URI, or (constructs that mount a dataset claim) an absolute path on that claim. */
function checkLocation(scope: Construct, prop: string, value: string, rules: SourceRules, placeholder: boolean, also = ''): void {
  const onClaim = rules.claimProp ? `, or a path under ${PATHS.datasets}/ together with 'datasetClaimName'` : '';
  const allowed = `${also}an http(s):// or s3:// URL${onClaim}`;
  if (value.includes(CLIENT_PLACEHOLDER) && !placeholder) {
    throw new PropError(
      scope,
      prop,
      value,
      `${allowed}, without ${CLIENT_PLACEHOLDER} (only a FederatedFleet gives each client its own data)`,
    );
  }
  const concrete = value.split(CLIENT_PLACEHOLDER).join('0');
  if (REMOTE.test(concrete)) {
    try {
      new URL(concrete);
      return;
    } catch {
      throw new PropError(scope, prop, value, allowed);
    }
  }
  if (rules.datasetClaimName !== undefined && concrete.startsWith(`${PATHS.datasets}/`) && !concrete.split('/').includes('..')) return;
  throw new PropError(scope, prop, value, allowed);
}
