/**
 * Small, fully compliant objects for the validator's own tests: each passes every rule, so a test
 * breaks exactly one thing and asserts exactly one finding. Not exported from index.ts.
 */
import { Finding, RuleId } from './findings';
import { JsonObject } from './json-value';

export const FILE = 'test.k8s.yaml';

/** A container that meets the security baseline and exposes port 8080 named `http`. */
export function container(name = 'main'): JsonObject {
  return {
    name,
    image: 'ghcr.io/tensorfleet/app:1.2.3',
    ports: [{ containerPort: 8080, name: 'http' }],
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };
}

export function podSpec(): JsonObject {
  return {
    automountServiceAccountToken: false,
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [container()],
  };
}

export function deployment(name = 'web', labels: Record<string, string> = { app: name }): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 2,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: podSpec() },
    },
  };
}

export function service(name = 'web', selector: Record<string, string> = { app: 'web' }, targetPort: number | string = 8080): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { selector, ports: [{ name: 'http', port: 80, targetPort }] },
  };
}

export function secret(name = 'db'): JsonObject {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { password: 'x' } };
}

/** A Deployment, its Service and a Secret: zero findings. */
export function chart(): JsonObject[] {
  return [deployment(), service(), secret()];
}

/** Messages of the findings with `rule`. */
export function messages(findings: readonly Finding[], rule: RuleId): string[] {
  return findings.filter((f) => f.rule === rule).map((f) => f.message);
}

/** `rule: message` of every finding, for asserting "exactly these findings". */
export function describeAll(findings: readonly Finding[]): string[] {
  return findings.map((f) => `${f.rule}: ${f.message}`);
}
