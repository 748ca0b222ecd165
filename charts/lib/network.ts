import { isIP } from 'node:net';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PORTS } from '../../trainer/src/contract';

/**
 * The ports of where the remote sources a job reads (dataset, test split, model) are
 * downloaded from: a URL's port (or the S3 endpoint's for s3://), once each. Mirrors and
 * object stores live outside the cluster; a path on a mounted volume needs none.
 */
export function sourcePorts(uris: readonly string[], s3Endpoint?: string): number[] {
  const portOf = (u: URL): number => (u.port ? Number(u.port) : u.protocol === 'http:' ? 80 : 443);
  const ports = uris
    .filter((uri) => !uri.startsWith('/'))
    .map((uri) => new URL(uri))
    .map((url) => (url.protocol === 's3:' ? (s3Endpoint ? portOf(new URL(s3Endpoint)) : 443) : portOf(url)));
  return [...new Set(ports)];
}

/** The cluster DNS (kube-dns / CoreDNS in kube-system) as a peer of `scope`'s policy. */
export function dnsRule(scope: Construct): kplus.NetworkPolicyRule {
  const kubeSystem = kplus.Namespaces.select(scope, 'KubeSystem', { names: ['kube-system'] });
  const peer = kplus.Pods.select(scope, 'KubeDns', { labels: { 'k8s-app': 'kube-dns' }, namespaces: kubeSystem });
  return { peer, ports: [kplus.NetworkPolicyPort.udp(53), kplus.NetworkPolicyPort.tcp(53)] };
}

/** Addresses outside the cluster (or the API server, which no label selects), IPv4 or IPv6. */
export function cidrPeer(scope: Construct, id: string, cidr: string): kplus.NetworkPolicyIpBlock {
  const ipv6 = isIP(cidr.split('/')[0]) === 6;
  return ipv6 ? kplus.NetworkPolicyIpBlock.ipv6(scope, id, cidr) : kplus.NetworkPolicyIpBlock.ipv4(scope, id, cidr);
}

/**
 * The Kubernetes API server as a rule of `scope`'s policy: its address is not selectable by labels,
 * so allow its HTTPS ports (443 on the kubernetes Service, 6443 on the control-plane endpoints) to `cidr`.
 */
export function apiServerRule(scope: Construct, cidr = '0.0.0.0/0'): kplus.NetworkPolicyRule {
  return { peer: cidrPeer(scope, 'ApiServer', cidr), ports: [443, 6443].map((p) => kplus.NetworkPolicyPort.tcp(p)) };
}

/** {@link sourcePorts} as rules of `scope`'s policy: anywhere, on each remote source's port. */
export function sourcesRules(scope: Construct, uris: readonly string[], s3Endpoint?: string): kplus.NetworkPolicyRule[] {
  return sourcePorts(uris, s3Endpoint).map((port) => ({
    peer: cidrPeer(scope, `Source${port}`, '0.0.0.0/0'),
    ports: [kplus.NetworkPolicyPort.tcp(port)],
  }));
}

/** The MLflow tracking server's pods (selected by `labels`) on the MLflow port, as a rule of `scope`'s policy. */
export function trackingRule(scope: Construct, labels: Readonly<Record<string, string>>): kplus.NetworkPolicyRule {
  return { peer: kplus.Pods.select(scope, 'Tracking', { labels: { ...labels } }), ports: [kplus.NetworkPolicyPort.tcp(PORTS.mlflow)] };
}

export interface PodPolicyProps {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** @default - none */
  readonly annotations?: Readonly<Record<string, string>>;
  /** The pods the policy isolates. */
  readonly selector: kplus.IPodSelector;
  /** Built in the policy's scope (peers are constructs): ingress allowed, anything else denied. */
  readonly ingress?: (scope: Construct) => kplus.NetworkPolicyRule[];
  /** Built in the policy's scope: egress allowed, anything else denied. */
  readonly egress?: (scope: Construct) => kplus.NetworkPolicyRule[];
}

/** One NetworkPolicy that isolates a workload's pods both ways and allows only the rules given. */
export class PodPolicy extends Construct {
  public readonly policy: kplus.NetworkPolicy;

  constructor(scope: Construct, id: string, props: PodPolicyProps) {
    super(scope, id);
    this.policy = new kplus.NetworkPolicy(this, 'Policy', {
      metadata: { name: props.name, labels: { ...props.labels }, annotations: { ...props.annotations } },
      selector: props.selector,
      ingress: { default: kplus.NetworkPolicyTrafficDefault.DENY, rules: props.ingress?.(this) ?? [] },
      egress: { default: kplus.NetworkPolicyTrafficDefault.DENY, rules: props.egress?.(this) ?? [] },
    });
  }
}
