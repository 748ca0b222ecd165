import { ApiObject, Duration, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PodGroup, PodGroupSpecMinResources } from '../imports/scheduling.volcano.sh';
import {
  ANNOTATIONS,
  ENV,
  LR_SCHEDULES,
  LrSchedule,
  OPTIMIZERS,
  OptimizerName,
  PATHS,
  PORTS,
  S3_CREDENTIAL_ENV,
  SECRET_KEYS,
  TrainerConfigInput,
  resolveTrainerConfig,
} from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { externalRefsAnnotation } from './lib/external-refs';
import { GeneratedSecrets } from './lib/generated-secrets';
import { LinkTls } from './lib/link-tls';
import { PodPolicy, dnsRule, sourcesRules, trackingRule } from './lib/network';
import { PropError, checkDnsLabel, checkImage, checkInt, checkOneOf, checkPositive, nameOf } from './lib/props';
import { SourceProps, resolveSources } from './lib/sources';
import { checkTrainerConfig } from './lib/trainer-config';
import { DEFAULT_TRAINER_IMAGE, addTrainerContainer, trainerPodLabels, trainerPodProps } from './lib/trainer-container';
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
  /**
   * Encrypt the ring's links (wss://) with this Secret.
   *
   * @default - no TLS: ws://, behind the NetworkPolicy
   */
  readonly tls?: LinkTls;
}

/** Requests and limits of each rank unless the props say otherwise. */
export const DDP_DEFAULT_RESOURCES: ResourceSpec = {
  cpuRequestMillis: 1000,
  cpuLimitMillis: 2000,
  memoryRequestMiB: 1024,
  memoryLimitMiB: 2048,
};

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
  public readonly ringService: kplus.Service;
  public readonly ringServiceName: string;
  /** The Indexed Job of the ranks. */
  public readonly job: kplus.Job;
  /** The trainer configuration every rank gets (rank aside). */
  public readonly config: ReturnType<typeof resolveTrainerConfig>;
  /** Labels of the rank pods. */
  public readonly podLabels: Readonly<Record<string, string>>;
  /** The Secret, generated in the cluster, with the ring's bearer token under {@link SECRET_KEYS.authToken}. */
  public readonly tokenSecretName: string;

  constructor(scope: Construct, id: string, props: DdpClusterProps = {}) {
    super(scope, id);
    this.name = nameOf(this, props.name, 40);
    this.worldSize = checkInt(this, 'worldSize', props.worldSize ?? 2, 1, 1024);
    this.image = checkImage(this, 'image', props.image ?? DEFAULT_TRAINER_IMAGE);
    const resourcesSpec = props.resources ?? DDP_DEFAULT_RESOURCES;
    checkInt(this, 'resources.cpuLimitMillis', resourcesSpec.cpuLimitMillis, resourcesSpec.cpuRequestMillis);
    checkInt(this, 'resources.memoryLimitMiB', resourcesSpec.memoryLimitMiB, resourcesSpec.memoryRequestMiB);
    const backoffLimit = checkInt(this, 'backoffLimit', props.backoffLimit ?? 6, 0);
    if (props.activeDeadlineSeconds !== undefined) checkInt(this, 'activeDeadlineSeconds', props.activeDeadlineSeconds, 1);
    if (props.ttlSecondsAfterFinished !== undefined) checkInt(this, 'ttlSecondsAfterFinished', props.ttlSecondsAfterFinished, 0);
    if (props.checkpointClaimName !== undefined) checkDnsLabel(this, 'checkpointClaimName', props.checkpointClaimName, 253);
    if (props.datasetClaimName !== undefined) checkDnsLabel(this, 'datasetClaimName', props.datasetClaimName, 253);
    const sources = resolveSources(this, props, {
      tracking: props.tracking !== undefined,
      claimProp: true,
      datasetClaimName: props.datasetClaimName,
    });
    if (props.datasetS3CredentialsSecret !== undefined) {
      const s3Secret = props.datasetS3CredentialsSecret;
      checkDnsLabel(this, 'datasetS3CredentialsSecret', s3Secret, 253);
      if (!sources.remoteUris.some((u) => u.startsWith('s3://'))) {
        throw new PropError(this, 'datasetUri', sources.datasetUri, `an s3:// URI when 'datasetS3CredentialsSecret' is set`);
      }
    }

    const tls = props.tls?.validate(this, 'tls');
    // Every link of the ring presents a bearer token, generated per job in the cluster (never in dist/), as the stars do.
    this.tokenSecretName = `${this.name}-token`;
    const secrets = new GeneratedSecrets(this, 'Token', {
      name: `${this.name}-secrets`,
      secrets: [{ name: this.tokenSecretName, keys: [SECRET_KEYS.authToken] }],
      image: this.image,
      labels: objectLabels('ddp-cluster', this.name, 'secrets'),
    });
    const tokenSecret = kplus.Secret.fromSecretName(this, 'TokenSecret', this.tokenSecretName);
    const externalRefs = [
      ...secrets.refs,
      ...[props.checkpointClaimName, props.datasetClaimName].filter((c): c is string => c !== undefined).map((c) => `pvc/${c}`),
      ...(tls ? [tls.externalRef] : []),
      ...(props.tracking?.credentialsExternalRefs ?? []),
    ];

    // Rank i is reachable as `<job>-<i>.<ring Service>` from the start: the Service names the hosts.
    this.ringService = new kplus.Service(this, 'RingService', {
      metadata: { name: `${this.name}-ring` },
      clusterIP: 'None',
      ports: [{ name: 'ring', port: PORTS.ring, targetPort: PORTS.ring }],
    });
    this.ringServiceName = this.ringService.name;
    // ServiceProps has no publishNotReadyAddresses. Ranks must resolve each other before they are ready: readiness needs the ring.
    ApiObject.of(this.ringService).addJsonPatch(JsonPatch.add('/spec/publishNotReadyAddresses', true));

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
      epochs: props.epochs ?? 1,
      batchSize: props.batchSize ?? 64,
      learningRate: checkPositive(this, 'learningRate', props.learningRate ?? 0.001),
      optimizer: checkOneOf(this, 'optimizer', props.optimizer ?? 'adam', OPTIMIZERS),
      lrSchedule: checkOneOf(this, 'learningRateSchedule', props.learningRateSchedule ?? 'constant', LR_SCHEDULES),
      seed: props.seed ?? 42,
      trackingUri: props.tracking?.trackingUri,
      experimentName: this.name,
      s3Endpoint: props.datasetS3Endpoint,
      ...(tls ? { tlsDir: PATHS.tls } : {}),
    };
    this.config = checkTrainerConfig(this, input, { lrSchedule: 'learningRateSchedule', s3Endpoint: 'datasetS3Endpoint' });
    this.podLabels = { ...trainerPodLabels(this.name, 'ddp'), ...selectorLabels(this.name, 'rank') };
    const labels = { ...objectLabels('ddp-cluster', this.name, 'rank'), ...this.podLabels };
    for (const [key, value] of Object.entries(labels)) this.ringService.metadata.addLabel(key, value);

    this.job = new kplus.Job(this, 'Job', {
      metadata: {
        name: this.name,
        labels,
        annotations: {
          // Job specs are immutable: when the Job changed, Argo CD deletes and recreates it (Replace alone
          // is a PUT, which the API refuses for a changed pod template). The ranks resume from their checkpoints.
          [ANNOTATIONS.argoSyncOptions]: 'Force=true,Replace=true',
          ...externalRefsAnnotation(...externalRefs),
        },
      },
      podMetadata: { labels, ...(props.gangScheduling ? { annotations: { 'scheduling.k8s.io/group-name': this.name } } : {}) },
      restartPolicy: kplus.RestartPolicy.ON_FAILURE,
      backoffLimit,
      ...(props.activeDeadlineSeconds !== undefined ? { activeDeadline: Duration.seconds(props.activeDeadlineSeconds) } : {}),
      ...(props.ttlSecondsAfterFinished !== undefined ? { ttlAfterFinished: Duration.seconds(props.ttlSecondsAfterFinished) } : {}),
      ...trainerPodProps(),
    });
    this.ringService.select(this.job);
    const s3Secret = props.datasetS3CredentialsSecret;
    const trainer = addTrainerContainer(this.job, {
      name: 'trainer',
      image: this.image,
      config: input,
      resources: resourcesSpec,
      ports: [{ name: 'ring', number: PORTS.ring }],
      tls,
      envFrom: {
        [ENV.rank]: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_ANNOTATION, { key: ANNOTATIONS.jobCompletionIndex }),
        [ENV.authToken]: kplus.EnvValue.fromSecretValue({ secret: tokenSecret, key: SECRET_KEYS.authToken }),
        ...(s3Secret === undefined ? {} : s3CredentialsEnv(kplus.Secret.fromSecretName(this, 'S3Credentials', s3Secret))),
        ...props.tracking?.credentialsEnv(this),
      },
      checkpoints: claimVolume(this.job, 'Checkpoints', props.checkpointClaimName, false),
    });
    const datasets = claimVolume(this.job, 'Datasets', props.datasetClaimName, true);
    if (datasets) trainer.mount(PATHS.datasets, datasets, { readOnly: true });
    if (props.nodeSelector) {
      const queries = Object.entries(props.nodeSelector).map(([key, value]) => kplus.NodeLabelQuery.is(key, value));
      this.job.scheduling.attract(kplus.Node.labeled(...queries));
    }
    for (const toleration of props.tolerations ?? []) tolerate(this.job, toleration);
    const api = ApiObject.of(this.job);
    // JobProps has no completionMode, completions, parallelism or suspend: an Indexed Job of worldSize ranks.
    api.addJsonPatch(
      JsonPatch.add('/spec/completionMode', 'Indexed'),
      JsonPatch.add('/spec/completions', this.worldSize),
      JsonPatch.add('/spec/parallelism', this.worldSize),
      ...(props.suspend ? [JsonPatch.add('/spec/suspend', true)] : []),
    );
    // Only PodProps has subdomain, JobProps not: the hostnames `<job>-<i>` live under the ring Service.
    api.addJsonPatch(JsonPatch.add('/spec/template/spec/subdomain', this.ringServiceName));
    // AbstractPodProps has no schedulerName.
    if (props.gangScheduling) api.addJsonPatch(JsonPatch.add('/spec/template/spec/schedulerName', 'volcano'));
    if (props.spreadOverNodes) {
      // WorkloadProps.spread is a preferred anti-affinity; a hard topologySpreadConstraint has no cdk8s-plus-27 prop.
      const spread = {
        maxSkew: 1,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: { [kplus.Pod.ADDRESS_LABEL]: this.job.podMetadata.getLabel(kplus.Pod.ADDRESS_LABEL) } },
      };
      api.addJsonPatch(JsonPatch.add('/spec/template/spec/topologySpreadConstraints', [spread]));
    }

    const gpus = resourcesSpec.gpus ?? 0;
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

    const tracking = props.tracking;
    const ring = [kplus.NetworkPolicyPort.tcp(PORTS.ring)];
    new PodPolicy(this, 'RingPolicy', {
      name: this.name,
      labels,
      selector: this.job,
      ingress: () => [{ peer: this.job, ports: ring }],
      egress: (s) => [
        { peer: this.job, ports: ring },
        dnsRule(s),
        ...sourcesRules(s, sources.remoteUris, props.datasetS3Endpoint),
        ...(tracking ? [trackingRule(s, tracking.serverPodLabels)] : []),
      ],
    });
  }
}

/** An existing claim as the volume `id` (lowercased) of `job`'s pods, or undefined without a claim. */
function claimVolume(job: kplus.Job, id: string, claimName: string | undefined, readOnly: boolean): kplus.Volume | undefined {
  if (claimName === undefined) return undefined;
  const claim = kplus.PersistentVolumeClaim.fromClaimName(job, `${id}Claim`, claimName);
  return kplus.Volume.fromPersistentVolumeClaim(job, `${id}Volume`, claim, { name: id.toLowerCase(), readOnly });
}

/** A toleration of the props, in cdk8s-plus terms. */
function tolerate(job: kplus.Job, t: k8s.Toleration): void {
  const options = {
    ...(t.effect ? { effect: t.effect as kplus.TaintEffect } : {}),
    ...(t.tolerationSeconds !== undefined ? { evictAfter: Duration.seconds(t.tolerationSeconds) } : {}),
  };
  if (t.key === undefined) {
    // NodeTaintQuery needs a key: tolerating every taint has no cdk8s-plus-27 form.
    ApiObject.of(job).addJsonPatch(JsonPatch.add('/spec/template/spec/tolerations/-', t));
    return;
  }
  const query =
    t.operator === 'Exists' ? kplus.NodeTaintQuery.exists(t.key, options) : kplus.NodeTaintQuery.is(t.key, t.value ?? '', options);
  job.scheduling.tolerate(kplus.Node.tainted(query));
}

/** The S3 credential env of the trainer, from `secret` (the session token and region only when present). */
function s3CredentialsEnv(secret: kplus.ISecret): Record<string, kplus.EnvValue> {
  const ref = (key: string, optional: boolean): kplus.EnvValue => kplus.EnvValue.fromSecretValue({ secret, key }, { optional });
  return {
    [S3_CREDENTIAL_ENV.accessKeyId]: ref(S3_CREDENTIAL_ENV.accessKeyId, false),
    [S3_CREDENTIAL_ENV.secretAccessKey]: ref(S3_CREDENTIAL_ENV.secretAccessKey, false),
    [S3_CREDENTIAL_ENV.sessionToken]: ref(S3_CREDENTIAL_ENV.sessionToken, true),
    [S3_CREDENTIAL_ENV.region]: ref(S3_CREDENTIAL_ENV.region, true),
  };
}
