import { Construct } from 'constructs';
import { ModelName, OPTIMIZERS, OptimizerName, PORTS, SPLIT_MODES, SplitMode } from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { LinkTls } from './lib/link-tls';
import { PropError, checkImage, checkInt, checkOneOf, checkPositive, nameOf } from './lib/props';
import { ServerAndClients, SharedTrainerConfig } from './lib/server-and-clients';
import { SourceProps, resolveSources } from './lib/sources';
import { DEFAULT_TRAINER_IMAGE } from './lib/trainer-container';
import { ResourceSpec } from './lib/workload';

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
  /**
   * Encrypt the links between the server and the clients (wss://) with this Secret.
   *
   * @default - no TLS: ws://, behind the bearer token and the NetworkPolicies
   */
  readonly tls?: LinkTls;
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
  /** The server, the clients, their Services and policies. */
  public readonly split: ServerAndClients;

  constructor(scope: Construct, id: string, props: SplitLearningProps = {}) {
    super(scope, id);
    this.name = nameOf(this, props.name, 40);
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
      throw new PropError(
        this,
        'cutLayerName',
        props.cutLayerName,
        'a layer name (letters, digits, _, ., / and -, at most 128 characters)',
      );
    }
    const cutLayer = checkInt(this, 'cutLayer', props.cutLayer ?? 1, 1, maxCut);
    if ((mode === 'sequential' || mode === 'splitfed') && this.clients < 2) {
      throw new PropError(this, 'clients', this.clients, `at least 2 for mode ${mode}`);
    }
    const noiseSigma = props.noiseSigma ?? 0;
    if (!(Number.isFinite(noiseSigma) && noiseSigma >= 0)) throw new PropError(this, 'noiseSigma', noiseSigma, 'a number >= 0');

    const config: SharedTrainerConfig = {
      ...sources.config,
      datasetSize: checkInt(this, 'datasetSize', props.datasetSize ?? 0, 0),
      epochs: props.epochs ?? 12,
      batchSize: props.batchSize ?? 64,
      learningRate: checkPositive(this, 'learningRate', props.learningRate ?? 0.001),
      optimizer: checkOneOf(this, 'optimizer', props.optimizer ?? 'adam', OPTIMIZERS),
      seed: props.seed ?? 42,
      experimentName: this.name,
      cutLayer,
      cutLayerName: props.cutLayerName,
      splitMode: mode,
      noiseSigma,
      // A Deployment and a StatefulSet restart a process that exits: once training is over, idle.
      afterDone: 'idle',
    };
    this.split = new ServerAndClients(this, 'Split', {
      name: this.name,
      appName: 'split-learning',
      image,
      serverRole: 'split-server',
      clientRole: 'split-client',
      port: { name: 'split', number: PORTS.split },
      clients: this.clients,
      config,
      propOf: {},
      serverResources: props.serverResources ?? DEFAULT_RESOURCES,
      clientResources: props.clientResources ?? DEFAULT_RESOURCES,
      tracking: props.tracking,
      remoteUris: sources.remoteUris,
      tls: props.tls?.validate(this, 'tls'),
    });
    this.serverServiceName = this.split.serverService.name;
  }
}
