import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PodGroup, PodGroupSpecMinResources } from '../imports/scheduling.volcano.sh';
import {
  ANNOTATIONS,
  ENV,
  LABELS,
  LR_SCHEDULES,
  LrSchedule,
  OPTIMIZERS,
  OptimizerName,
  PATHS,
  PORTS,
  S3_CREDENTIAL_ENV,
  TrainerConfigInput,
  resolveTrainerConfig,
} from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { dnsEgress, podPeer, sourcesEgress, tcpPorts } from './lib/network';
import { SourceProps, resolveSources } from './lib/sources';
import { PropError, checkDnsLabel, checkImage, checkInt, checkOneOf, checkPositive, kebab } from './lib/props';
import {
  DEFAULT_TRAINER_IMAGE,
  trainerContainer,
  trainerPodLabels,
  trainerPodSecurityContext,
  trainerVolumes,
} from './lib/trainer-container';
import { ResourceSpec, objectLabels, selectorLabels } from './lib/workload';

export interface DdpClusterProps extends SourceProps {
  /**
   * Name of the Job and prefix of every object (a DNS-1123 label).
   *
   * @default - the construct id in kebab-case
   */
  readonly name?: string;
  /**
   * Ranks in the all-reduce ring (pods of the Indexed Job).
   *
   * @default 2
   */
  readonly worldSize?: number;
  /** @default - the Tensorfleet trainer image */
  readonly image?: string;
  /**
   * Where the dataset is: https://, http://, s3:// (at datasetS3Endpoint, with the credentials in
   * datasetS3CredentialsSecret) or an absolute path on the datasetClaimName volume; for CIFAR-10
   * also the URL of the binary version's .tar.gz, which the ranks unpack into their cache. A
   * {@link Dataset} may carry it instead.
   *
   * @default - the public mirror of a built-in dataset (CIFAR-10: its authors' cifar-10-binary.tar.gz)
   */
  readonly datasetUri?: string;
  /**
   * S3-compatible endpoint for s3:// dataset and model URIs.
   *
   * @default - AWS S3
   */
  readonly datasetS3Endpoint?: string;
  /**
   * Existing Secret with the credentials for s3:// dataset and model URIs, in the keys
   * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN and AWS_REGION
   * are read too when present).
   *
   * @default - no credentials: anonymous requests (a public bucket), or whatever the pod's environment provides
   */
  readonly datasetS3CredentialsSecret?: string;
  /**
   * Train on the first N examples (0 = the whole training set).
   *
   * @default 0
   */
  readonly datasetSize?: number;
  /**
   * Existing PersistentVolumeClaim holding datasets, mounted read-only at
   * /var/lib/tensorfleet/datasets; point datasetUri at a folder inside it.
   *
   * @default - no dataset volume
   */
  readonly datasetClaimName?: string;
  /** @default 1 */
  readonly epochs?: number;
  /**
   * Batch size of each rank; the global batch is worldSize times this.
   *
   * @default 64
   */
  readonly batchSize?: number;
  /** @default 0.001 */
  readonly learningRate?: number;
  /** @default "adam" */
  readonly optimizer?: OptimizerName;
  /**
   * Learning rate per epoch: "constant", or "cosine" decay from learningRate towards 0.
   *
   * @default "constant"
   */
  readonly learningRateSchedule?: LrSchedule;
  /** @default 42 */
  readonly seed?: number;
  /** @default - 1000m/2000m CPU, 1024/2048 MiB per rank */
  readonly resources?: ResourceSpec;
  /**
   * Node labels the ranks must run on.
   *
   * @default - any node
   */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** @default - none */
  readonly tolerations?: readonly k8s.Toleration[];
  /**
   * Spread the ranks over nodes: at most one rank more on any node than on another.
   *
   * @default false
   */
  readonly spreadOverNodes?: boolean;
  /**
   * Fail the Job after this many seconds.
   *
   * @default - no deadline
   */
  readonly activeDeadlineSeconds?: number;
  /**
   * Delete the finished Job after this many seconds.
   *
   * @default - kept (Argo CD would otherwise recreate it)
   */
  readonly ttlSecondsAfterFinished?: number;
  /**
   * Create the Job suspended (start it by setting spec.suspend to false).
   *
   * @default false
   */
  readonly suspend?: boolean;
  /**
   * Failed rank restarts before the Job fails. A failed rank makes every rank exit
   * and restart, so each group restart counts worldSize times.
   *
   * @default 6
   */
  readonly backoffLimit?: number;
  /**
   * Gang scheduling with Volcano: all ranks start together or none does.
   *
   * @default false
   */
  readonly gangScheduling?: boolean;
  /** @default "default" */
  readonly volcanoQueue?: string;
  /**
   * Existing ReadWriteMany PersistentVolumeClaim for checkpoints, so a rank rescheduled
   * to another node resumes too.
   *
   * @default - an emptyDir per pod: a restarted container resumes from its own checkpoint, a
   * rescheduled pod from its peers' (the group resumes from the newest checkpoint any rank holds);
   * only when every pod is rescheduled at once does the group start over
   */
  readonly checkpointClaimName?: string;
  /**
   * Experiment tracking: ranks log params, metrics and the model to this MLflow stack.
   *
   * @default - no tracking server; runs go to an MLflow file store in the pod
   */
  readonly tracking?: MlflowStack;
}

/** Requests and limits of each rank unless the props say otherwise. */
export const DDP_DEFAULT_RESOURCES: ResourceSpec = { cpuRequestMillis: 1000, cpuLimitMillis: 2000, memoryRequestMiB: 1024, memoryLimitMiB: 2048 };

/**
 * Data-parallel training: an Indexed Job of worldSize ranks that sum their gradients
 * by ring all-reduce over WebSocket, with a headless Service giving rank i the stable
 * name `<name>-<i>.<name>-ring` from the start.
 */
export class DdpCluster extends Construct {
  public readonly name: string;
  public readonly worldSize: number;
  public readonly image: string;
  /** The headless Service that gives every rank its DNS name. */
  public readonly ringServiceName: string;
  /** The trainer configuration every rank gets (rank aside). */
  public readonly config: ReturnType<typeof resolveTrainerConfig>;
  /** Labels of the rank pods. */
  public readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: DdpClusterProps = {}) {
    super(scope, id);
    this.name = checkDnsLabel(this, 'name', props.name ?? kebab(id), 40);
    this.worldSize = checkInt(this, 'worldSize', props.worldSize ?? 2, 1, 1024);
    this.image = checkImage(this, 'image', props.image ?? DEFAULT_TRAINER_IMAGE);
    this.ringServiceName = `${this.name}-ring`;
    const resourcesSpec = props.resources ?? DDP_DEFAULT_RESOURCES;
    checkInt(this, 'resources.cpuLimitMillis', resourcesSpec.cpuLimitMillis, resourcesSpec.cpuRequestMillis);
    checkInt(this, 'resources.memoryLimitMiB', resourcesSpec.memoryLimitMiB, resourcesSpec.memoryRequestMiB);
    const backoffLimit = checkInt(this, 'backoffLimit', props.backoffLimit ?? 6, 0);
    if (props.activeDeadlineSeconds !== undefined) checkInt(this, 'activeDeadlineSeconds', props.activeDeadlineSeconds, 1);
    if (props.ttlSecondsAfterFinished !== undefined) checkInt(this, 'ttlSecondsAfterFinished', props.ttlSecondsAfterFinished, 0);
    if (props.checkpointClaimName !== undefined) checkDnsLabel(this, 'checkpointClaimName', props.checkpointClaimName, 253);
    if (props.datasetClaimName !== undefined) checkDnsLabel(this, 'datasetClaimName', props.datasetClaimName, 253);
    const sources = resolveSources(this, props, { tracking: props.tracking !== undefined, claimProp: true, datasetClaimName: props.datasetClaimName });
    const s3Secret = props.datasetS3CredentialsSecret;
    if (s3Secret !== undefined) {
      checkDnsLabel(this, 'datasetS3CredentialsSecret', s3Secret, 253);
      if (!sources.remoteUris.some((u) => u.startsWith('s3://'))) {
        throw new PropError(this, 'datasetUri', sources.datasetUri, `an s3:// URI when 'datasetS3CredentialsSecret' is set`);
      }
    }

    const input: TrainerConfigInput = {
      role: 'ddp',
      jobName: this.name,
      worldSize: this.worldSize,
      masterAddr: `${this.name}-0.${this.ringServiceName}`,
      masterPort: PORTS.ring,
      peers: `${this.name}-{rank}.${this.ringServiceName}:${PORTS.ring}`,
      listenPort: PORTS.ring,
      ...sources.config,
      datasetSize: checkInt(this, 'datasetSize', props.datasetSize ?? 0, 0),
      epochs: checkInt(this, 'epochs', props.epochs ?? 1, 1, 100_000),
      batchSize: checkInt(this, 'batchSize', props.batchSize ?? 64, 1, 1 << 20),
      learningRate: checkPositive(this, 'learningRate', props.learningRate ?? 0.001),
      optimizer: checkOneOf(this, 'optimizer', props.optimizer ?? 'adam', OPTIMIZERS),
      lrSchedule: checkOneOf(this, 'learningRateSchedule', props.learningRateSchedule ?? 'constant', LR_SCHEDULES),
      seed: checkInt(this, 'seed', props.seed ?? 42, 0, 2 ** 32 - 1),
      trackingUri: props.tracking?.trackingUri,
      experimentName: this.name,
      s3Endpoint: props.datasetS3Endpoint,
    };
    this.config = resolveTrainerConfig(input);
    this.podLabels = { ...trainerPodLabels(this.name, 'ddp'), ...selectorLabels(this.name, 'rank') };
    const labels = { ...objectLabels('ddp-cluster', this.name, 'rank'), ...this.podLabels };
    const jobSelector = { [LABELS.job]: this.name, [LABELS.role]: 'ddp' };

    new k8s.KubeService(this, 'RingService', {
      metadata: { name: this.ringServiceName, labels },
      spec: {
        clusterIp: 'None',
        // Ranks must resolve each other before they are ready: readiness needs the ring.
        publishNotReadyAddresses: true,
        selector: jobSelector,
        ports: [{ name: 'ring', port: PORTS.ring, targetPort: k8s.IntOrString.fromString('ring') }],
      },
    });

    const gpus = resourcesSpec.gpus ?? 0;
    const trainer = trainerContainer({
      name: 'trainer',
      image: this.image,
      config: input,
      resources: resourcesSpec,
      ports: [{ name: 'ring', containerPort: PORTS.ring }],
      envFrom: {
        [ENV.rank]: { fieldRef: { fieldPath: `metadata.annotations['${ANNOTATIONS.jobCompletionIndex}']` } },
        ...(s3Secret === undefined ? {} : s3CredentialsEnv(s3Secret)),
      },
    });
    const volumes = trainerVolumes(props.checkpointClaimName ? { persistentVolumeClaim: { claimName: props.checkpointClaimName } } : undefined);
    if (props.datasetClaimName) {
      trainer.volumeMounts!.push({ name: 'datasets', mountPath: PATHS.datasets, readOnly: true });
      volumes.push({ name: 'datasets', persistentVolumeClaim: { claimName: props.datasetClaimName, readOnly: true } });
    }
    const externalClaims = [props.checkpointClaimName, props.datasetClaimName].filter((c): c is string => c !== undefined);
    const podSpec: k8s.PodSpec = {
      subdomain: this.ringServiceName,
      restartPolicy: 'OnFailure',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: trainerPodSecurityContext(),
      ...(props.gangScheduling ? { schedulerName: 'volcano' } : {}),
      ...(props.nodeSelector ? { nodeSelector: { ...props.nodeSelector } } : {}),
      ...(props.tolerations ? { tolerations: [...props.tolerations] } : {}),
      ...(props.spreadOverNodes
        ? {
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'kubernetes.io/hostname',
                whenUnsatisfiable: 'DoNotSchedule',
                labelSelector: { matchLabels: jobSelector },
              },
            ],
          }
        : {}),
      containers: [trainer],
      volumes,
    };

    new k8s.KubeJob(this, 'Job', {
      metadata: {
        name: this.name,
        labels,
        annotations: {
          // Job specs are immutable: when the Job changed, Argo CD deletes and recreates it (Replace alone
          // is a PUT, which the API refuses for a changed pod template). The ranks resume from their checkpoints.
          [ANNOTATIONS.argoSyncOptions]: 'Force=true,Replace=true',
          ...(externalClaims.length > 0 ? { [ANNOTATIONS.externalRefs]: externalClaims.map((c) => `pvc/${c}`).join(',') } : {}),
        },
      },
      spec: {
        completionMode: 'Indexed',
        completions: this.worldSize,
        parallelism: this.worldSize,
        backoffLimit,
        ...(props.activeDeadlineSeconds !== undefined ? { activeDeadlineSeconds: props.activeDeadlineSeconds } : {}),
        ...(props.ttlSecondsAfterFinished !== undefined ? { ttlSecondsAfterFinished: props.ttlSecondsAfterFinished } : {}),
        ...(props.suspend ? { suspend: true } : {}),
        template: {
          metadata: {
            labels,
            ...(props.gangScheduling ? { annotations: { 'scheduling.k8s.io/group-name': this.name } } : {}),
          },
          spec: podSpec,
        },
      },
    });

    if (props.gangScheduling) {
      const minResources: Record<string, PodGroupSpecMinResources> = {
        cpu: PodGroupSpecMinResources.fromString(`${resourcesSpec.cpuRequestMillis * this.worldSize}m`),
        memory: PodGroupSpecMinResources.fromString(`${resourcesSpec.memoryRequestMiB * this.worldSize}Mi`),
        ...(gpus > 0 ? { 'nvidia.com/gpu': PodGroupSpecMinResources.fromNumber(gpus * this.worldSize) } : {}),
      };
      new PodGroup(this, 'PodGroup', {
        metadata: { name: this.name, labels },
        spec: { minMember: this.worldSize, queue: props.volcanoQueue ?? 'default', minResources },
      });
    }

    const egress: k8s.NetworkPolicyEgressRule[] = [
      { to: [podPeer(jobSelector)], ports: tcpPorts(PORTS.ring) },
      dnsEgress(),
    ];
    egress.push(...sourcesEgress(sources.remoteUris, props.datasetS3Endpoint));
    if (props.tracking) egress.push({ to: [podPeer(props.tracking.serverPodLabels)], ports: tcpPorts(PORTS.mlflow) });
    new k8s.KubeNetworkPolicy(this, 'RingPolicy', {
      metadata: { name: this.name, labels },
      spec: {
        podSelector: { matchLabels: jobSelector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(jobSelector)], ports: tcpPorts(PORTS.ring) }],
        egress,
      },
    });
  }
}

/** The S3 credential env of the trainer, from `secret` (the session token and region only when present). */
function s3CredentialsEnv(secret: string): Record<string, k8s.EnvVarSource> {
  const ref = (key: string, optional: boolean): k8s.EnvVarSource => ({ secretKeyRef: { name: secret, key, ...(optional ? { optional: true } : {}) } });
  return {
    [S3_CREDENTIAL_ENV.accessKeyId]: ref(S3_CREDENTIAL_ENV.accessKeyId, false),
    [S3_CREDENTIAL_ENV.secretAccessKey]: ref(S3_CREDENTIAL_ENV.secretAccessKey, false),
    [S3_CREDENTIAL_ENV.sessionToken]: ref(S3_CREDENTIAL_ENV.sessionToken, true),
    [S3_CREDENTIAL_ENV.region]: ref(S3_CREDENTIAL_ENV.region, true),
  };
}
