import { Chart, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import {
  ANNOTATIONS,
  API_ENV,
  API_PATHS,
  DEFAULT_API_MAX_BODY_BYTES,
  ENV,
  PATHS,
  PORTS,
  SECRET_KEYS,
  toEnv,
} from '../trainer/src/contract';
import { MlflowStack } from './mlflow-stack';
import { RbacRule, trainingApiRoleRules } from './lib/emitted-kinds';
import { externalRefsAnnotation } from './lib/external-refs';
import { GeneratedSecrets } from './lib/generated-secrets';
import { hardenPodTemplate, hardenedContainer } from './lib/hardened';
import { PodPolicy, apiServerRule, dnsRule, trackingRule } from './lib/network';
import { PropError, checkCidr, checkHttpUrl, checkImage, checkInt, checkLabelSelector, checkResources, nameOf } from './lib/props';
import { DEFAULT_TRAINER_IMAGE, trainerPodLabels, trainerPodProps } from './lib/trainer-container';
import { ResourceSpec, imageVersion, objectLabels, selectorLabels } from './lib/workload';

export interface TrainingApiProps {
  /**
   * Name of the Deployment, Service, ServiceAccount, Role and NetworkPolicy (a DNS-1123 label).
   *
   * @default - the construct id in kebab-case
   */
  readonly name?: string;
  /**
   * Image of the API (the trainer image runs it as role `api`).
   *
   * @default - the Tensorfleet trainer image
   */
  readonly image?: string;
  /** @default 1 */
  readonly replicas?: number;
  /** @default - 100m/1000m CPU, 256/512 MiB */
  readonly resources?: ResourceSpec;
  /**
   * Tracking stack the submitted jobs report to; the API also gets egress to it.
   *
   * @default - no tracking server; each job writes an MLflow file store in its pods
   */
  readonly tracking?: MlflowStack;
  /**
   * Base URL of the MLflow UI, for the run links in job status (e.g. an Ingress in front of
   * the tracking server).
   *
   * @default - the tracking stack's own address (its Service serves the UI); no links without `tracking`
   */
  readonly mlflowUiUrl?: string;
  /**
   * Image a job gets when its request names none.
   *
   * @default - the API's own image
   */
  readonly defaultImage?: string;
  /**
   * Largest request body the API accepts (413 past it).
   *
   * @default 65536
   */
  readonly maxBodyBytes?: number;
  /**
   * Where the Kubernetes API server is: egress on 443 and 6443 is allowed to this block.
   * A NetworkPolicy cannot select the API server by pod labels; narrow this to the
   * control plane's addresses where they are known.
   *
   * @default "0.0.0.0/0"
   */
  readonly kubernetesApiCidr?: string;
  /**
   * Label selectors of the pods in the namespace that may call the API; each selects pods
   * by matchLabels.
   *
   * @default - any pod in the namespace
   */
  readonly allowedClients?: readonly Readonly<Record<string, string>>[];
}

const DEFAULT_RESOURCES: ResourceSpec = { cpuRequestMillis: 100, cpuLimitMillis: 1000, memoryRequestMiB: 256, memoryLimitMiB: 512 };
/** Largest body the API can be told to accept. */
const MAX_BODY_BYTES_LIMIT = 16 * 1024 * 1024;

/**
 * The TrainingApi: an HTTP API (trainer role `api`) that builds DdpCluster,
 * FederatedFleet and SplitLearning jobs from POST /jobs and applies them to its own
 * namespace, behind a bearer token generated in the cluster. Its Role grants what those
 * constructs emit (see {@link trainingApiRoleRules}), reading pods and logs, and no Secret
 * access. Its jobs run in its namespace, so its tracking stack must be there too.
 */
export class TrainingApi extends Construct {
  public readonly name: string;
  public readonly image: string;
  public readonly replicas: number;
  /** Image of jobs whose request names none. */
  public readonly defaultImage: string;
  public readonly maxBodyBytes: number;
  /** The Service clients call, on {@link PORTS.api}. */
  public readonly serviceName: string;
  /** The Secret holding the bearer token under the key `token` (generated in the cluster). */
  public readonly tokenSecretName: string;
  /** Labels of the API pods. */
  public readonly podLabels: Readonly<Record<string, string>>;
  /** The rules of the API's Role. */
  public readonly rules: readonly RbacRule[];
  /** Base URL of the MLflow UI in run links (undefined: none). */
  public readonly mlflowUiUrl?: string;

  constructor(scope: Construct, id: string, props: TrainingApiProps = {}) {
    super(scope, id);
    this.name = nameOf(this, props.name, 40);
    this.image = checkImage(this, 'image', props.image ?? DEFAULT_TRAINER_IMAGE);
    this.replicas = checkInt(this, 'replicas', props.replicas ?? 1, 1, 100);
    const resourceSpec = checkResources(this, 'resources', props.resources ?? DEFAULT_RESOURCES);
    this.defaultImage = checkImage(this, 'defaultImage', props.defaultImage ?? this.image);
    this.maxBodyBytes = checkInt(this, 'maxBodyBytes', props.maxBodyBytes ?? DEFAULT_API_MAX_BODY_BYTES, 1024, MAX_BODY_BYTES_LIMIT);
    if (props.tracking) {
      const own = Chart.of(this).namespace;
      const theirs = Chart.of(props.tracking).namespace;
      if (own !== theirs) {
        const where = (ns: string | undefined): string =>
          ns === undefined ? 'the namespace it is applied to' : `namespace ${JSON.stringify(ns)}`;
        throw new PropError(
          this,
          'tracking',
          props.tracking.name,
          `an MlflowStack in the TrainingApi's namespace (${where(own)}): the jobs run there and reach MLflow by its Service name, ` +
            `which MLflow's NetworkPolicy admits from its own namespace only; it is in ${where(theirs)}`,
        );
      }
    }
    // The tracking server serves its UI too: links work wherever its Service does (port-forward, in-cluster).
    this.mlflowUiUrl = props.mlflowUiUrl !== undefined ? checkHttpUrl(this, 'mlflowUiUrl', props.mlflowUiUrl) : props.tracking?.trackingUri;
    const mlflowUiUrl = this.mlflowUiUrl;
    const kubernetesApiCidr = checkCidr(this, 'kubernetesApiCidr', props.kubernetesApiCidr ?? '0.0.0.0/0');
    if (props.allowedClients !== undefined && props.allowedClients.length === 0) {
      // An ingress rule with an empty `from` admits every source, the opposite of what [] suggests.
      throw new PropError(
        this,
        'allowedClients',
        props.allowedClients,
        'at least one label selector (leave it unset to admit any pod in the namespace)',
      );
    }
    const allowedClients = props.allowedClients?.map((selector, i) => checkLabelSelector(this, `allowedClients[${i}]`, selector));

    this.tokenSecretName = `${this.name}-token`;
    this.rules = trainingApiRoleRules();
    const selector = selectorLabels(this.name, 'api');
    this.podLabels = { ...trainerPodLabels(this.name, 'api'), ...selector };
    const labels = { ...objectLabels('training-api', this.name, 'api', imageVersion(this.image)), ...this.podLabels };

    const secrets = new GeneratedSecrets(this, 'Token', {
      name: `${this.name}-secrets`,
      secrets: [{ name: this.tokenSecretName, keys: [SECRET_KEYS.authToken] }],
      image: this.image,
      labels: objectLabels('training-api', this.name, 'secrets'),
    });

    const account = new kplus.ServiceAccount(this, 'Account', {
      metadata: { name: this.name, labels },
      // Mounted by the pod spec, which is the only place that needs it.
      automountToken: false,
    });
    const role = new kplus.Role(this, 'Role', { metadata: { name: this.name, labels } });
    // cdk8s-plus writes one rule per API group and resource.
    for (const r of this.rules) {
      const resources = (r.apiGroups ?? []).flatMap((apiGroup) =>
        (r.resources ?? []).map((resourceType) => kplus.ApiResource.custom({ apiGroup, resourceType })),
      );
      role.allow([...r.verbs], ...resources);
    }
    new kplus.RoleBinding(this, 'RoleBinding', { metadata: { name: this.name, labels }, role }).addSubjects(account);

    // Only the common variables the `api` role reads: it builds each job's trainer env itself.
    const common = toEnv({ role: 'api', jobName: this.name, listenPort: PORTS.api, trackingUri: props.tracking?.trackingUri });
    const keep: string[] = [ENV.role, ENV.jobName, ENV.listenPort, ENV.trackingUri, ENV.logLevel];
    const env: Record<string, kplus.EnvValue> = {};
    for (const [name, value] of Object.entries(common)) if (keep.includes(name)) env[name] = kplus.EnvValue.fromValue(value);
    env[API_ENV.namespace] = kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAMESPACE);
    env[API_ENV.defaultImage] = kplus.EnvValue.fromValue(this.defaultImage);
    env[API_ENV.maxBodyBytes] = kplus.EnvValue.fromValue(String(this.maxBodyBytes));
    if (props.tracking) env[API_ENV.mlflowStack] = kplus.EnvValue.fromValue(props.tracking.name);
    // Basic auth on the stack: the API reads runs with its credentials and, seeing them, hands them to each job's trainers.
    if (props.tracking?.authSecretName !== undefined) Object.assign(env, props.tracking.credentialsEnv(this));
    if (mlflowUiUrl !== undefined) env[API_ENV.mlflowUiUrl] = kplus.EnvValue.fromValue(mlflowUiUrl);
    const tokenSecret = kplus.Secret.fromSecretName(this, 'TokenSecret', this.tokenSecretName);
    env[ENV.authToken] = kplus.EnvValue.fromSecretValue({ secret: tokenSecret, key: SECRET_KEYS.authToken });

    const service = new kplus.Service(this, 'Service', {
      metadata: { name: this.name, labels },
      ports: [{ name: 'http', port: PORTS.api, targetPort: PORTS.api }],
    });
    this.serviceName = service.name;
    const deployment = new kplus.Deployment(this, 'Deployment', {
      metadata: {
        name: this.name,
        labels,
        annotations: {
          ...externalRefsAnnotation(...secrets.refs, ...(props.tracking?.credentialsExternalRefs ?? [])),
          [ANNOTATIONS.usesKubernetesApi]: 'true',
        },
      },
      podMetadata: { labels },
      replicas: this.replicas,
      serviceAccount: account,
      ...trainerPodProps(),
      // The one workload with a service-account token: it calls the Kubernetes API.
      automountServiceAccountToken: true,
      // A Deployment's selector is immutable: it keeps the labels it selected by before cdk8s-plus.
      select: false,
    });
    deployment.select(kplus.LabelSelector.of({ labels: selector }));
    const health = { port: PORTS.api, periodSeconds: Duration.seconds(5) };
    deployment.addContainer(
      hardenedContainer({
        name: 'api',
        image: this.image,
        args: ['trainer', 'api'],
        envVariables: env,
        ports: [{ name: 'http', number: PORTS.api }],
        readiness: kplus.Probe.fromHttpGet(API_PATHS.ready, health),
        liveness: kplus.Probe.fromHttpGet(API_PATHS.health, {
          ...health,
          initialDelaySeconds: Duration.seconds(10),
          periodSeconds: Duration.seconds(10),
        }),
        resourceSpec,
        volumeMounts: [
          { path: PATHS.tmp, volume: kplus.Volume.fromEmptyDir(deployment, 'Tmp', 'tmp', { sizeLimit: Size.mebibytes(256) }) },
        ],
      }),
    );
    hardenPodTemplate(deployment);
    service.select(deployment);

    const tracking = props.tracking;
    new PodPolicy(this, 'Policy', {
      name: this.name,
      labels,
      selector: deployment,
      ingress: (s) => {
        const ports = [kplus.NetworkPolicyPort.tcp(PORTS.api)];
        const peers = allowedClients
          ? allowedClients.map((selector, i) => kplus.Pods.select(s, `Client${i}`, { labels: selector }))
          : [kplus.Pods.all(s, 'AnyPod')];
        return peers.map((peer) => ({ peer, ports }));
      },
      egress: (s) => [apiServerRule(s, kubernetesApiCidr), dnsRule(s), ...(tracking ? [trackingRule(s, tracking.serverPodLabels)] : [])],
    });
  }
}
