import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SECRET_KEYS } from '../../trainer/src/contract';
import { hardenedContainer } from '../lib/hardened';
import { PodPolicy } from '../lib/network';
import { objectLabels } from '../lib/workload';
import { BundledStore, MLFLOW_SYNC_WAVES, POSTGRES_PORT, StoreProps, syncWave } from './storage';

/** Props of the store; `secretName` holds the password under SECRET_KEYS.password. */
export interface PostgresStoreProps extends StoreProps {
  readonly user: string;
  readonly database: string;
}

/** MLflow's backend store: a PostgreSQL StatefulSet behind a headless Service, reachable only by whom it admits. */
export class PostgresStore extends BundledStore {
  /** The host clients connect to: the Service's name. */
  public readonly host: string;
  private readonly stack: string;

  constructor(scope: Construct, id: string, props: PostgresStoreProps) {
    // uid 999: the postgres user of the official image.
    super(scope, id, props, {
      name: `${props.stack}-postgres`,
      component: 'backend-store',
      port: { name: 'postgres', number: POSTGRES_PORT },
      uid: 999,
    });
    this.stack = props.stack;
    this.host = this.service.name;
    const ready = ['pg_isready', '-h', '127.0.0.1', '-U', props.user, '-d', props.database];
    const password = kplus.Secret.fromSecretName(this, 'Password', props.secretName);
    const scratch = (id: string, name: string, sizeMiB: number): kplus.Volume =>
      kplus.Volume.fromEmptyDir(this.statefulSet, id, name, { sizeLimit: Size.mebibytes(sizeMiB) });
    this.statefulSet.addContainer(
      hardenedContainer({
        name: 'postgres',
        image: props.image,
        ports: [{ name: 'postgres', number: POSTGRES_PORT }],
        envVariables: {
          POSTGRES_USER: kplus.EnvValue.fromValue(props.user),
          POSTGRES_DB: kplus.EnvValue.fromValue(props.database),
          POSTGRES_PASSWORD: kplus.EnvValue.fromSecretValue({ secret: password, key: SECRET_KEYS.password }),
          PGDATA: kplus.EnvValue.fromValue('/var/lib/postgresql/data/pgdata'),
        },
        readiness: kplus.Probe.fromCommand(ready, { periodSeconds: Duration.seconds(5), timeoutSeconds: Duration.seconds(3) }),
        liveness: kplus.Probe.fromCommand(ready, {
          initialDelaySeconds: Duration.seconds(30),
          periodSeconds: Duration.seconds(10),
          timeoutSeconds: Duration.seconds(5),
        }),
        resourceSpec: props.resources,
        volumeMounts: [
          { path: '/var/run/postgresql', volume: scratch('Run', 'run', 16) },
          { path: '/tmp', volume: scratch('Tmp', 'tmp', 256) },
        ],
      }),
    );
    this.addDataClaim(props, '/var/lib/postgresql/data');
  }

  /** Admits the pods `from` selects on the PostgreSQL port; the database itself sends nothing. */
  public admit(from: Readonly<Record<string, string>>): void {
    new PodPolicy(this, 'Policy', {
      name: this.service.name,
      labels: objectLabels('mlflow-stack', this.stack, 'network-policy'),
      annotations: syncWave(MLFLOW_SYNC_WAVES.storage),
      selector: this.statefulSet,
      ingress: (s) => [
        { peer: kplus.Pods.select(s, 'Admitted', { labels: { ...from } }), ports: [kplus.NetworkPolicyPort.tcp(POSTGRES_PORT)] },
      ],
    });
  }
}
