import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PORTS, SECRET_KEYS, TRAINER_IMAGE } from '../../trainer/src/contract';
import { hardenPodTemplate, hardenedContainer, hardenedPodProps } from '../lib/hardened';
import { PodPolicy, cidrPeer, dnsRule } from '../lib/network';
import { ResourceSpec, selectorLabels } from '../lib/workload';
import { PostgresStore } from './postgres-store';
import { S3Store } from './s3-store';
import { MLFLOW_SYNC_WAVES, secretRefs, stackLabels, syncWave } from './storage';

/** Where MLflow keeps runs: the bundled {@link PostgresStore}, or an external database. */
export interface BackendStore {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** The Secret with the password under {@link SECRET_KEYS.password}. */
  readonly secretName: string;
  /** The bundled store (egress to its pods); undefined for an external database (egress to its port anywhere). */
  readonly store?: PostgresStore;
}

/** Where MLflow keeps artifacts: the bundled {@link S3Store}, or an external S3 endpoint. */
export interface ArtifactStore {
  readonly endpoint: string;
  readonly bucket: string;
  /** The Secret with the S3 keys. */
  readonly secretName: string;
  /** The bundled store; undefined for an external endpoint. */
  readonly store?: S3Store;
}

export interface TrackingServerProps {
  /** The MlflowStack's name: the Service's name. */
  readonly stack: string;
  readonly image: string;
  readonly resources: ResourceSpec;
  readonly backend: BackendStore;
  readonly artifacts: ArtifactStore;
  /** Labels of the pods admitted on the MLflow port. */
  readonly clientPodLabels: Readonly<Record<string, string>>;
  /**
   * Run MLflow's basic auth with the admin of this Secret (keys username, password, flask-secret-key).
   *
   * @default - no auth
   */
  readonly authSecretName?: string;
}

/** Where the basic-auth app's config and user database live: the pod's scratch volume (the root is read-only). */
export const MLFLOW_AUTH_DIR = '/tmp/mlflow-auth';

/**
 * The init step of basic auth: MLflow 2.10's auth app reads its admin from an INI file (MLFLOW_AUTH_CONFIG_PATH; no
 * variable expansion), so the Secret's values are written into one on the scratch volume (mode 0600), and its user
 * database is made and the admin added once here, before the server's workers start (each would migrate and add
 * it at once otherwise). The database is SQLite on the same volume: MLflow's auth migrations keep their version in
 * alembic's default table, which the tracking store's PostgreSQL database already uses for its own.
 */
const AUTH_SETUP_SCRIPT = [
  'import configparser, os',
  `d = ${JSON.stringify(MLFLOW_AUTH_DIR)}`,
  'os.makedirs(d, mode=0o700, exist_ok=True)',
  "uri = 'sqlite:///' + d + '/basic_auth.db'",
  "user, password = os.environ['MLFLOW_ADMIN_USERNAME'], os.environ['MLFLOW_ADMIN_PASSWORD']",
  'c = configparser.ConfigParser(interpolation=None)',
  "c['mlflow'] = {'default_permission': 'READ', 'database_uri': uri, 'admin_username': user, 'admin_password': password}",
  "with open(os.open(d + '/basic_auth.ini', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as f:",
  '    c.write(f)',
  "os.environ['MLFLOW_AUTH_CONFIG_PATH'] = d + '/basic_auth.ini'",
  'from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore',
  's = SqlAlchemyStore()',
  's.init_db(uri)',
  'if not s.has_user(user):',
  '    s.create_user(user, password, is_admin=True)',
].join('\n');

/** The MLflow tracking server: a Deployment behind a Service, proxying artifacts so trainers never hold S3 keys. */
export class TrackingServer extends Construct {
  public readonly service: kplus.Service;
  public readonly deployment: kplus.Deployment;
  /** Labels that select the tracking server's pods. */
  public readonly podSelector: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: TrackingServerProps) {
    super(scope, id);
    const { backend, artifacts } = props;
    const name = props.stack;
    this.podSelector = selectorLabels(props.stack, 'tracking-server');
    const labels = stackLabels(props.stack, 'tracking-server', props.image);
    const wave = syncWave(MLFLOW_SYNC_WAVES.server);
    this.service = new kplus.Service(this, 'Service', {
      metadata: { name, labels, annotations: wave },
      ports: [{ name: 'http', port: PORTS.mlflow, targetPort: PORTS.mlflow }],
    });
    this.deployment = new kplus.Deployment(this, 'Deployment', {
      metadata: {
        name,
        labels,
        annotations: {
          ...wave,
          ...secretRefs([backend.secretName, artifacts.secretName, ...(props.authSecretName === undefined ? [] : [props.authSecretName])]),
        },
      },
      podMetadata: { labels },
      replicas: 1,
      // A Deployment's selector is immutable: it keeps the labels it selected by before cdk8s-plus.
      select: false,
      ...hardenedPodProps(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid),
    });
    this.deployment.select(kplus.LabelSelector.of({ labels: { ...this.podSelector } }));
    hardenPodTemplate(this.deployment);
    this.service.select(this.deployment);

    const keys = kplus.Secret.fromSecretName(this, 'S3Keys', artifacts.secretName);
    const s3Env: Record<string, kplus.EnvValue> = {
      MLFLOW_S3_ENDPOINT_URL: kplus.EnvValue.fromValue(artifacts.endpoint),
      [SECRET_KEYS.accessKeyId]: kplus.EnvValue.fromSecretValue({ secret: keys, key: SECRET_KEYS.accessKeyId }),
      [SECRET_KEYS.secretAccessKey]: kplus.EnvValue.fromSecretValue({ secret: keys, key: SECRET_KEYS.secretAccessKey }),
    };
    const home = { HOME: kplus.EnvValue.fromValue('/tmp') };
    const tmp = kplus.Volume.fromEmptyDir(this.deployment, 'Tmp', 'tmp', { sizeLimit: Size.mebibytes(1024) });
    this.deployment.addInitContainer(
      hardenedContainer({
        name: 'ensure-bucket',
        image: props.image,
        command: ['tensorfleet-ensure-bucket', artifacts.bucket],
        envVariables: { ...s3Env, ...home },
        resourceSpec: { cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 64, memoryLimitMiB: 256 },
        volumeMounts: [{ path: '/tmp', volume: tmp }],
      }),
    );
    // Basic auth: the setup step, and the server's app, INI path and Flask key.
    let authServer: Record<string, kplus.EnvValue> = {};
    let authArgs: string[] = [];
    if (props.authSecretName !== undefined) {
      const auth = kplus.Secret.fromSecretName(this, 'Auth', props.authSecretName);
      this.deployment.addInitContainer(
        hardenedContainer({
          name: 'auth-setup',
          image: props.image,
          command: ['python', '-c', AUTH_SETUP_SCRIPT],
          envVariables: {
            MLFLOW_ADMIN_USERNAME: kplus.EnvValue.fromSecretValue({ secret: auth, key: SECRET_KEYS.username }),
            MLFLOW_ADMIN_PASSWORD: kplus.EnvValue.fromSecretValue({ secret: auth, key: SECRET_KEYS.password }),
            ...home,
          },
          resourceSpec: { cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 128, memoryLimitMiB: 512 },
          volumeMounts: [{ path: '/tmp', volume: tmp }],
        }),
      );
      authServer = {
        MLFLOW_AUTH_CONFIG_PATH: kplus.EnvValue.fromValue(`${MLFLOW_AUTH_DIR}/basic_auth.ini`),
        // One key for every worker, so sessions and CSRF tokens hold across them (later MLflow versions require it;
        // 2.10 makes a random key per worker when Flask has none).
        MLFLOW_FLASK_SERVER_SECRET_KEY: kplus.EnvValue.fromSecretValue({ secret: auth, key: SECRET_KEYS.flaskSecretKey }),
      };
      authArgs = ['--app-name=basic-auth'];
    }
    const password = kplus.Secret.fromSecretName(this, 'DbPassword', backend.secretName);
    const health = { port: PORTS.mlflow, periodSeconds: Duration.seconds(5) };
    this.deployment.addContainer(
      hardenedContainer({
        name: 'mlflow',
        image: props.image,
        command: ['mlflow', 'server'],
        args: [
          '--host=0.0.0.0',
          `--port=${PORTS.mlflow}`,
          '--serve-artifacts',
          `--artifacts-destination=s3://${artifacts.bucket}/`,
          '--workers=2',
          ...authArgs,
        ],
        envVariables: {
          DB_PASSWORD: kplus.EnvValue.fromSecretValue({ secret: password, key: SECRET_KEYS.password }),
          // Kubernetes expands $(DB_PASSWORD), defined above: the password is in no manifest, arg or ConfigMap.
          MLFLOW_BACKEND_STORE_URI: kplus.EnvValue.fromValue(
            `postgresql://${backend.user}:$(DB_PASSWORD)@${backend.host}:${backend.port}/${backend.database}`,
          ),
          ...s3Env,
          ...authServer,
          ...home,
        },
        ports: [{ name: 'http', number: PORTS.mlflow }],
        readiness: kplus.Probe.fromHttpGet('/health', health),
        liveness: kplus.Probe.fromHttpGet('/health', {
          ...health,
          initialDelaySeconds: Duration.seconds(30),
          periodSeconds: Duration.seconds(10),
          timeoutSeconds: Duration.seconds(5),
        }),
        resourceSpec: props.resources,
        volumeMounts: [{ path: '/tmp', volume: tmp }],
      }),
    );

    const tcp = (port: number): kplus.NetworkPolicyPort[] => [kplus.NetworkPolicyPort.tcp(port)];
    new PodPolicy(this, 'Policy', {
      name,
      labels,
      annotations: wave,
      selector: this.deployment,
      ingress: (s) => [{ peer: kplus.Pods.select(s, 'Clients', { labels: { ...props.clientPodLabels } }), ports: tcp(PORTS.mlflow) }],
      egress: (s) => [
        dnsRule(s),
        backend.store
          ? { peer: backend.store.statefulSet, ports: tcp(backend.store.port) }
          : { peer: cidrPeer(s, 'Backend', '0.0.0.0/0'), ports: tcp(backend.port) },
        artifacts.store
          ? { peer: artifacts.store.statefulSet, ports: tcp(artifacts.store.port) }
          : { peer: cidrPeer(s, 'Artifacts', '0.0.0.0/0'), ports: tcp(portOf(artifacts.endpoint)) },
      ],
    });
  }
}

function portOf(endpoint: string): number {
  const url = new URL(endpoint);
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}
