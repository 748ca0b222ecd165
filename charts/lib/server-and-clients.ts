import { Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ENV, PORTS, Role, SECRET_KEYS, TrainerConfigInput } from '../../trainer/src/contract';
import type { MlflowStack } from '../mlflow-stack';
import { externalRefsAnnotation } from './external-refs';
import { GeneratedSecrets } from './generated-secrets';
import { LinkTls } from './link-tls';
import { PodPolicy, cidrPeer, dnsRule, sourcesRules, trackingRule } from './network';
import { checkTrainerConfig } from './trainer-config';
import { addTrainerContainer, trainerPodLabels, trainerPodProps } from './trainer-container';
import { ResourceSpec, objectLabels, selectorLabels } from './workload';

/** The config both roles share: the addresses, the job name and the world size come from the construct. */
export type SharedTrainerConfig = Omit<TrainerConfigInput, 'role' | 'jobName' | 'worldSize' | 'masterAddr' | 'masterPort' | 'listenPort'>;

export interface ServerAndClientsProps {
  /** The job's name: prefix of every object. */
  readonly name: string;
  /** app.kubernetes.io/name of every object, e.g. "federated-fleet". */
  readonly appName: string;
  readonly image: string;
  readonly serverRole: Role;
  readonly clientRole: Role;
  /** The port the server listens on and the clients dial, and its name on the container and the Service. */
  readonly port: { readonly name: string; readonly number: number };
  readonly clients: number;
  readonly config: SharedTrainerConfig;
  /** Construct props behind config fields, for errors that name the prop rather than the variable. */
  readonly propOf: Readonly<Record<string, string>>;
  readonly serverResources: ResourceSpec;
  readonly clientResources: ResourceSpec;
  /** @default - no tracking server */
  readonly tracking?: MlflowStack;
  /** Remote locations the pods download from (egress on their ports). */
  readonly remoteUris: readonly string[];
  /**
   * A PersistentVolumeClaim of this size for the server's checkpoints (it resumes after a restart).
   *
   * @default - an emptyDir
   */
  readonly serverStateGiB?: number;
  /**
   * Admit the server's port from any address instead of from the client pods only (clients
   * that a pod selector cannot name, e.g. offloaded by Liqo; the bearer token is the gate then).
   *
   * @default false
   */
  readonly serverOpenToAnyAddress?: boolean;
  /** @default - no TLS */
  readonly tls?: LinkTls;
}

/**
 * A server and its clients: the server a Deployment of one behind a ClusterIP Service,
 * the clients a StatefulSet (ordinal = rank) behind a headless Service, a bearer token
 * generated in the cluster, and NetworkPolicies that let the clients reach the server's
 * port and nothing else in. FederatedFleet and SplitLearning are built on it.
 */
export class ServerAndClients extends Construct {
  public readonly server: kplus.Deployment;
  public readonly serverService: kplus.Service;
  public readonly clients: kplus.StatefulSet;
  public readonly clientsService: kplus.Service;
  /** The Secret with the bearer token under {@link SECRET_KEYS.authToken}. */
  public readonly tokenSecretName: string;
  public readonly serverPodLabels: Readonly<Record<string, string>>;
  public readonly clientPodLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: ServerAndClientsProps) {
    super(scope, id);
    const { name, appName, image, port } = props;
    this.serverService = new kplus.Service(this, 'ServerService', {
      metadata: { name: `${name}-server` },
      ports: [{ name: port.name, port: port.number, targetPort: port.number }],
    });
    const shared: Omit<TrainerConfigInput, 'role'> = {
      ...props.config,
      jobName: name,
      worldSize: props.clients,
      masterAddr: this.serverService.name,
      masterPort: port.number,
      listenPort: port.number,
    };
    const serverConfig: TrainerConfigInput = { ...shared, role: props.serverRole, trackingUri: props.tracking?.trackingUri };
    const clientConfig: TrainerConfigInput = { ...shared, role: props.clientRole };
    // Both configs must be ones the trainer accepts.
    checkTrainerConfig(scope, serverConfig, props.propOf);
    checkTrainerConfig(scope, clientConfig, props.propOf);

    this.tokenSecretName = `${name}-token`;
    const secrets = new GeneratedSecrets(this, 'Token', {
      name: `${name}-secrets`,
      secrets: [{ name: this.tokenSecretName, keys: [SECRET_KEYS.authToken] }],
      image,
      labels: objectLabels(appName, name, 'secrets'),
    });
    const externalRefs = [...secrets.refs, ...(props.tls ? [props.tls.externalRef] : [])];
    const tokenSecret = kplus.Secret.fromSecretName(this, 'TokenSecret', this.tokenSecretName);
    const token = kplus.EnvValue.fromSecretValue({ secret: tokenSecret, key: SECRET_KEYS.authToken });

    // --- server ---------------------------------------------------------------
    this.serverPodLabels = { ...trainerPodLabels(name, props.serverRole), ...selectorLabels(name, 'server') };
    const serverLabels = { ...objectLabels(appName, name, 'server'), ...this.serverPodLabels };
    for (const [key, value] of Object.entries(serverLabels)) this.serverService.metadata.addLabel(key, value);
    this.server = new kplus.Deployment(this, 'Server', {
      metadata: {
        name: this.serverService.name,
        labels: serverLabels,
        annotations: externalRefsAnnotation(...externalRefs, ...(props.tracking?.credentialsExternalRefs ?? [])),
      },
      podMetadata: { labels: serverLabels },
      replicas: 1,
      // One writer of the checkpoint volume at a time.
      strategy: kplus.DeploymentStrategy.recreate(),
      ...trainerPodProps(),
      // A Deployment's selector is immutable: it keeps the labels it selected by before cdk8s-plus.
      select: false,
    });
    this.server.select(kplus.LabelSelector.of({ labels: selectorLabels(name, 'server') }));
    const state =
      props.serverStateGiB === undefined
        ? undefined
        : new kplus.PersistentVolumeClaim(this, 'ServerState', {
            metadata: { name: `${name}-server-state`, labels: serverLabels },
            accessModes: [kplus.PersistentVolumeAccessMode.READ_WRITE_ONCE],
            storage: Size.gibibytes(props.serverStateGiB),
          });
    addTrainerContainer(this.server, {
      name: 'server',
      image,
      config: serverConfig,
      resources: props.serverResources,
      ports: [{ name: port.name, number: port.number }],
      // Only the server reports to MLflow.
      envFrom: { [ENV.authToken]: token, ...props.tracking?.credentialsEnv(this) },
      checkpoints: state && kplus.Volume.fromPersistentVolumeClaim(this.server, 'Checkpoints', state, { name: 'checkpoints' }),
      tls: props.tls,
    });
    this.serverService.select(this.server);

    // --- clients --------------------------------------------------------------
    this.clientPodLabels = { ...trainerPodLabels(name, props.clientRole), ...selectorLabels(name, 'client') };
    const clientLabels = { ...objectLabels(appName, name, 'client'), ...this.clientPodLabels };
    this.clientsService = new kplus.Service(this, 'ClientsService', {
      metadata: { name: `${name}-client`, labels: clientLabels },
      clusterIP: 'None',
      ports: [{ name: 'health', port: PORTS.health, targetPort: PORTS.health }],
    });
    this.clients = new kplus.StatefulSet(this, 'Clients', {
      metadata: { name: this.clientsService.name, labels: clientLabels, annotations: externalRefsAnnotation(...externalRefs) },
      podMetadata: { labels: clientLabels },
      service: this.clientsService,
      replicas: props.clients,
      podManagementPolicy: kplus.PodManagementPolicy.PARALLEL,
      ...trainerPodProps(),
      // A StatefulSet's selector is immutable: it keeps the labels it selected by before cdk8s-plus.
      select: false,
    });
    this.clients.select(kplus.LabelSelector.of({ labels: selectorLabels(name, 'client') }));
    addTrainerContainer(this.clients, {
      name: 'client',
      image,
      config: clientConfig,
      resources: props.clientResources,
      envFrom: { [ENV.authToken]: token, [ENV.podName]: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAME) },
      // The rank is the pod's ordinal (parsed from its name).
      omit: [ENV.rank],
      tls: props.tls,
    });

    // --- network policies -----------------------------------------------------
    const tracking = props.tracking;
    const serverPort = [kplus.NetworkPolicyPort.tcp(port.number)];
    new PodPolicy(this, 'ServerPolicy', {
      name: this.serverService.name,
      labels: serverLabels,
      selector: this.server,
      ingress: (s) =>
        props.serverOpenToAnyAddress
          ? [
              { peer: cidrPeer(s, 'AnyIpv4', '0.0.0.0/0'), ports: serverPort },
              { peer: cidrPeer(s, 'AnyIpv6', '::/0'), ports: serverPort },
            ]
          : [{ peer: this.clients, ports: serverPort }],
      egress: (s) => [dnsRule(s), ...sourcesRules(s, props.remoteUris), ...(tracking ? [trackingRule(s, tracking.serverPodLabels)] : [])],
    });
    new PodPolicy(this, 'ClientPolicy', {
      name: this.clientsService.name,
      labels: clientLabels,
      selector: this.clients,
      egress: (s) => [{ peer: this.server, ports: serverPort }, dnsRule(s), ...sourcesRules(s, props.remoteUris)],
    });
  }
}
