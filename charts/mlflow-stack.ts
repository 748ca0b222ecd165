import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ENV, LABELS, PORTS, SECRET_KEYS, SecretSpec, TRAINER_IMAGE } from '../trainer/src/contract';
import { GeneratedSecrets } from './lib/generated-secrets';
import { PropError, checkDnsLabel, checkHttpUrl, checkImage, checkInt, checkResources, nameOf } from './lib/props';
import { ResourceSpec } from './lib/workload';
import { PostgresStore } from './mlflow/postgres-store';
import { S3Store } from './mlflow/s3-store';
import { MLFLOW_SYNC_WAVES, POSTGRES_PORT, stackLabels } from './mlflow/storage';
import { ArtifactStore, BackendStore, TrackingServer } from './mlflow/tracking-server';

export { MLFLOW_SYNC_WAVES, PostgresStore, S3Store, TrackingServer };

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
  /**
   * Run MLflow's basic auth (`mlflow server --app-name basic-auth`): every call but /health needs a user. The admin's
   * name and password are generated into the Secret `<name>-auth` (keys "username" and "password"), and every trainer
   * that reports to this stack (DdpCluster, FederatedFleet, SplitLearning, the TrainingApi and its jobs) gets them as
   * MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from it. Users' own accounts live in a SQLite database on the
   * server pod's scratch volume: the admin is made again from the Secret at every start, other accounts are not kept.
   *
   * @default false
   */
  readonly basicAuth?: boolean;
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

  /** The bundled PostgreSQL, unless an external database is used. */
  public readonly postgres?: PostgresStore;
  /** The bundled SeaweedFS, unless an external S3 endpoint is used. */
  public readonly artifactStore?: S3Store;
  public readonly server: TrackingServer;
  /** The Secret with the admin's credentials, when basic auth is on (see {@link MlflowStackProps.basicAuth}). */
  public readonly authSecretName?: string;

  constructor(scope: Construct, id: string, props: MlflowStackProps = {}) {
    super(scope, id);
    this.name = nameOf(this, props.name, 40);
    this.mlflowImage = checkImage(this, 'mlflowImage', props.mlflowImage ?? 'ghcr.io/tensorfleet/mlflow:2.10.2');
    this.postgresImage = checkImage(this, 'postgresImage', props.postgresImage ?? 'postgres:16.4');
    this.seaweedfsImage = checkImage(this, 'seaweedfsImage', props.seaweedfsImage ?? 'chrislusf/seaweedfs:3.80');
    this.secretsJobImage = checkImage(this, 'secretsJobImage', props.secretsJobImage ?? `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`);
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

    const generated: SecretSpec[] = [];
    if (props.basicAuth === true) {
      this.authSecretName = `${this.name}-auth`;
      generated.push({ name: this.authSecretName, keys: [SECRET_KEYS.username, SECRET_KEYS.password, SECRET_KEYS.flaskSecretKey] });
    }
    let backend: BackendStore;
    if (props.externalDatabaseHost !== undefined) {
      if (props.externalDatabasePasswordSecretName === undefined) {
        throw new PropError(
          this,
          'externalDatabasePasswordSecretName',
          undefined,
          `the name of a Secret holding the database password under the key "${SECRET_KEYS.password}" when 'externalDatabaseHost' is set`,
        );
      }
      backend = {
        host: checkHost(this, 'externalDatabaseHost', props.externalDatabaseHost),
        port: checkInt(this, 'externalDatabasePort', props.externalDatabasePort ?? POSTGRES_PORT, 1, 65535),
        database: checkDnsLabel(this, 'externalDatabaseName', props.externalDatabaseName ?? DB_NAME_DEFAULT),
        user: checkDnsLabel(this, 'externalDatabaseUser', props.externalDatabaseUser ?? DB_USER_DEFAULT),
        secretName: checkDnsLabel(this, 'externalDatabasePasswordSecretName', props.externalDatabasePasswordSecretName, 253),
      };
    } else {
      const secretName = `${this.name}-postgres`;
      generated.push({ name: secretName, keys: [SECRET_KEYS.password] });
      this.postgres = new PostgresStore(this, 'Postgres', {
        stack: this.name,
        image: this.postgresImage,
        storageGiB: this.postgresStorageGiB,
        storageClassName: props.storageClassName,
        resources: props.postgresResources ?? DEFAULT_RESOURCES,
        user: DB_USER_DEFAULT,
        database: DB_NAME_DEFAULT,
        secretName,
      });
      const store = this.postgres;
      backend = { host: store.host, port: store.port, user: DB_USER_DEFAULT, database: DB_NAME_DEFAULT, secretName, store };
    }

    let artifacts: ArtifactStore;
    if (props.externalS3Endpoint !== undefined) {
      if (props.externalS3SecretName === undefined) {
        throw new PropError(
          this,
          'externalS3SecretName',
          undefined,
          `the name of a Secret holding ${SECRET_KEYS.accessKeyId} and ${SECRET_KEYS.secretAccessKey} when 'externalS3Endpoint' is set`,
        );
      }
      artifacts = {
        endpoint: checkHttpUrl(this, 'externalS3Endpoint', props.externalS3Endpoint),
        bucket: this.artifactBucket,
        secretName: checkDnsLabel(this, 'externalS3SecretName', props.externalS3SecretName, 253),
      };
    } else {
      const secretName = `${this.name}-s3`;
      generated.push({ name: secretName, keys: [SECRET_KEYS.accessKeyId, SECRET_KEYS.secretAccessKey] });
      this.artifactStore = new S3Store(this, 'Seaweedfs', {
        stack: this.name,
        image: this.seaweedfsImage,
        storageGiB: this.artifactStorageGiB,
        storageClassName: props.storageClassName,
        resources: props.seaweedfsResources ?? DEFAULT_RESOURCES,
        secretName,
      });
      artifacts = { endpoint: this.artifactStore.endpoint, bucket: this.artifactBucket, secretName, store: this.artifactStore };
    }

    if (generated.length > 0) {
      new GeneratedSecrets(this, 'Secrets', {
        name: `${this.name}-secrets`,
        secrets: generated,
        image: this.secretsJobImage,
        labels: stackLabels(this.name, 'secrets', this.secretsJobImage),
      });
    }
    this.server = new TrackingServer(this, 'Server', {
      stack: this.name,
      image: this.mlflowImage,
      resources: props.mlflowResources ?? { ...DEFAULT_RESOURCES, memoryRequestMiB: 512 },
      backend,
      artifacts,
      clientPodLabels: this.clientPodLabels,
      ...(this.authSecretName === undefined ? {} : { authSecretName: this.authSecretName }),
    });
    this.serviceName = this.server.service.name;
    this.serverPodLabels = this.server.podSelector;
    // Only the tracking server reaches the stores.
    this.postgres?.admit(this.server.podSelector);
    this.artifactStore?.admit(this.server.podSelector);
  }

  /** The tracking URI trainers in the same namespace use. */
  public get trackingUri(): string {
    return `http://${this.serviceName}:${PORTS.mlflow}`;
  }

  /**
   * MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from the auth Secret (secretKeyRef, never a value in the
   * manifest) for a container of `scope` that reports to this stack; nothing without basic auth.
   */
  public credentialsEnv(scope: Construct): Record<string, kplus.EnvValue> {
    if (this.authSecretName === undefined) return {};
    const secret = kplus.Secret.fromSecretName(scope, 'MlflowAuth', this.authSecretName);
    return {
      [ENV.trackingUsername]: kplus.EnvValue.fromSecretValue({ secret, key: SECRET_KEYS.username }),
      [ENV.trackingPassword]: kplus.EnvValue.fromSecretValue({ secret, key: SECRET_KEYS.password }),
    };
  }

  /** `secret/<auth Secret>` for the external-refs annotation of a workload that reads it; none without basic auth. */
  public get credentialsExternalRefs(): string[] {
    return this.authSecretName === undefined ? [] : [`secret/${this.authSecretName}`];
  }
}

function checkHost(scope: Construct, prop: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(value) || value.length > 253) {
    throw new PropError(scope, prop, value, 'a DNS name or IP address');
  }
  return value;
}
