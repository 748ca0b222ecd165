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
}

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
      metadata: { name, labels, annotations: { ...wave, ...secretRefs([backend.secretName, artifacts.secretName]) } },
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
        ],
        envVariables: {
          DB_PASSWORD: kplus.EnvValue.fromSecretValue({ secret: password, key: SECRET_KEYS.password }),
          // Kubernetes expands $(DB_PASSWORD), defined above: the password is in no manifest, arg or ConfigMap.
          MLFLOW_BACKEND_STORE_URI: kplus.EnvValue.fromValue(
            `postgresql://${backend.user}:$(DB_PASSWORD)@${backend.host}:${backend.port}/${backend.database}`,
          ),
          ...s3Env,
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
