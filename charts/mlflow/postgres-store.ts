import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SECRET_KEYS } from '../../trainer/src/contract';
import { podPeer, tcpPorts } from '../lib/network';
import { containerSecurityContext, objectLabels, resources, scratchVolume, secretEnv, selectorLabels } from '../lib/workload';
import { MLFLOW_SYNC_WAVES, POSTGRES_PORT, claim, secretRefs, stackLabels, syncWave, StoreProps, onePod } from './storage';

/** Props of the store; `secretName` holds the password under SECRET_KEYS.password. */
export interface PostgresStoreProps extends StoreProps {
  readonly user: string;
  readonly database: string;
}

/** MLflow's backend store: a PostgreSQL StatefulSet behind a headless Service, reachable only by whom it admits. */
export class PostgresStore extends Construct {
  public readonly service: k8s.KubeService;
  /** Labels that select the PostgreSQL pod. */
  public readonly podSelector: Readonly<Record<string, string>>;
  /** The host clients connect to: the Service's name. */
  public readonly host: string;
  public readonly port = POSTGRES_PORT;
  private readonly stack: string;

  constructor(scope: Construct, id: string, props: PostgresStoreProps) {
    super(scope, id);
    this.stack = props.stack;
    const name = `${props.stack}-postgres`;
    this.podSelector = selectorLabels(props.stack, 'backend-store');
    const labels = stackLabels(props.stack, 'backend-store', props.image);
    const wave = syncWave(MLFLOW_SYNC_WAVES.storage);
    const ready = ['pg_isready', '-h', '127.0.0.1', '-U', props.user, '-d', props.database];
    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name, labels, annotations: wave },
      spec: {
        clusterIp: 'None',
        selector: { ...this.podSelector },
        ports: [{ name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres') }],
      },
    });
    this.host = this.service.name;
    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels, annotations: { ...wave, ...secretRefs([props.secretName]) } },
      spec: {
        serviceName: this.service.name,
        // uid/gid 999 is the postgres user of the official image.
        ...onePod(this.podSelector, labels, 999, 999, {
          containers: [
            {
              name: 'postgres',
              image: props.image,
              ports: [{ name: 'postgres', containerPort: POSTGRES_PORT }],
              env: [
                { name: 'POSTGRES_USER', value: props.user },
                { name: 'POSTGRES_DB', value: props.database },
                secretEnv('POSTGRES_PASSWORD', props.secretName, SECRET_KEYS.password),
                { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
              ],
              readinessProbe: { exec: { command: ready }, periodSeconds: 5, timeoutSeconds: 3 },
              livenessProbe: { exec: { command: ready }, initialDelaySeconds: 30, periodSeconds: 10, timeoutSeconds: 5 },
              resources: resources(props.resources),
              securityContext: containerSecurityContext(),
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/postgresql/data' },
                { name: 'run', mountPath: '/var/run/postgresql' },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [scratchVolume('run', 16), scratchVolume('tmp', 256)],
        }),
        volumeClaimTemplates: [claim('data', props.storageGiB, props.storageClassName)],
      },
    });
  }

  /** Admits the pods `from` selects on the PostgreSQL port; the database itself sends nothing. */
  public admit(from: Readonly<Record<string, string>>): void {
    new k8s.KubeNetworkPolicy(this, 'Policy', {
      metadata: {
        name: this.service.name,
        labels: objectLabels('mlflow-stack', this.stack, 'network-policy'),
        annotations: syncWave(MLFLOW_SYNC_WAVES.storage),
      },
      spec: {
        podSelector: { matchLabels: { ...this.podSelector } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(from)], ports: tcpPorts(POSTGRES_PORT) }],
        egress: [],
      },
    });
  }
}
