import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import {
  ENV,
  ModelName,
  OPTIMIZERS,
  OptimizerName,
  PORTS,
  SECRET_KEYS,
  SPLIT_MODES,
  SplitMode,
  TrainerConfigInput,
  resolveTrainerConfig,
} from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { GeneratedSecrets } from './lib/generated-secrets';
import { dnsEgress, podPeer, sourcesEgress, tcpPorts } from './lib/network';
import { SourceProps, resolveSources } from './lib/sources';
import { PropError, checkDnsLabel, checkImage, checkInt, checkOneOf, checkPositive, kebab } from './lib/props';
import { DEFAULT_TRAINER_IMAGE, trainerContainer, trainerPodLabels, trainerPodSecurityContext, trainerVolumes } from './lib/trainer-container';
import { ResourceSpec, objectLabels, selectorLabels } from './lib/workload';

/** Layers of each model that can be split between them (dense/conv blocks, not counting the output layer). */
export const SPLITTABLE_LAYERS: Readonly<Record<ModelName, number>> = { mlp: 3, cnn: 4, resnet: 6 };

export interface SplitLearningProps extends SourceProps {
  /** @default - the construct id in kebab-case */
  readonly name?: string;
  /** @default - the Tensorfleet trainer image */
  readonly image?: string;
  /**
   * Vanilla (labels go to the server), U-shaped (labels and the head stay on the
   * client), sequential (clients take turns) or SplitFed (client parts averaged).
   *
   * @default "vanilla"
   */
  readonly mode?: SplitMode;
  /**
   * Layers of the model kept on the client (the bottom); the rest is on the server.
   *
   * @default 1
   */
  readonly cutLayer?: number;
  /**
   * The name of the last layer kept on the client: the user's model cut by name (exclusive
   * with cutLayer).
   *
   * @default - cut by cutLayer
   */
  readonly cutLayerName?: string;
  /** @default 1 */
  readonly clients?: number;
  /**
   * Where the dataset is (https://, http:// or s3://); a {@link Dataset} may carry it instead.
   *
   * @default - the public mirror of a built-in dataset
   */
  readonly datasetUri?: string;
  /** @default 0 (all) */
  readonly datasetSize?: number;
  /** @default 12 */
  readonly epochs?: number;
  /** @default 64 */
  readonly batchSize?: number;
  /** @default 0.001 */
  readonly learningRate?: number;
  /** @default "adam" */
  readonly optimizer?: OptimizerName;
  /**
   * Standard deviation of Gaussian noise added to the smashed data (0 = none).
   *
   * @default 0
   */
  readonly noiseSigma?: number;
  /** @default 42 */
  readonly seed?: number;
  /** @default - no tracking server; the server writes an MLflow file store */
  readonly tracking?: MlflowStack;
  /** @default - 500m/2000m CPU, 1024/2048 MiB */
  readonly serverResources?: ResourceSpec;
  /** @default - 500m/2000m CPU, 1024/2048 MiB */
  readonly clientResources?: ResourceSpec;
}

const DEFAULT_RESOURCES: ResourceSpec = { cpuRequestMillis: 500, cpuLimitMillis: 2000, memoryRequestMiB: 1024, memoryLimitMiB: 2048 };

/**
 * Split learning: clients hold the data and the bottom of the model, the server
 * the top; activations and gradients stream as msgpack tensor frames over
 * WebSocket, behind a bearer token generated in the cluster.
 */
export class SplitLearning extends Construct {
  public readonly name: string;
  public readonly clients: number;
  public readonly serverServiceName: string;

  constructor(scope: Construct, id: string, props: SplitLearningProps = {}) {
    super(scope, id);
    this.name = checkDnsLabel(this, 'name', props.name ?? kebab(id), 40);
    const image = checkImage(this, 'image', props.image ?? DEFAULT_TRAINER_IMAGE);
    this.clients = checkInt(this, 'clients', props.clients ?? 1, 1, 10_000);
    const mode = checkOneOf(this, 'mode', props.mode ?? 'vanilla', SPLIT_MODES);
    const sources = resolveSources(this, props, { tracking: props.tracking !== undefined });
    // The user's model is checked by the trainer once loaded: its layers are not known here.
    const maxCut = sources.modelUri === undefined ? SPLITTABLE_LAYERS[sources.config.model as ModelName] - 1 : 1000;
    if (props.cutLayerName !== undefined && props.cutLayer !== undefined) {
      throw new PropError(this, 'cutLayerName', props.cutLayerName, "absent when 'cutLayer' is set (cut by count or by name, not both)");
    }
    if (props.cutLayerName !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$/.test(props.cutLayerName)) {
      throw new PropError(this, 'cutLayerName', props.cutLayerName, 'a layer name (letters, digits, _, ., / and -, at most 128 characters)');
    }
    const cutLayer = checkInt(this, 'cutLayer', props.cutLayer ?? 1, 1, maxCut);
    if ((mode === 'sequential' || mode === 'splitfed') && this.clients < 2) {
      throw new PropError(this, 'clients', this.clients, `at least 2 for mode ${mode}`);
    }
    const noiseSigma = props.noiseSigma ?? 0;
    if (!(Number.isFinite(noiseSigma) && noiseSigma >= 0)) throw new PropError(this, 'noiseSigma', noiseSigma, 'a number >= 0');

    this.serverServiceName = `${this.name}-server`;
    const tokenSecret = `${this.name}-token`;
    const common: Omit<TrainerConfigInput, 'role'> = {
      jobName: this.name,
      worldSize: this.clients,
      masterAddr: this.serverServiceName,
      masterPort: PORTS.split,
      listenPort: PORTS.split,
      ...sources.config,
      datasetSize: checkInt(this, 'datasetSize', props.datasetSize ?? 0, 0),
      epochs: checkInt(this, 'epochs', props.epochs ?? 12, 1, 100_000),
      batchSize: checkInt(this, 'batchSize', props.batchSize ?? 64, 1, 1 << 20),
      learningRate: checkPositive(this, 'learningRate', props.learningRate ?? 0.001),
      optimizer: checkOneOf(this, 'optimizer', props.optimizer ?? 'adam', OPTIMIZERS),
      seed: checkInt(this, 'seed', props.seed ?? 42, 0, 2 ** 32 - 1),
      experimentName: this.name,
      cutLayer,
      cutLayerName: props.cutLayerName,
      splitMode: mode,
      noiseSigma,
      // A Deployment and a StatefulSet restart a process that exits: once training is over, idle.
      afterDone: 'idle',
    };
    resolveTrainerConfig({ ...common, role: 'split-server', trackingUri: props.tracking?.trackingUri });
    resolveTrainerConfig({ ...common, role: 'split-client' });

    const serverSelector = selectorLabels(this.name, 'server');
    const clientSelector = selectorLabels(this.name, 'client');
    const serverLabels = { ...objectLabels('split-learning', this.name, 'server'), ...trainerPodLabels(this.name, 'split-server'), ...serverSelector };
    const clientLabels = { ...objectLabels('split-learning', this.name, 'client'), ...trainerPodLabels(this.name, 'split-client'), ...clientSelector };
    const token = { [ENV.authToken]: { secretKeyRef: { name: tokenSecret, key: SECRET_KEYS.authToken } } };
    const secrets = new GeneratedSecrets(this, 'Token', {
      name: `${this.name}-secrets`,
      secrets: [{ name: tokenSecret, keys: [SECRET_KEYS.authToken] }],
      image,
      labels: objectLabels('split-learning', this.name, 'secrets'),
      selector: selectorLabels(this.name, 'secrets'),
    });

    new k8s.KubeService(this, 'ServerService', {
      metadata: { name: this.serverServiceName, labels: serverLabels },
      spec: { selector: serverSelector, ports: [{ name: 'split', port: PORTS.split, targetPort: k8s.IntOrString.fromString('split') }] },
    });
    new k8s.KubeDeployment(this, 'Server', {
      metadata: { name: this.serverServiceName, labels: serverLabels, annotations: secrets.externalRefs },
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: serverSelector },
        template: {
          metadata: { labels: serverLabels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: trainerPodSecurityContext(),
            containers: [
              trainerContainer({
                name: 'server',
                image,
                config: { ...common, role: 'split-server', trackingUri: props.tracking?.trackingUri },
                resources: props.serverResources ?? DEFAULT_RESOURCES,
                ports: [{ name: 'split', containerPort: PORTS.split }],
                envFrom: token,
              }),
            ],
            volumes: trainerVolumes(),
          },
        },
      },
    });

    const clientsName = `${this.name}-client`;
    new k8s.KubeService(this, 'ClientsService', {
      metadata: { name: clientsName, labels: clientLabels },
      spec: { clusterIp: 'None', selector: clientSelector, ports: [{ name: 'health', port: PORTS.health, targetPort: k8s.IntOrString.fromString('health') }] },
    });
    new k8s.KubeStatefulSet(this, 'Clients', {
      metadata: { name: clientsName, labels: clientLabels, annotations: secrets.externalRefs },
      spec: {
        serviceName: clientsName,
        replicas: this.clients,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: clientSelector },
        template: {
          metadata: { labels: clientLabels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: trainerPodSecurityContext(),
            containers: [
              trainerContainer({
                name: 'client',
                image,
                config: { ...common, role: 'split-client' },
                resources: props.clientResources ?? DEFAULT_RESOURCES,
                envFrom: { ...token, [ENV.podName]: { fieldRef: { fieldPath: 'metadata.name' } } },
                omit: [ENV.rank],
              }),
            ],
            volumes: trainerVolumes(),
          },
        },
      },
    });

    const sourceEgress = sourcesEgress(sources.remoteUris);
    const serverEgress: k8s.NetworkPolicyEgressRule[] = [dnsEgress(), ...sourceEgress];
    if (props.tracking) serverEgress.push({ to: [podPeer(props.tracking.serverPodLabels)], ports: tcpPorts(PORTS.mlflow) });
    new k8s.KubeNetworkPolicy(this, 'ServerPolicy', {
      metadata: { name: this.serverServiceName, labels: serverLabels },
      spec: {
        podSelector: { matchLabels: serverSelector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(clientSelector)], ports: tcpPorts(PORTS.split) }],
        egress: serverEgress,
      },
    });
    new k8s.KubeNetworkPolicy(this, 'ClientPolicy', {
      metadata: { name: clientsName, labels: clientLabels },
      spec: {
        podSelector: { matchLabels: clientSelector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress: [{ to: [podPeer(serverSelector)], ports: tcpPorts(PORTS.split) }, dnsEgress(), ...sourceEgress],
      },
    });
  }
}
