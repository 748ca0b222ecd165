/**
 * What a federated client declares about its data (in its hello), so that a
 * server that holds no data (per-site mode: the dataset URI holds {client})
 * can build the model, and refuse a client whose data does not fit it: another
 * feature shape, task, or class set. The declaration is a peer's claim: it is
 * checked before use.
 */
import { TASKS, type Task } from '../contract/env';
import type { Dataset } from '../data/examples';

/** The key of the description in a client's hello info. */
export const DATA_INFO_KEY = 'data';
/** The key of the client's example counts in its hello info ({@link DeclaredExamples}). */
export const EXAMPLES_INFO_KEY = 'examples';

/**
 * How many examples a client trains and evaluates on, as it declares at hello: the most
 * a fit (train) or evaluation (test) result of that client may claim.
 */
export interface DeclaredExamples {
  readonly train: number;
  readonly test: number;
}

/** The example counts a client's hello info declares, or undefined when it declares none (or invalid ones). */
export function parseDeclaredExamples(info: unknown): DeclaredExamples | undefined {
  const raw = typeof info === 'object' && info !== null ? (info as Record<string, unknown>)[EXAMPLES_INFO_KEY] : undefined;
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { train, test } = raw as Record<string, unknown>;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  return count(train) && count(test) ? { train, test } : undefined;
}

/** Everything the model depends on, and what names the data in messages. */
export interface DataDescription {
  /** Shape of one example. */
  readonly featureShape: readonly number[];
  readonly task: Task;
  /** Classification: number of classes; regression: 0. */
  readonly numClasses: number;
  /** Classification: the name of each class index, when the data names them. */
  readonly classNames?: readonly string[];
  /** Tables: the feature column names, in input order. */
  readonly featureNames?: readonly string[];
  /** Where the data came from (the resolved dataset URI or the dataset name), for messages. */
  readonly source: string;
}

/** The description of a loaded dataset. */
export function describeData(data: Dataset, source: string): DataDescription {
  return {
    featureShape: [...data.featureShape],
    task: data.task,
    numClasses: data.numClasses,
    ...(data.classNames === undefined ? {} : { classNames: [...data.classNames] }),
    ...(data.featureNames === undefined ? {} : { featureNames: [...data.featureNames] }),
    source,
  };
}

const MAX_NAMES = 100_000;

function names(raw: unknown): string[] | undefined | false {
  if (raw === undefined || raw === null) return undefined;
  return Array.isArray(raw) && raw.length <= MAX_NAMES && raw.every((n) => typeof n === 'string') ? (raw as string[]) : false;
}

/** A description from a client's hello info, or why it is not one. */
export function parseDataDescription(info: unknown): DataDescription | string {
  const raw = typeof info === 'object' && info !== null ? (info as Record<string, unknown>)[DATA_INFO_KEY] : undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'its hello declares no data description';
  const d = raw as Record<string, unknown>;
  const shape = d.featureShape;
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 8 || !shape.every((n) => Number.isSafeInteger(n) && (n as number) >= 1)) {
    return `its data description has an invalid featureShape ${JSON.stringify(shape ?? null)}`;
  }
  if (typeof d.task !== 'string' || !(TASKS as readonly string[]).includes(d.task))
    return `its data description has an invalid task ${JSON.stringify(d.task ?? null)}`;
  const task = d.task as Task;
  const numClasses = d.numClasses;
  if (!Number.isSafeInteger(numClasses) || (task === 'classification' ? (numClasses as number) < 2 : numClasses !== 0)) {
    return `its data description has an invalid numClasses ${JSON.stringify(numClasses ?? null)} for task ${task}`;
  }
  const classNames = names(d.classNames);
  const featureNames = names(d.featureNames);
  if (classNames === false || (classNames !== undefined && classNames.length !== numClasses))
    return `its data description has invalid classNames`;
  if (featureNames === false) return `its data description has invalid featureNames`;
  const source = typeof d.source === 'string' ? d.source.slice(0, 1000) : 'unnamed data';
  return {
    featureShape: shape as number[],
    task,
    numClasses: numClasses as number,
    ...(classNames === undefined ? {} : { classNames }),
    ...(featureNames === undefined ? {} : { featureNames }),
    source,
  };
}

/** "input shape [4], features (a, b, c, d), 3 classes (setosa, versicolor, virginica)" or "..., regression". */
export function formatDataDescription(d: Omit<DataDescription, 'source'>): string {
  const features = d.featureNames ? `, features (${d.featureNames.join(', ')})` : '';
  const target = d.task === 'regression' ? 'regression' : `${d.numClasses} classes${d.classNames ? ` (${d.classNames.join(', ')})` : ''}`;
  return `input shape [${d.featureShape.join(', ')}]${features}, ${target}`;
}

function sameList(a: readonly (string | number)[] | undefined, b: readonly (string | number)[] | undefined): boolean {
  return a === undefined || b === undefined || (a.length === b.length && a.every((v, i) => v === b[i]));
}

/** Whether data of description `site` fits a model built for `model` (feature shape, task, classes, feature names). */
export function dataFits(site: DataDescription, model: Omit<DataDescription, 'source'>): boolean {
  return (
    sameList(site.featureShape, model.featureShape) &&
    site.featureShape.length === model.featureShape.length &&
    site.task === model.task &&
    site.numClasses === model.numClasses &&
    sameList(site.classNames, model.classNames) &&
    sameList(site.featureNames, model.featureNames)
  );
}

/**
 * Why client `clientId` cannot join, or undefined when its data fits the model:
 * names the client, its data and the model.
 */
export function dataMismatch(
  clientId: string,
  site: DataDescription | string,
  model: Omit<DataDescription, 'source'>,
  modelName: string,
): string | undefined {
  const modelText = `the model (${modelName}: ${formatDataDescription(model)})`;
  if (typeof site === 'string') return `fl-client ${clientId} cannot join: ${site}; the server trains ${modelText}`;
  if (dataFits(site, model)) return undefined;
  return `fl-client ${clientId}'s data ${site.source} (${formatDataDescription(site)}) does not fit ${modelText}`;
}
