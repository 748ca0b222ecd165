import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import {
  NamespaceOffloading,
  NamespaceOffloadingSpecNamespaceMappingStrategy,
  NamespaceOffloadingSpecPodOffloadingStrategy,
} from '../imports/offloading.liqo.io';
import { OPTIMIZERS, OptimizerName, PARTITIONS, PORTS, PartitionName, STRATEGIES, StrategyName } from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { LinkTls } from './lib/link-tls';
import { PropError, checkImage, checkInt, checkOneOf, checkPositive, nameOf } from './lib/props';
import { ServerAndClients, SharedTrainerConfig } from './lib/server-and-clients';
import { SourceProps, resolveSources } from './lib/sources';
import { DEFAULT_TRAINER_IMAGE } from './lib/trainer-container';
import { ResourceSpec, objectLabels } from './lib/workload';

/** Liqo's virtual nodes: the label they carry and the taint that keeps ordinary pods off them. */
export const LIQO = {
  virtualNodeLabel: 'liqo.io/type',
  virtualNodeValue: 'virtual-node',
  taintKey: 'virtual-node.liqo.io/not-allowed',
  /** Liqo only acts on a NamespaceOffloading of this name. */
  offloadingName: 'offloading',
} as const;

export interface FederatedFleetProps extends SourceProps {
  /** @default - the construct id in kebab-case */
  readonly name?: string;
  /** @default - the Tensorfleet trainer image */
  readonly image?: string;
  /**
   * Client pods (a StatefulSet: ordinal i trains on partition i).
   *
   * @default 2
   */
  readonly clients?: number;
  /** @default 2 */
  readonly minFitClients?: number;
  /** @default 2 */
  readonly minAvailableClients?: number;
  /**
   * Share of the connected clients sampled each round.
   *
   * @default 1
   */
  readonly fractionFit?: number;
  /** @default 5 */
  readonly rounds?: number;
  /** @default 600 */
  readonly roundTimeoutSeconds?: number;
  /** @default "fedavg" */
  readonly strategy?: StrategyName;
  /** FedProx proximal term. @default 0 */
  readonly proximalMu?: number;
  /**
   * Server learning rate (FedAvgM, FedAdam, FedYogi, FedAdagrad).
   * @default - 0.1 for FedAdam, FedYogi and FedAdagrad (Flower's eta), else 1
   */
  readonly serverLearningRate?: number;
  /** FedAvgM momentum. @default 0 */
  readonly serverMomentum?: number;
  /** FedTrimmedAvg: share trimmed from each end. @default 0.2 */
  readonly trimBeta?: number;
  /** Krum / Multi-Krum: Byzantine clients tolerated. @default 0 */
  readonly byzantineClients?: number;
  /** Central differential privacy: clip each update to this L2 norm (0 = off). @default 0 */
  readonly dpClipNorm?: number;
  /** Central differential privacy: noise standard deviation over the clip norm. @default 0 */
  readonly dpNoiseMultiplier?: number;
  /** @default 1 */
  readonly localEpochs?: number;
  /** @default 32 */
  readonly batchSize?: number;
  /** Clients' local learning rate. @default 0.05 */
  readonly learningRate?: number;
  /** @default "sgd" */
  readonly optimizer?: OptimizerName;
  /** @default "iid" */
  readonly partition?: PartitionName;
  /** Dirichlet concentration for label skew. @default 0.5 */
  readonly dirichletAlpha?: number;
  /**
   * Where the dataset is (https://, http:// or s3://). With `{client}` in it, each client
   * replaces that with its index (its StatefulSet ordinal) and trains on its own data, e.g.
   * `s3://hospital-data/site-{client}/records.csv`; without, the clients share one dataset
   * out by `partition` (a simulation). A {@link Dataset} may carry it instead.
   *
   * @default - the public mirror of a built-in dataset
   */
  readonly datasetUri?: string;
  /** Training examples shared out among the clients (0 = all). @default 0 */
  readonly datasetSize?: number;
  /** @default 42 */
  readonly seed?: number;
  /** @default - no tracking server; the server writes an MLflow file store */
  readonly tracking?: MlflowStack;
  /** @default - 500m/2000m CPU, 1024/2048 MiB */
  readonly serverResources?: ResourceSpec;
  /** @default - 500m/2000m CPU, 1024/2048 MiB */
  readonly clientResources?: ResourceSpec;
  /**
   * Size of the server's volume for its per-round checkpoint (it resumes after a restart).
   *
   * @default 1
   */
  readonly serverStateGiB?: number;
  /**
   * Spread the clients over Liqo peered clusters: a NamespaceOffloading for the
   * namespace, clients scheduled on virtual nodes only, the server on local nodes.
   *
   * @default false
   */
  readonly multiCluster?: boolean;
  /**
   * With multiCluster: labels of the remote clusters' virtual nodes that may run clients.
   *
   * @default - every peered cluster
   */
  readonly remoteClusterLabels?: Readonly<Record<string, string>>;
  /**
   * Encrypt the links between the server and the clients (wss://) with this Secret.
   *
   * @default - no TLS: ws://, behind the bearer token and the NetworkPolicies
   */
  readonly tls?: LinkTls;
}

const DEFAULT_RESOURCES: ResourceSpec = { cpuRequestMillis: 500, cpuLimitMillis: 2000, memoryRequestMiB: 1024, memoryLimitMiB: 2048 };

/**
 * Federated learning: one aggregation server (Deployment + ClusterIP Service)
 * and N clients (a StatefulSet, ordinal = data partition) that register with a
 * bearer token, train locally and send their weights back each round.
 */
export class FederatedFleet extends Construct {
  public readonly name: string;
  public readonly clients: number;
  public readonly serverServiceName: string;
  /** The server, the clients, their Services and policies. */
  public readonly fleet: ServerAndClients;
  public readonly serverPodLabels: Readonly<Record<string, string>>;
  public readonly clientPodLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: FederatedFleetProps = {}) {
    super(scope, id);
    this.name = nameOf(this, props.name, 40);
    const image = checkImage(this, 'image', props.image ?? DEFAULT_TRAINER_IMAGE);
    this.clients = checkInt(this, 'clients', props.clients ?? 2, 1, 10_000);
    const minAvailableClients = checkInt(
      this,
      'minAvailableClients',
      props.minAvailableClients ?? Math.min(2, this.clients),
      1,
      this.clients,
    );
    const minFitClients = checkInt(this, 'minFitClients', props.minFitClients ?? Math.min(2, this.clients), 1, minAvailableClients);
    const fractionFit = props.fractionFit ?? 1;
    if (!(fractionFit > 0 && fractionFit <= 1)) throw new PropError(this, 'fractionFit', fractionFit, 'a number in (0, 1]');
    const sources = resolveSources(this, props, { tracking: props.tracking !== undefined, perClientData: true });
    for (const [prop, value] of Object.entries({
      proximalMu: props.proximalMu,
      serverMomentum: props.serverMomentum,
      dpClipNorm: props.dpClipNorm,
      dpNoiseMultiplier: props.dpNoiseMultiplier,
    })) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new PropError(this, prop, value, 'a number >= 0');
    }
    const trimBeta = props.trimBeta ?? 0.2;
    if (!(trimBeta >= 0 && trimBeta < 0.5)) throw new PropError(this, 'trimBeta', trimBeta, 'a number in [0, 0.5)');
    if ((props.dpNoiseMultiplier ?? 0) > 0 && !(props.dpClipNorm && props.dpClipNorm > 0)) {
      throw new PropError(
        this,
        'dpClipNorm',
        props.dpClipNorm,
        "a number > 0 when 'dpNoiseMultiplier' is set (noise is scaled by the clip norm)",
      );
    }
    const strategy = checkOneOf(this, 'strategy', props.strategy ?? 'fedavg', STRATEGIES);
    const byzantineClients = checkInt(this, 'byzantineClients', props.byzantineClients ?? 0, 0, this.clients);
    if ((strategy === 'krum' || strategy === 'multikrum') && minFitClients < 2 * byzantineClients + 3) {
      throw new PropError(
        this,
        'minFitClients',
        minFitClients,
        `at least 2 x byzantineClients + 3 (${2 * byzantineClients + 3}) for ${strategy}`,
      );
    }
    const stateGiB = checkInt(this, 'serverStateGiB', props.serverStateGiB ?? 1, 1);

    const tls = props.tls?.validate(this, 'tls');
    const config: SharedTrainerConfig = {
      ...sources.config,
      datasetSize: checkInt(this, 'datasetSize', props.datasetSize ?? 0, 0),
      epochs: props.localEpochs ?? 1,
      batchSize: props.batchSize ?? 32,
      learningRate: checkPositive(this, 'learningRate', props.learningRate ?? 0.05),
      optimizer: checkOneOf(this, 'optimizer', props.optimizer ?? 'sgd', OPTIMIZERS),
      seed: props.seed ?? 42,
      experimentName: this.name,
      rounds: props.rounds ?? 5,
      minFitClients,
      minAvailableClients,
      fractionFit,
      roundTimeoutMs: checkInt(this, 'roundTimeoutSeconds', props.roundTimeoutSeconds ?? 600, 1) * 1000,
      strategy,
      proximalMu: props.proximalMu ?? 0,
      serverLearningRate: checkPositive(
        this,
        'serverLearningRate',
        props.serverLearningRate ?? (['fedadam', 'fedyogi', 'fedadagrad'].includes(strategy) ? 0.1 : 1),
      ),
      serverMomentum: props.serverMomentum ?? 0,
      trimBeta,
      byzantineClients,
      dpClipNorm: props.dpClipNorm ?? 0,
      dpNoiseMultiplier: props.dpNoiseMultiplier ?? 0,
      partition: checkOneOf(this, 'partition', props.partition ?? 'iid', PARTITIONS),
      dirichletAlpha: checkPositive(this, 'dirichletAlpha', props.dirichletAlpha ?? 0.5),
      // A Deployment and a StatefulSet restart a process that exits: once the rounds are over, idle.
      afterDone: 'idle',
    };

    this.fleet = new ServerAndClients(this, 'Fleet', {
      name: this.name,
      appName: 'federated-fleet',
      image,
      serverRole: 'fl-server',
      clientRole: 'fl-client',
      port: { name: 'fl', number: PORTS.federated },
      clients: this.clients,
      config,
      propOf: { epochs: 'localEpochs', roundTimeoutMs: 'roundTimeoutSeconds' },
      serverResources: props.serverResources ?? DEFAULT_RESOURCES,
      clientResources: props.clientResources ?? DEFAULT_RESOURCES,
      tracking: props.tracking,
      remoteUris: sources.remoteUris,
      serverStateGiB: stateGiB,
      // Offloaded clients arrive through Liqo's gateway with remapped addresses: pod
      // selectors cannot name them, so the bearer token is the gate in that case.
      serverOpenToAnyAddress: props.multiCluster,
      tls,
    });
    this.serverServiceName = this.fleet.serverService.name;
    this.serverPodLabels = this.fleet.serverPodLabels;
    this.clientPodLabels = this.fleet.clientPodLabels;

    if (props.multiCluster) {
      // Server on local nodes, clients on Liqo's virtual nodes (tolerating their taint).
      this.fleet.server.scheduling.attract(kplus.Node.labeled(kplus.NodeLabelQuery.notIn(LIQO.virtualNodeLabel, [LIQO.virtualNodeValue])));
      const remote = Object.entries(props.remoteClusterLabels ?? {}).map(([key, value]) => kplus.NodeLabelQuery.in(key, [value]));
      const virtual = kplus.NodeLabelQuery.in(LIQO.virtualNodeLabel, [LIQO.virtualNodeValue]);
      this.fleet.clients.scheduling.attract(kplus.Node.labeled(virtual, ...remote));
      this.fleet.clients.scheduling.tolerate(
        kplus.Node.tainted(kplus.NodeTaintQuery.exists(LIQO.taintKey, { effect: kplus.TaintEffect.NO_EXECUTE })),
      );
      new NamespaceOffloading(this, 'Offloading', {
        metadata: { name: LIQO.offloadingName, labels: objectLabels('federated-fleet', this.name, 'offloading') },
        spec: {
          namespaceMappingStrategy: NamespaceOffloadingSpecNamespaceMappingStrategy.DEFAULT_NAME,
          // Placement is up to each pod's affinity: server local, clients remote.
          podOffloadingStrategy: NamespaceOffloadingSpecPodOffloadingStrategy.LOCAL_AND_REMOTE,
          ...(props.remoteClusterLabels
            ? {
                clusterSelector: {
                  nodeSelectorTerms: [
                    {
                      matchExpressions: Object.entries(props.remoteClusterLabels).map(([key, value]) => ({
                        key,
                        operator: 'In',
                        values: [value],
                      })),
                    },
                  ],
                },
              }
            : {}),
        },
      });
    }
  }
}
