import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PORTS, SECRET_KEYS, TRAINER_IMAGE } from '../../trainer/src/contract';
import { dnsEgress, podPeer, tcpPorts } from '../lib/network';
import { ResourceSpec, containerSecurityContext, resources, scratchVolume, secretEnv, selectorLabels } from '../lib/workload';
import { PostgresStore } from './postgres-store';
import { S3Store } from './s3-store';
import { MLFLOW_SYNC_WAVES, secretRefs, stackLabels, syncWave, onePod } from './storage';

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
  public readonly service: k8s.KubeService;
  /** Labels that select the tracking server's pods. */
  public readonly podSelector: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: TrackingServerProps) {
    super(scope, id);
    const { backend, artifacts } = props;
    const name = props.stack;
    this.podSelector = selectorLabels(props.stack, 'tracking-server');
    const labels = stackLabels(props.stack, 'tracking-server', props.image);
    const wave = syncWave(MLFLOW_SYNC_WAVES.server);
    const s3Env: k8s.EnvVar[] = [
      { name: 'MLFLOW_S3_ENDPOINT_URL', value: artifacts.endpoint },
      secretEnv(SECRET_KEYS.accessKeyId, artifacts.secretName, SECRET_KEYS.accessKeyId),
      secretEnv(SECRET_KEYS.secretAccessKey, artifacts.secretName, SECRET_KEYS.secretAccessKey),
    ];
    const http = k8s.IntOrString.fromString('http');
    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name, labels, annotations: wave },
      spec: { selector: { ...this.podSelector }, ports: [{ name: 'http', port: PORTS.mlflow, targetPort: http }] },
    });
    new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name, labels, annotations: { ...wave, ...secretRefs([backend.secretName, artifacts.secretName]) } },
      spec: {
        ...onePod(this.podSelector, labels, TRAINER_IMAGE.uid, TRAINER_IMAGE.gid, {
          initContainers: [
            {
              name: 'ensure-bucket',
              image: props.image,
              command: ['tensorfleet-ensure-bucket', artifacts.bucket],
              env: [...s3Env, { name: 'HOME', value: '/tmp' }],
              resources: resources({ cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 64, memoryLimitMiB: 256 }),
              securityContext: containerSecurityContext(),
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          containers: [
            {
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
              env: [
                secretEnv('DB_PASSWORD', backend.secretName, SECRET_KEYS.password),
                // Kubernetes expands $(DB_PASSWORD): the password is in no manifest, arg or ConfigMap.
                {
                  name: 'MLFLOW_BACKEND_STORE_URI',
                  value: `postgresql://${backend.user}:$(DB_PASSWORD)@${backend.host}:${backend.port}/${backend.database}`,
                },
                ...s3Env,
                { name: 'HOME', value: '/tmp' },
              ],
              ports: [{ name: 'http', containerPort: PORTS.mlflow }],
              readinessProbe: { httpGet: { path: '/health', port: http }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/health', port: http }, initialDelaySeconds: 30, periodSeconds: 10, timeoutSeconds: 5 },
              resources: resources(props.resources),
              securityContext: containerSecurityContext(),
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [scratchVolume('tmp', 1024)],
        }),
      },
    });
    const egress: k8s.NetworkPolicyEgressRule[] = [
      dnsEgress(),
      backend.store
        ? { to: [podPeer(backend.store.podSelector)], ports: tcpPorts(backend.store.port) }
        : { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(backend.port) },
      artifacts.store
        ? { to: [podPeer(artifacts.store.podSelector)], ports: tcpPorts(artifacts.store.port) }
        : { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(portOf(artifacts.endpoint)) },
    ];
    new k8s.KubeNetworkPolicy(this, 'Policy', {
      metadata: { name, labels, annotations: wave },
      spec: {
        podSelector: { matchLabels: { ...this.podSelector } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(props.clientPodLabels)], ports: tcpPorts(PORTS.mlflow) }],
        egress,
      },
    });
  }
}

function portOf(endpoint: string): number {
  const url = new URL(endpoint);
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}
