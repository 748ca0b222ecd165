import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SECRET_KEYS } from '../../trainer/src/contract';
import { hardenedContainer } from '../lib/hardened';
import { PodPolicy } from '../lib/network';
import { BundledStore, MLFLOW_SYNC_WAVES, S3_PORT, StoreProps, syncWave } from './storage';

/** Props of the store; `secretName` holds the S3 keys it accepts (SECRET_KEYS.accessKeyId, SECRET_KEYS.secretAccessKey). */
export type S3StoreProps = StoreProps;

/** MLflow's artifact store: an all-in-one SeaweedFS StatefulSet serving S3 behind a headless Service. */
export class S3Store extends BundledStore {
  /** The S3 endpoint, from the Service's name. */
  public readonly endpoint: string;

  constructor(scope: Construct, id: string, props: S3StoreProps) {
    super(scope, id, props, {
      name: `${props.stack}-seaweedfs`,
      component: 'artifact-store',
      port: { name: 's3', number: S3_PORT },
      uid: 1000,
    });
    this.endpoint = `http://${this.service.name}:${S3_PORT}`;
    const keys = kplus.Secret.fromSecretName(this, 'Keys', props.secretName);
    const credentials = Object.fromEntries(
      [SECRET_KEYS.accessKeyId, SECRET_KEYS.secretAccessKey].map((key) => [key, kplus.EnvValue.fromSecretValue({ secret: keys, key })]),
    );
    const config = kplus.Volume.fromEmptyDir(this.statefulSet, 'S3Config', 's3-config', {
      medium: kplus.EmptyDirMedium.MEMORY,
      sizeLimit: Size.mebibytes(1),
    });
    const identity =
      `umask 077; printf '{"identities":[{"name":"mlflow","credentials":[{"accessKey":"%s","secretKey":"%s"}],` +
      `"actions":["Admin","Read","Write","List","Tagging"]}]}' ` +
      `"$${SECRET_KEYS.accessKeyId}" "$${SECRET_KEYS.secretAccessKey}" > /etc/seaweedfs/s3.json`;
    this.statefulSet.addInitContainer(
      hardenedContainer({
        // Renders the S3 identity file from the Secret into a memory-backed emptyDir.
        name: 's3-config',
        image: props.image,
        command: ['/bin/sh', '-c'],
        args: [identity],
        envVariables: credentials,
        resourceSpec: { cpuRequestMillis: 50, cpuLimitMillis: 200, memoryRequestMiB: 32, memoryLimitMiB: 64 },
        volumeMounts: [{ path: '/etc/seaweedfs', volume: config }],
      }),
    );
    this.statefulSet.addContainer(
      hardenedContainer({
        name: 'seaweedfs',
        image: props.image,
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
        ports: [{ name: 's3', number: S3_PORT }],
        readiness: kplus.Probe.fromTcpSocket({ port: S3_PORT, periodSeconds: Duration.seconds(5) }),
        liveness: kplus.Probe.fromTcpSocket({
          port: S3_PORT,
          initialDelaySeconds: Duration.seconds(30),
          periodSeconds: Duration.seconds(10),
        }),
        resourceSpec: props.resources,
        volumeMounts: [
          { path: '/etc/seaweedfs', volume: config, readOnly: true },
          { path: '/tmp', volume: kplus.Volume.fromEmptyDir(this.statefulSet, 'Tmp', 'tmp', { sizeLimit: Size.mebibytes(256) }) },
        ],
      }),
    );
    this.addDataClaim(props, '/data');
  }

  /** Admits the pods `from` selects on the S3 port; the all-in-one server talks to itself (master, volume, filer) over the pod IP. */
  public admit(from: Readonly<Record<string, string>>): void {
    new PodPolicy(this, 'Policy', {
      name: this.service.name,
      labels: this.labels,
      annotations: syncWave(MLFLOW_SYNC_WAVES.storage),
      selector: this.statefulSet,
      ingress: (s) => [
        { peer: kplus.Pods.select(s, 'Admitted', { labels: { ...from } }), ports: [kplus.NetworkPolicyPort.tcp(S3_PORT)] },
        { peer: this.statefulSet },
      ],
      egress: () => [{ peer: this.statefulSet }],
    });
  }
}
