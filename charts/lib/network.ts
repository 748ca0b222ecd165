import { k8s } from 'cdk8s-plus-27';

/** Egress to the cluster DNS (kube-dns / CoreDNS in kube-system), UDP and TCP 53. */
export function dnsEgress(): k8s.NetworkPolicyEgressRule {
  return {
    to: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
        podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
      },
    ],
    ports: [
      { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
      { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
    ],
  };
}

export function tcpPorts(...ports: number[]): k8s.NetworkPolicyPort[] {
  return ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
}

/** Pods in the same namespace with these labels. */
export function podPeer(labels: Record<string, string>): k8s.NetworkPolicyPeer {
  return { podSelector: { matchLabels: labels } };
}

/**
 * The Kubernetes API server: its address is not selectable by labels, so allow its HTTPS
 * ports (443 on the kubernetes Service, 6443 on the control-plane endpoints) to `cidr`.
 */
export function apiServerEgress(cidr = '0.0.0.0/0'): k8s.NetworkPolicyEgressRule {
  return { to: [{ ipBlock: { cidr } }], ports: tcpPorts(443, 6443) };
}

/**
 * Egress to where a dataset is downloaded from: its URL's port (or the S3 endpoint's
 * for s3://) anywhere, since mirrors and object stores live outside the cluster.
 * A path on a mounted volume needs none.
 */
export function datasetEgress(uri: string, s3Endpoint?: string): k8s.NetworkPolicyEgressRule[] {
  if (uri.startsWith('/')) return [];
  const portOf = (u: URL): number => (u.port ? Number(u.port) : u.protocol === 'http:' ? 80 : 443);
  const url = new URL(uri);
  const port = url.protocol === 's3:' ? (s3Endpoint ? portOf(new URL(s3Endpoint)) : 443) : portOf(url);
  return [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(port) }];
}

/** {@link datasetEgress} for every remote location a job reads (dataset, test split, model), one rule per port. */
export function sourcesEgress(uris: readonly string[], s3Endpoint?: string): k8s.NetworkPolicyEgressRule[] {
  const rules = uris.flatMap((u) => datasetEgress(u, s3Endpoint));
  const seen = new Set<string>();
  return rules.filter((r) => {
    const key = JSON.stringify(r);
    return seen.has(key) ? false : (seen.add(key), true);
  });
}
