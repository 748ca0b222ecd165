/**
 * The Tensorfleet app: every chart synthesized into dist/ (what `kubectl apply`
 * and Argo CD apply), and the Argo CD Application into dist/argocd/ (applied
 * once, by hand, into the Argo CD namespace).
 */
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { Dataset, DdpCluster, FederatedFleet, GitOpsApplication, MlflowStack, Model, SplitLearning, TrainingApi } from './charts';

const outdir = process.env.CDK8S_OUTDIR ?? 'dist';
/** The repository Argo CD syncs: point it at your fork. */
const REPO_URL = 'https://github.com/tensorfleet/tensorfleet.git';

export function buildApp(dir: string): App {
  const app = new App({ outdir: dir });
  const chart = (id: string): Chart => new Chart(app, id, { disableResourceNameHashes: true });
  // One tracking stack for every training chart of the namespace.
  const tracking = new MlflowStack(chart('mlflow'), 'Mlflow');
  new DdpCluster(chart('ddp-mnist'), 'DdpMnist', {
    worldSize: 2,
    model: 'mlp',
    dataset: 'mnist',
    epochs: 12,
    batchSize: 128,
    learningRate: 0.001,
    optimizer: 'adam',
    learningRateSchedule: 'cosine',
    tracking,
  });
  new DdpCluster(chart('ddp-cifar'), 'DdpCifar', {
    worldSize: 2,
    model: 'resnet',
    dataset: 'cifar10', // from its authors' cifar-10-binary.tar.gz, unpacked into each rank's cache
    epochs: 30,
    batchSize: 128,
    learningRate: 0.001,
    optimizer: 'adam',
    spreadOverNodes: true,
    resources: { cpuRequestMillis: 2000, cpuLimitMillis: 4000, memoryRequestMiB: 4096, memoryLimitMiB: 8192 },
    tracking,
  });
  // Your own model on your own data: a Keras model converted to model.json (topology only: initialized
  // from the seed on every rank) trained on a CSV in a bucket, 20% of it held out as the test split.
  new DdpCluster(chart('ddp-tabular'), 'DdpTabular', {
    worldSize: 2,
    dataset: Dataset.csv('s3://tensorfleet-data/tabular/breast-cancer-wisconsin.csv', { labelColumn: 'diagnosis', testFraction: 0.2 }),
    model: Model.fromUri('s3://tensorfleet-data/models/breast-cancer/model.json'),
    datasetS3Endpoint: 'https://s3.eu-central-1.amazonaws.com',
    epochs: 30,
    batchSize: 32,
    learningRate: 0.001,
    optimizer: 'adam',
    resources: { cpuRequestMillis: 500, cpuLimitMillis: 1000, memoryRequestMiB: 512, memoryLimitMiB: 1024 },
    tracking,
  });
  // Flower's defaults: 2 clients, 5 rounds.
  new FederatedFleet(chart('fl-mnist'), 'FlMnist', {
    clients: 2,
    minFitClients: 2,
    minAvailableClients: 2,
    rounds: 5,
    strategy: 'fedavg',
    localEpochs: 1,
    batchSize: 32,
    learningRate: 0.05,
    model: 'mlp',
    dataset: 'mnist',
    tracking,
  });
  // Clients on Liqo-peered clusters, the server here; FedProx for heterogeneous sites.
  new FederatedFleet(chart('fl-liqo'), 'FlLiqo', {
    clients: 4,
    minFitClients: 3,
    minAvailableClients: 3,
    fractionFit: 0.75,
    rounds: 20,
    strategy: 'fedprox',
    proximalMu: 0.01,
    partition: 'dirichlet',
    dirichletAlpha: 0.5,
    model: 'mlp',
    dataset: 'mnist',
    multiCluster: true,
    tracking,
  });
  // One client holds MNIST and the first layers; the server trains the rest.
  new SplitLearning(chart('split-mnist'), 'SplitMnist', {
    clients: 1,
    mode: 'vanilla',
    cutLayer: 2,
    model: 'mlp',
    dataset: 'mnist',
    epochs: 12,
    batchSize: 64,
    learningRate: 0.001,
    optimizer: 'adam',
    tracking,
  });
  // POST /jobs builds any of the above in this namespace; jobs report to the same tracking stack.
  new TrainingApi(chart('training-api'), 'TrainingApi', { tracking });
  return app;
}

export function buildGitOpsApp(dir: string): App {
  const app = new App({ outdir: join(dir, 'argocd') });
  new GitOpsApplication(new Chart(app, 'application', { disableResourceNameHashes: true }), 'Tensorfleet', {
    repoUrl: REPO_URL,
    path: 'dist',
    targetRevision: 'main',
    destinationNamespace: 'tensorfleet',
  });
  return app;
}

if (require.main === module) {
  buildApp(outdir).synth();
  buildGitOpsApp(outdir).synth();
}
