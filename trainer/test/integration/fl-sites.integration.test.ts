/**
 * Multi-process federated learning on per-site data: a real `fl-server` and
 * 3 real `fl-client`s (runFleet) on 127.0.0.1, each client reading its own
 * CSV file (TENSORFLEET_DATASET_URI holds {client}) written by the test from
 * ../shared/data/tabular/iris.csv, each with a different class mix and every
 * class at least 10 times (so each site's stratified holdout has every class).
 * The server holds no data: it builds the model for client 0's data and the
 * run's test metrics are the federated evaluation's (each site scores the
 * global model on its own holdout after every round; the example-weighted
 * mean), reported per round beside each site's own figures. The model is the
 * user's own model.json (Dense layers, written by the test). A site whose file
 * has another class set is refused with a message naming the client, its data
 * and the model, while the others train.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ENV, type TrainerEvent } from '../../src/contract';
import { type FleetEvent, runFleet } from '../../src/local/run-fleet';
import type { ModelMetadata } from '../../src/model/io';
import { SHARED_DIR } from '../../../tools/test-support/paths';

const IRIS = join(SHARED_DIR, 'data', 'tabular', 'iris.csv');
const CLIENTS = 3;
const ROUNDS = 4;
const CLASSES = ['setosa', 'versicolor', 'virginica'];
const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
/** Rows of each class per site: every site holds every class, each site another mix (the 50 rows of a class are not shared). */
const MIX = [
  [30, 10, 10],
  [10, 30, 10],
  [10, 10, 30],
];

function ofType<E extends TrainerEvent['event']>(
  events: readonly FleetEvent[],
  name: E,
  source?: 'server' | number,
): Extract<FleetEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (source === undefined || e.source === source)) as Extract<FleetEvent, { event: E }>[];
}

/** The user's model.json (topology only, initialized from the job's seed): 4 features -> 16 -> 3 classes (softmax). */
async function writeIrisModel(dir: string): Promise<string> {
  const model = tf.sequential({
    name: 'iris_mlp',
    layers: [
      tf.layers.dense({ name: 'hidden', units: 16, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'species', units: 3, activation: 'softmax' }),
    ],
  });
  const path = join(dir, 'iris-model.json');
  await writeFile(
    path,
    JSON.stringify({
      format: 'layers-model',
      generatedBy: 'test',
      convertedBy: null,
      modelTopology: model.toJSON(null, false),
      weightsManifest: [],
    }),
  );
  model.dispose();
  return path;
}

/** Write site-<k>.csv for every site from iris.csv (rows sorted by class); `renameAt`'s file calls virginica `renamedClass`. */
async function writeSites(dir: string, options: { renamedClass?: string; renameAt?: number } = {}): Promise<string> {
  const [header, ...rows] = (await readFile(IRIS, 'utf8')).trim().split('\n');
  const columns = header.split(',');
  const byClass = new Map<string, string[]>(CLASSES.map((c) => [c, []]));
  for (const row of rows) byClass.get(row.split(',')[columns.indexOf('species')])!.push(row);
  const taken = new Map<string, number>(CLASSES.map((c) => [c, 0]));
  for (let site = 0; site < CLIENTS; site++) {
    const keep = (cells: string[]): string =>
      cells.map((cell) => (site === options.renameAt && cell === 'virginica' ? options.renamedClass! : cell)).join(',');
    const lines = [keep(columns)];
    CLASSES.forEach((c, k) => {
      const start = taken.get(c)!;
      for (const row of byClass.get(c)!.slice(start, start + MIX[site][k])) lines.push(keep(row.split(',')));
      taken.set(c, start + MIX[site][k]);
    });
    await writeFile(join(dir, `site-${site}.csv`), `${lines.join('\n')}\n`);
  }
  return join(dir, 'site-{client}.csv');
}

async function sitesEnv(dir: string, datasetUri: string, overrides: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    [ENV.jobName]: 'fl-sites-it',
    [ENV.dataset]: 'csv',
    [ENV.datasetUri]: datasetUri,
    [ENV.labelColumn]: 'species',
    [ENV.modelUri]: await writeIrisModel(dir),
    [ENV.seed]: '3',
    [ENV.epochs]: '10',
    [ENV.batchSize]: '8',
    [ENV.learningRate]: '0.1',
    [ENV.timeoutMs]: '20000',
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
    [ENV.rounds]: String(ROUNDS),
    [ENV.minFitClients]: '2',
    [ENV.minAvailableClients]: '2',
    [ENV.roundTimeoutMs]: '30000',
    ...overrides,
  };
}

async function fleet(env: Record<string, string>): Promise<Awaited<ReturnType<typeof runFleet>> & { log: string }> {
  const lines: string[] = [];
  const result = await runFleet({
    serverEnv: env,
    clientEnv: env,
    clients: CLIENTS,
    timeoutMs: 120_000,
    onLine: (source, line) => lines.push(`[${source}] ${line}`),
  });
  return { ...result, log: lines.slice(-40).join('\n') };
}

describe('federated learning on per-site data (iris, 3 sites with their own files)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-fl-sites-it-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('every site trains on its own file; each round reports the federated test metrics beside each site figures', async (t) => {
    const dir = join(root, 'iris');
    await mkdir(dir, { recursive: true });
    const env = await sitesEnv(dir, await writeSites(dir));
    const run = await fleet(env);
    assert.equal(run.serverExit, 0, run.log);
    assert.deepEqual(run.clientExits, [0, 0, 0], run.log);
    assert.match(run.log, /\[server\] fl-server: per-site data: the model is built for client 0's data .*site-0\.csv/);

    const rounds = ofType(run.events, 'round', 'server');
    assert.deepEqual(
      rounds.map((r) => [r.round, r.clients, r.failures]),
      [
        [1, 3, 0],
        [2, 3, 0],
        [3, 3, 0],
        [4, 3, 0],
      ],
    );
    for (const round of rounds) {
      const sites = round.siteMetrics!;
      assert.deepEqual(Object.keys(sites).sort(), ['0', '1', '2'], `round ${round.round}`);
      // Each site's holdout (20% of 50 rows, stratified) holds every class: 10 examples.
      for (const site of Object.values(sites)) assert.equal(site.numExamples, 10);
      // The round's test accuracy is the example-weighted mean of the sites' own.
      const total = Object.values(sites).reduce((sum, s) => sum + s.numExamples, 0);
      const weighted = Object.values(sites).reduce((sum, s) => sum + s.testAccuracy! * s.numExamples, 0) / total;
      assert.ok(Math.abs(round.testAccuracy! - weighted) < 1e-9, `round ${round.round}: ${round.testAccuracy} vs ${weighted}`);
      assert.ok(Number.isFinite(round.testLoss));
    }
    const [initial] = ofType(run.events, 'eval', 'server');
    const [done] = ofType(run.events, 'done', 'server');
    assert.equal(done.testAccuracy, rounds[ROUNDS - 1].testAccuracy);
    assert.deepEqual(
      done.accuracyPerRound,
      rounds.map((r) => r.testAccuracy),
    );
    assert.deepEqual(done.siteMetrics, rounds[ROUNDS - 1].siteMetrics);
    assert.ok(
      done.testAccuracy! > 0.8,
      `federated test accuracy ${done.testAccuracy} after ${ROUNDS} rounds (untrained ${initial.testAccuracy})`,
    );
    assert.ok(done.testAccuracy! > initial.testAccuracy!, 'the global model learns');
    t.diagnostic(
      `federated test accuracy per round ${done.accuracyPerRound!.join(', ')} (untrained ${initial.testAccuracy}); ` +
        `sites ${JSON.stringify(done.siteMetrics)}`,
    );
    // Every client reports its own holdout's figures for the final global model.
    for (let rank = 0; rank < CLIENTS; rank++) {
      const [clientDone] = ofType(run.events, 'done', rank);
      assert.equal(clientDone.rounds, ROUNDS);
      assert.equal(clientDone.testAccuracy, done.siteMetrics![String(rank)].testAccuracy);
    }
    const metadata = JSON.parse(await readFile(join(done.modelPath, 'metadata.json'), 'utf8')) as ModelMetadata;
    assert.deepEqual(metadata.standardization, { mode: 'per-site' });
    assert.deepEqual(metadata.classNames, CLASSES);
    assert.deepEqual(metadata.featureNames, FEATURES);
    assert.deepEqual(metadata.inputShape, [4]);
    assert.equal(metadata.task, 'classification');
    assert.equal(metadata.testAccuracy, done.testAccuracy);
  });

  test('a site whose data has another class set is refused, naming the client, its data and the model; the others train', async () => {
    const dir = join(root, 'refused');
    await mkdir(dir, { recursive: true });
    const env = await sitesEnv(dir, await writeSites(dir, { renamedClass: 'virginica_x', renameAt: 2 }), { [ENV.rounds]: '2' });
    const run = await fleet(env);
    assert.equal(run.serverExit, 0, run.log);
    assert.deepEqual(run.clientExits.slice(0, 2), [0, 0], run.log);
    assert.notEqual(run.clientExits[2], 0);
    const [refused] = ofType(run.events, 'error', 2);
    assert.equal(refused.code, 'TRAINER_ERR_DATASET');
    const features = `features (${FEATURES.join(', ')})`;
    assert.equal(
      refused.message,
      `the federated server refused this client: ` +
        `fl-client 2's data ${join(dir, 'site-2.csv')} (input shape [4], ${features}, 3 classes (setosa, versicolor, virginica_x)) ` +
        `does not fit the model (${join(dir, 'iris-model.json')}, built for client 0's data: ` +
        `input shape [4], ${features}, 3 classes (${CLASSES.join(', ')}))`,
    );
    assert.deepEqual(
      ofType(run.events, 'round', 'server').map((r) => [r.round, r.clients, Object.keys(r.siteMetrics ?? {}).sort()]),
      [
        [1, 2, ['0', '1']],
        [2, 2, ['0', '1']],
      ],
    );
  });
});
