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

/** The Kubernetes API server: its address is not selectable by labels, so allow HTTPS ports anywhere. */
export function apiServerEgress(): k8s.NetworkPolicyEgressRule {
  return { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: tcpPorts(443, 6443) };
}
