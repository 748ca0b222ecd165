import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SECRET_KEYS } from '../../trainer/src/contract';
import { podPeer, tcpPorts } from '../lib/network';
import { containerSecurityContext, resources, scratchVolume, secretEnv, selectorLabels } from '../lib/workload';
import { MLFLOW_SYNC_WAVES, S3_PORT, claim, secretRefs, stackLabels, syncWave, StoreProps, onePod } from './storage';

/** Props of the store; `secretName` holds the S3 keys it accepts (SECRET_KEYS.accessKeyId, SECRET_KEYS.secretAccessKey). */
export type S3StoreProps = StoreProps;

/** MLflow's artifact store: an all-in-one SeaweedFS StatefulSet serving S3 behind a headless Service. */
export class S3Store extends Construct {
  public readonly service: k8s.KubeService;
  /** Labels that select the SeaweedFS pod. */
  public readonly podSelector: Readonly<Record<string, string>>;
  /** The S3 endpoint, from the Service's name. */
  public readonly endpoint: string;
  public readonly port = S3_PORT;
  private readonly labels: Record<string, string>;

  constructor(scope: Construct, id: string, props: S3StoreProps) {
    super(scope, id);
    const name = `${props.stack}-seaweedfs`;
    this.podSelector = selectorLabels(props.stack, 'artifact-store');
    this.labels = stackLabels(props.stack, 'artifact-store', props.image);
    const labels = this.labels;
    const wave = syncWave(MLFLOW_SYNC_WAVES.storage);
    const credentials = [
      secretEnv(SECRET_KEYS.accessKeyId, props.secretName, SECRET_KEYS.accessKeyId),
      secretEnv(SECRET_KEYS.secretAccessKey, props.secretName, SECRET_KEYS.secretAccessKey),
    ];
    const s3 = k8s.IntOrString.fromString('s3');
    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name, labels, annotations: wave },
      spec: {
        // Headless: the StatefulSet's governing Service, and clients resolve the pod directly.
        clusterIp: 'None',
        selector: { ...this.podSelector },
        ports: [{ name: 's3', port: S3_PORT, targetPort: s3 }],
      },
    });
    this.endpoint = `http://${this.service.name}:${S3_PORT}`;
    const identity =
      `umask 077; printf '{"identities":[{"name":"mlflow","credentials":[{"accessKey":"%s","secretKey":"%s"}],` +
      `"actions":["Admin","Read","Write","List","Tagging"]}]}' ` +
      `"$${SECRET_KEYS.accessKeyId}" "$${SECRET_KEYS.secretAccessKey}" > /etc/seaweedfs/s3.json`;
    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels, annotations: { ...wave, ...secretRefs([props.secretName]) } },
      spec: {
        serviceName: this.service.name,
        ...onePod(this.podSelector, labels, 1000, 1000, {
          initContainers: [
            {
              // Renders the S3 identity file from the Secret into a memory-backed emptyDir.
              name: 's3-config',
              image: props.image,
              command: ['/bin/sh', '-c'],
              args: [identity],
              env: credentials,
              resources: resources({ cpuRequestMillis: 50, cpuLimitMillis: 200, memoryRequestMiB: 32, memoryLimitMiB: 64 }),
              securityContext: containerSecurityContext(),
              volumeMounts: [{ name: 's3-config', mountPath: '/etc/seaweedfs' }],
            },
          ],
          containers: [
            {
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
              ports: [{ name: 's3', containerPort: S3_PORT }],
              readinessProbe: { tcpSocket: { port: s3 }, periodSeconds: 5 },
              livenessProbe: { tcpSocket: { port: s3 }, initialDelaySeconds: 30, periodSeconds: 10 },
              resources: resources(props.resources),
              securityContext: containerSecurityContext(),
              volumeMounts: [
                { name: 'data', mountPath: '/data' },
                { name: 's3-config', mountPath: '/etc/seaweedfs', readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 's3-config', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('1Mi') } },
            scratchVolume('tmp', 256),
          ],
        }),
        volumeClaimTemplates: [claim('data', props.storageGiB, props.storageClassName)],
      },
    });
  }

  /** Admits the pods `from` selects on the S3 port; the all-in-one server talks to itself (master, volume, filer) over the pod IP. */
  public admit(from: Readonly<Record<string, string>>): void {
    new k8s.KubeNetworkPolicy(this, 'Policy', {
      metadata: { name: this.service.name, labels: this.labels, annotations: syncWave(MLFLOW_SYNC_WAVES.storage) },
      spec: {
        podSelector: { matchLabels: { ...this.podSelector } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [podPeer(from)], ports: tcpPorts(S3_PORT) }, { from: [podPeer(this.podSelector)] }],
        egress: [{ to: [podPeer(this.podSelector)] }],
      },
    });
  }
}
