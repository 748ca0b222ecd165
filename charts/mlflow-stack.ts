import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import {
  ANNOTATIONS,
  LABELS,
  PORTS,
  SECRET_KEYS,
  SecretSpec,
  TRAINER_IMAGE,
} from '../trainer/src/contract';
import { GeneratedSecrets, SECRET_SYNC_WAVES } from './lib/generated-secrets';
import { dnsEgress, podPeer, tcpPorts } from './lib/network';
import { PropError, checkDnsLabel, checkHttpUrl, checkImage, checkInt, checkResources, kebab } from './lib/props';
import {
  ResourceSpec,
  containerSecurityContext,
  imageVersion,
  objectLabels,
  podSecurityContext,
  resources,
  scratchVolume,
  secretEnv,
  selectorLabels,
} from './lib/workload';

/** Argo CD sync waves: credentials, then storage, then the tracking server. */
export const MLFLOW_SYNC_WAVES = { rbac: SECRET_SYNC_WAVES.rbac, secrets: SECRET_SYNC_WAVES.job, storage: -1, server: 0 } as const;

const POSTGRES_PORT = 5432;
const S3_PORT = 8333;
const DB_USER_DEFAULT = 'mlflow';
const DB_NAME_DEFAULT = 'mlflow';

export interface MlflowStackProps {
  /**
   * Prefix of every object name (a DNS-1123 label).
   *
   * @default - the construct id in kebab-case
   */
  readonly name?: string;
  /**
   * MLflow image. The official image lacks the PostgreSQL and S3 drivers, so the
   * default adds psycopg2 and boto3 to it (images/mlflow/Dockerfile).
   *
   * @default "ghcr.io/tensorfleet/mlflow:2.10.2"
   */
  readonly mlflowImage?: string;
  /** @default "postgres:16.4" */
  readonly postgresImage?: string;
  /** @default "chrislusf/seaweedfs:3.80" */
  readonly seaweedfsImage?: string;
  /**
   * Image of the Job that generates the Secrets in the cluster.
   *
   * @default - the Tensorfleet trainer image
   */
  readonly secretsJobImage?: string;
  /** @default 10 */
  readonly postgresStorageGiB?: number;
  /** @default 20 */
  readonly artifactStorageGiB?: number;
  /**
   * StorageClass of both PersistentVolumeClaims.
   *
   * @default - the cluster's default StorageClass
   */
  readonly storageClassName?: string;
  /** @default "mlflow-artifacts" */
  readonly artifactBucket?: string;
  /** @default - 250m/1000m CPU, 512/1024 MiB */
  readonly mlflowResources?: ResourceSpec;
  /** @default - 250m/1000m CPU, 256/1024 MiB */
  readonly postgresResources?: ResourceSpec;
  /** @default - 250m/1000m CPU, 256/1024 MiB */
  readonly seaweedfsResources?: ResourceSpec;
  /**
   * Host of an existing PostgreSQL; no PostgreSQL is bundled when set.
   *
   * @default - a bundled PostgreSQL StatefulSet
   */
  readonly externalDatabaseHost?: string;
  /** @default 5432 */
  readonly externalDatabasePort?: number;
  /** @default "mlflow" */
  readonly externalDatabaseName?: string;
  /** @default "mlflow" */
  readonly externalDatabaseUser?: string;
  /**
   * Secret holding the external database's password under the key "password".
   * Required with externalDatabaseHost.
   *
   * @default - none
   */
  readonly externalDatabasePasswordSecretName?: string;
  /**
   * http(s) endpoint of an existing S3-compatible store; no SeaweedFS is bundled when set.
   *
   * @default - a bundled SeaweedFS StatefulSet
   */
  readonly externalS3Endpoint?: string;
  /**
   * Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the external store.
   * Required with externalS3Endpoint.
   *
   * @default - none
   */
  readonly externalS3SecretName?: string;
}

const DEFAULT_RESOURCES: ResourceSpec = { cpuRequestMillis: 250, cpuLimitMillis: 1000, memoryRequestMiB: 256, memoryLimitMiB: 1024 };

/**
 * MLflow tracking with PostgreSQL as backend store and SeaweedFS as S3 artifact
 * store, served through MLflow's artifact proxy (trainers never hold S3 keys).
 */
export class MlflowStack extends Construct {
  public readonly name: string;
  public readonly mlflowImage: string;
  public readonly postgresImage: string;
  public readonly seaweedfsImage: string;
  public readonly secretsJobImage: string;
  public readonly postgresStorageGiB: number;
  public readonly artifactStorageGiB: number;
  public readonly artifactBucket: string;
  /** The tracking server's Service name. */
  public readonly serviceName: string;
  /** Labels of pods allowed to reach the tracking server: every trainer pod carries them. */
  public readonly clientPodLabels: Readonly<Record<string, string>> = { [LABELS.trainer]: 'true' };
  /** Labels of the tracking server pods (for egress rules of clients). */
  public readonly serverPodLabels: Readonly<Record<string, string>>;

  private readonly db: { host: string; port: number; name: string; user: string; secret: string };
  private readonly s3: { endpoint: string; secret: string };
  private readonly generatedSecrets: SecretSpec[] = [];

  constructor(scope: Construct, id: string, props: MlflowStackProps = {}) {
    super(scope, id);
    this.name = checkDnsLabel(this, 'name', props.name ?? kebab(id), 40);
    this.mlflowImage = checkImage(this, 'mlflowImage', props.mlflowImage ?? 'ghcr.io/tensorfleet/mlflow:2.10.2');
    this.postgresImage = checkImage(this, 'postgresImage', props.postgresImage ?? 'postgres:16.4');
    this.seaweedfsImage = checkImage(this, 'seaweedfsImage', props.seaweedfsImage ?? 'chrislusf/seaweedfs:3.80');
    this.secretsJobImage = checkImage(
      this,
      'secretsJobImage',
      props.secretsJobImage ?? `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`,
    );
    this.postgresStorageGiB = checkInt(this, 'postgresStorageGiB', props.postgresStorageGiB ?? 10, 1);
    this.artifactStorageGiB = checkInt(this, 'artifactStorageGiB', props.artifactStorageGiB ?? 20, 1);
    this.artifactBucket = checkDnsLabel(this, 'artifactBucket', props.artifactBucket ?? 'mlflow-artifacts');
    if (props.storageClassName !== undefined) checkDnsLabel(this, 'storageClassName', props.storageClassName, 253);
    for (const [prop, spec] of Object.entries({
      mlflowResources: props.mlflowResources,
      postgresResources: props.postgresResources,
      seaweedfsResources: props.seaweedfsResources,
    })) {
      if (spec) checkResources(this, prop, spec);
    }
    this.serviceName = this.name;
    this.serverPodLabels = selectorLabels(this.name, 'tracking-server');

    if (props.externalDatabaseHost !== undefined) {
      if (props.externalDatabasePasswordSecretName === undefined) {
        throw new PropError(
          this,
          'externalDatabasePasswordSecretName',
          undefined,
          `the name of a Secret holding the database password under the key "${SECRET_KEYS.password}" when 'externalDatabaseHost' is set`,
        );
      }
      this.db = {
        host: checkHost(this, 'externalDatabaseHost', props.externalDatabaseHost),
        port: checkInt(this, 'externalDatabasePort', props.externalDatabasePort ?? POSTGRES_PORT, 1, 65535),
        name: checkDnsLabel(this, 'externalDatabaseName', props.externalDatabaseName ?? DB_NAME_DEFAULT),
        user: checkDnsLabel(this, 'externalDatabaseUser', props.externalDatabaseUser ?? DB_USER_DEFAULT),
        secret: checkDnsLabel(this, 'externalDatabasePasswordSecretName', props.externalDatabasePasswordSecretName, 253),
      };
    } else {
      this.db = { host: `${this.name}-postgres`, port: POSTGRES_PORT, name: DB_NAME_DEFAULT, user: DB_USER_DEFAULT, secret: `${this.name}-postgres` };
      this.generatedSecrets.push({ name: this.db.secret, keys: [SECRET_KEYS.password] });
      this.addPostgres(props.postgresResources ?? DEFAULT_RESOURCES, props.storageClassName);
    }

    if (props.externalS3Endpoint !== undefined) {
      if (props.externalS3SecretName === undefined) {
        throw new PropError(
          this,
          'externalS3SecretName',
          undefined,
          `the name of a Secret holding ${SECRET_KEYS.accessKeyId} and ${SECRET_KEYS.secretAccessKey} when 'externalS3Endpoint' is set`,
        );
      }
      this.s3 = {
        endpoint: checkHttpUrl(this, 'externalS3Endpoint', props.externalS3Endpoint),
        secret: checkDnsLabel(this, 'externalS3SecretName', props.externalS3SecretName, 253),
      };
    } else {
      this.s3 = { endpoint: `http://${this.name}-seaweedfs:${S3_PORT}`, secret: `${this.name}-s3` };
      this.generatedSecrets.push({ name: this.s3.secret, keys: [SECRET_KEYS.accessKeyId, SECRET_KEYS.secretAccessKey] });
      this.addSeaweedfs(props.seaweedfsResources ?? DEFAULT_RESOURCES, props.storageClassName);
    }

    if (this.generatedSecrets.length > 0) this.addSecretsJob();
    this.addServer(props.mlflowResources ?? { ...DEFAULT_RESOURCES, memoryRequestMiB: 512 });
  }

  /** The tracking URI trainers in the same namespace use. */
  public get trackingUri(): string {
    return `http://${this.serviceName}:${PORTS.mlflow}`;
  }

  private labels(component: string, image: string): Record<string, string> {
    return objectLabels('mlflow-stack', this.name, component, imageVersion(image));
  }

  private addPostgres(spec: ResourceSpec, storageClassName: string | undefined): void {
    const name = `${this.name}-postgres`;
    const selector = selectorLabels(this.name, 'backend-store');
    const labels = this.labels('backend-store', this.postgresImage);
    const wave = syncWave(MLFLOW_SYNC_WAVES.storage);
    new k8s.KubeService(this, 'PostgresService', {
      metadata: { name, labels, annotations: wave },
      spec: {
        clusterIp: 'None',
        selector,
        ports: [{ name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres') }],
      },
    });
    new k8s.KubeStatefulSet(this, 'Postgres', {
      metadata: { name, labels, annotations: { ...wave, ...this.externalRefs([this.db.secret]) } },
      spec: {
        serviceName: name,
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            // uid/gid 999 is the postgres user of the official image.
            securityContext: podSecurityContext(999),
            containers: [
              {
                name: 'postgres',
                image: this.postgresImage,
                ports: [{ name: 'postgres', containerPort: POSTGRES_PORT }],
                env: [
                  { name: 'POSTGRES_USER', value: this.db.user },
                  { name: 'POSTGRES_DB', value: this.db.name },
                  secretEnv('POSTGRES_PASSWORD', this.db.secret, SECRET_KEYS.password),
                  { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
                ],
                readinessProbe: {
                  exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', this.db.user, '-d', this.db.name] },
                  periodSeconds: 5,
                  timeoutSeconds: 3,
                },
                livenessProbe: {
                  exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', this.db.user, '-d', this.db.name] },
                  initialDelaySeconds: 30,
                  periodSeconds: 10,
                  timeoutSeconds: 5,
                },
                resources: resources(spec),
                securityContext: containerSecurityContext(),
                volumeMounts: [
                  { name: 'data', mountPath: '/var/lib/postgresql/data' },
                  { name: 'run', mountPath: '/var/run/postgresql' },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [scratchVolume('run', 16), scratchVolume('tmp', 256)],
          },
        },
        volumeClaimTemplates: [claim('data', this.postgresStorageGiB, storageClassName)],
      },
    });
    this.ingressOnly('PostgresPolicy', `${name}`, selector, this.serverPodLabels, POSTGRES_PORT, MLFLOW_SYNC_WAVES.storage);
  }

  private addSeaweedfs(spec: ResourceSpec, storageClassName: string | undefined): void {
    const name = `${this.name}-seaweedfs`;
    const selector = selectorLabels(this.name, 'artifact-store');
    const labels = this.labels('artifact-store', this.seaweedfsImage);
    const wave = syncWave(MLFLOW_SYNC_WAVES.storage);
    const credentials = [
      secretEnv(SECRET_KEYS.accessKeyId, this.s3.secret, SECRET_KEYS.accessKeyId),
      secretEnv(SECRET_KEYS.secretAccessKey, this.s3.secret, SECRET_KEYS.secretAccessKey),
    ];
    new k8s.KubeService(this, 'SeaweedfsService', {
      metadata: { name, labels, annotations: wave },
      spec: {
        // Headless: the StatefulSet's governing Service, and clients resolve the pod directly.
        clusterIp: 'None',
        selector,
        ports: [{ name: 's3', port: S3_PORT, targetPort: k8s.IntOrString.fromString('s3') }],
      },
    });
    new k8s.KubeStatefulSet(this, 'Seaweedfs', {
      metadata: { name, labels, annotations: { ...wave, ...this.externalRefs([this.s3.secret]) } },
      spec: {
        serviceName: name,
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: podSecurityContext(1000),
            initContainers: [
              {
                // Renders the S3 identity file from the Secret into a memory-backed emptyDir.
                name: 's3-config',
                image: this.seaweedfsImage,
                command: ['/bin/sh', '-c'],
                args: [
                  `umask 077; printf '{"identities":[{"name":"mlflow","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' "$${SECRET_KEYS.accessKeyId}" "$${SECRET_KEYS.secretAccessKey}" > /etc/seaweedfs/s3.json`,
                ],
                env: credentials,
                resources: resources({ cpuRequestMillis: 50, cpuLimitMillis: 200, memoryRequestMiB: 32, memoryLimitMiB: 64 }),
                securityContext: containerSecurityContext(),
                volumeMounts: [{ name: 's3-config', mountPath: '/etc/seaweedfs' }],
              },
            ],
            containers: [
              {
                name: 'seaweedfs',
                image: this.seaweedfsImage,
                args: [
                  'server',
                  '-dir=/data',
                  '-ip.bind=0.0.0.0',
                  '-s3',
                  `-s3.port=${S3_PORT}`,
                  '-s3.config=/etc/seaweedfs/s3.json',
                  '-master.volumeSizeLimitMB=1024',
                  '-volume.max=0',
                ],
                ports: [{ name: 's3', containerPort: S3_PORT }],
                readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('s3') }, periodSeconds: 5 },
                livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('s3') }, initialDelaySeconds: 30, periodSeconds: 10 },
                resources: resources(spec),
                securityContext: containerSecurityContext(),
                volumeMounts: [
                  { name: 'data', mountPath: '/data' },
                  { name: 's3-config', mountPath: '/etc/seaweedfs', readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [{ name: 's3-config', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('1Mi') } }, scratchVolume('tmp', 256)],
          },
        },
        volumeClaimTemplates: [claim('data', this.artifactStorageGiB, storageClassName)],
      },
    });
    // The all-in-one server talks to itself (master, volume, filer) over the pod IP.
    new k8s.KubeNetworkPolicy(this, 'SeaweedfsPolicy', {
      metadata: { name, labels: this.labels('artifact-store', this.seaweedfsImage), annotations: wave },
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(this.serverPodLabels)], ports: tcpPorts(S3_PORT) }, { from: [podPeer(selector)] }],
        egress: [{ to: [podPeer(selector)] }],
      },
    });
  }

  private addSecretsJob(): void {
    new GeneratedSecrets(this, 'Secrets', {
      name: `${this.name}-secrets`,
      secrets: this.generatedSecrets,
      image: this.secretsJobImage,
      labels: this.labels('secrets', this.secretsJobImage),
    });
  }

  private addServer(spec: ResourceSpec): void {
    const name = this.name;
    const selector = this.serverPodLabels;
    const labels = this.labels('tracking-server', this.mlflowImage);
    const wave = syncWave(MLFLOW_SYNC_WAVES.server);
    const s3Env: k8s.EnvVar[] = [
      { name: 'MLFLOW_S3_ENDPOINT_URL', value: this.s3.endpoint },
      secretEnv(SECRET_KEYS.accessKeyId, this.s3.secret, SECRET_KEYS.accessKeyId),
      secretEnv(SECRET_KEYS.secretAccessKey, this.s3.secret, SECRET_KEYS.secretAccessKey),
    ];
    new k8s.KubeService(this, 'Service', {
      metadata: { name, labels, annotations: wave },
      spec: {
        selector,
        ports: [{ name: 'http', port: PORTS.mlflow, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });
    new k8s.KubeDeployment(this, 'Server', {
      metadata: {
        name,
        labels,
        annotations: { ...wave, ...this.externalRefs([this.db.secret, this.s3.secret]) },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: podSecurityContext(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid),
            initContainers: [
              {
                name: 'ensure-bucket',
                image: this.mlflowImage,
                command: ['tensorfleet-ensure-bucket', this.artifactBucket],
                env: [...s3Env, { name: 'HOME', value: '/tmp' }],
                resources: resources({ cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 64, memoryLimitMiB: 256 }),
                securityContext: containerSecurityContext(),
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
              },
            ],
            containers: [
              {
                name: 'mlflow',
                image: this.mlflowImage,
                command: ['mlflow', 'server'],
                args: [
                  '--host=0.0.0.0',
                  `--port=${PORTS.mlflow}`,
                  '--serve-artifacts',
                  `--artifacts-destination=s3://${this.artifactBucket}/`,
                  '--workers=2',
                ],
                env: [
                  secretEnv('DB_PASSWORD', this.db.secret, SECRET_KEYS.password),
                  // Kubernetes expands $(DB_PASSWORD): the password is in no manifest, arg or ConfigMap.
                  {
                    name: 'MLFLOW_BACKEND_STORE_URI',
                    value: `postgresql://${this.db.user}:$(DB_PASSWORD)@${this.db.host}:${this.db.port}/${this.db.name}`,
                  },
                  ...s3Env,
                  { name: 'HOME', value: '/tmp' },
                ],
                ports: [{ name: 'http', containerPort: PORTS.mlflow }],
                readinessProbe: { httpGet: { path: '/health', port: k8s.IntOrString.fromString('http') }, periodSeconds: 5 },
                livenessProbe: {
                  httpGet: { path: '/health', port: k8s.IntOrString.fromString('http') },
                  initialDelaySeconds: 30,
                  periodSeconds: 10,
                  timeoutSeconds: 5,
                },
                resources: resources(spec),
                securityContext: containerSecurityContext(),
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
              },
            ],
            volumes: [scratchVolume('tmp', 1024)],
          },
        },
      },
    });
    const egress: k8s.NetworkPolicyEgressRule[] = [dnsEgress()];
    egress.push(
      this.generatedSecrets.some((s) => s.name === this.db.secret)
        ? { to: [podPeer(selectorLabels(this.name, 'backend-store'))], ports: tcpPorts(POSTGRES_PORT) }
        : { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(this.db.port) },
    );
    egress.push(
      this.generatedSecrets.some((s) => s.name === this.s3.secret)
        ? { to: [podPeer(selectorLabels(this.name, 'artifact-store'))], ports: tcpPorts(S3_PORT) }
        : { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(portOf(this.s3.endpoint)) },
    );
    new k8s.KubeNetworkPolicy(this, 'ServerPolicy', {
      metadata: { name, labels, annotations: wave },
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(this.clientPodLabels)], ports: tcpPorts(PORTS.mlflow) }],
        egress,
      },
    });
  }

  /** Secrets a workload reads that are not in the chart: generated by the secrets Job, or the user's. */
  private externalRefs(secrets: readonly string[]): Record<string, string> {
    return { [ANNOTATIONS.externalRefs]: secrets.map((s) => `secret/${s}`).join(',') };
  }

  /** A policy that admits only `from` on `port` and lets the pods send nothing. */
  private ingressOnly(
    id: string,
    name: string,
    selector: Record<string, string>,
    from: Readonly<Record<string, string>>,
    port: number,
    wave: number,
  ): void {
    new k8s.KubeNetworkPolicy(this, id, {
      metadata: { name, labels: objectLabels('mlflow-stack', this.name, 'network-policy'), annotations: syncWave(wave) },
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(from)], ports: tcpPorts(port) }],
        egress: [],
      },
    });
  }
}

export function syncWave(wave: number): Record<string, string> {
  return { [ANNOTATIONS.argoSyncWave]: String(wave) };
}

function claim(name: string, sizeGiB: number, storageClassName: string | undefined): k8s.KubePersistentVolumeClaimProps {
  return {
    metadata: { name },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storageClassName !== undefined ? { storageClassName } : {}),
      resources: { requests: { storage: k8s.Quantity.fromString(`${sizeGiB}Gi`) } },
    },
  };
}

function checkHost(scope: Construct, prop: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(value) || value.length > 253) {
    throw new PropError(scope, prop, value, 'a DNS name or IP address');
  }
  return value;
}

function portOf(endpoint: string): number {
  const url = new URL(endpoint);
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}
