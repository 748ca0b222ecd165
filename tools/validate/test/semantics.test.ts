import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EXTERNAL_REFS_ANNOTATION, validateSemantics } from '../index';
import { chart, deployment, describeAll, FILE, secret, service } from '../test-fixtures';
import { JsonObject } from '../json-value';

const semantics = (objects: unknown[]): string[] => describeAll(validateSemantics(objects, FILE));
const podSpecOf = (d: JsonObject): any => (d as any).spec.template.spec;

function withSecretVolume(d: JsonObject, secretName: string): JsonObject {
  podSpecOf(d).volumes = [{ name: 'creds', secret: { secretName } }];
  return d;
}

function statefulSet(serviceName: string): JsonObject {
  const d = deployment('ring', { app: 'ring' });
  return { ...d, kind: 'StatefulSet', spec: { ...(d.spec as JsonObject), serviceName } };
}

describe('Services select pods and reach their ports (c)', () => {
  test('accepts a Service whose selector and numeric or named targetPort match a pod template', () => {
    assert.deepEqual(semantics(chart()), []);
    assert.deepEqual(semantics([deployment(), service('web', { app: 'web' }, 'http')]), []);
  });

  test('fails if a Service selects nothing', () => {
    assert.deepEqual(semantics([deployment(), service('web', { app: 'wbe' })]), [
      'service/selects-nothing: Service web: spec.selector: selector app=wbe matches no pod template in this chart',
    ]);
  });

  test('fails if a targetPort is not exposed by a selected container', () => {
    assert.deepEqual(semantics([deployment(), service('web', { app: 'web' }, 9090)]), [
      'service/target-port: Service web: spec.ports[0].targetPort: ' +
        'port 9090 is not exposed by any container of the selected pods (Deployment web)',
    ]);
  });

  test('fails if a named targetPort is not declared by a selected container', () => {
    assert.deepEqual(semantics([deployment(), service('web', { app: 'web' }, 'metrics')]), [
      'service/target-port: Service web: spec.ports[0].targetPort: ' +
        'named port "metrics" is not exposed by any container of the selected pods (Deployment web)',
    ]);
  });
});

describe('references exist in the chart or are declared external (c)', () => {
  test('accepts a Secret volume whose Secret is in the chart', () => {
    assert.deepEqual(semantics([withSecretVolume(deployment(), 'db'), secret('db')]), []);
  });

  test('fails if a referenced Secret is missing', () => {
    assert.deepEqual(semantics([withSecretVolume(deployment(), 'db')]), [
      `ref/missing: Deployment web: spec.template.spec.volumes[0].secret.secretName: Secret "db" is not in this chart; ` +
        `add it, or declare it in annotation ${EXTERNAL_REFS_ANNOTATION}: "secret/db"`,
    ]);
  });

  test('fails if an env ConfigMap ref is missing', () => {
    const d = deployment();
    podSpecOf(d).containers[0].envFrom = [{ configMapRef: { name: 'settings' } }];
    assert.deepEqual(semantics([d]), [
      `ref/missing: Deployment web: spec.template.spec.containers[0].envFrom[0].configMapRef.name: ` +
        `ConfigMap "settings" is not in this chart; add it, or declare it in annotation ${EXTERNAL_REFS_ANNOTATION}: "configmap/settings"`,
    ]);
  });

  test('accepts a missing ref declared in the external-refs annotation, and an optional one', () => {
    const d = withSecretVolume(deployment(), 'db');
    (d.metadata as JsonObject).annotations = { [EXTERNAL_REFS_ANNOTATION]: 'secret/db, configmap/settings' };
    podSpecOf(d).containers[0].env = [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'settings', key: 'x' } } }];
    podSpecOf(d).containers[0].envFrom = [{ secretRef: { name: 'maybe', optional: true } }];
    assert.deepEqual(semantics([d]), []);
  });

  test('fails on a malformed external-refs entry', () => {
    const d = deployment();
    (d.metadata as JsonObject).annotations = { [EXTERNAL_REFS_ANNOTATION]: 'secrets/db' };
    assert.deepEqual(semantics([d]), [
      `ref/external-refs-syntax: Deployment web: metadata.annotations["${EXTERNAL_REFS_ANNOTATION}"]: ` +
        `cannot parse "secrets/db": expected a comma-separated list of <kind>/<name> with kind one of secret, ` +
        `configmap, pvc, persistentvolumeclaim, serviceaccount, service`,
    ]);
  });

  test('counts StatefulSet volumeClaimTemplates as PVCs for its pods', () => {
    const ss = statefulSet('ring');
    (ss.spec as any).volumeClaimTemplates = [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }];
    podSpecOf(ss).containers[0].volumeMounts = [{ name: 'data', mountPath: '/data' }];
    podSpecOf(ss).volumes = [{ name: 'data2', persistentVolumeClaim: { claimName: 'data' } }];
    const headless = {
      ...service('ring', { app: 'ring' }),
      spec: { clusterIP: 'None', selector: { app: 'ring' }, ports: [{ port: 8080 }] },
    };
    assert.deepEqual(semantics([ss, headless]), []);
  });

  test('fails if a volumeMount names no volume', () => {
    const d = deployment();
    podSpecOf(d).containers[0].volumeMounts = [{ name: 'tmp', mountPath: '/tmp' }];
    assert.deepEqual(semantics([d]), [
      'ref/volume-mount: Deployment web: spec.template.spec.containers[0].volumeMounts[0].name: ' +
        'volume "tmp" is not defined in spec.template.spec.volumes',
    ]);
  });

  test('fails if a StatefulSet serviceName is not a Service in the chart', () => {
    assert.deepEqual(semantics([statefulSet('ring')]), [
      'statefulset/service-name: StatefulSet ring: spec.serviceName: ' +
        'Service "ring" is not in this chart; the StatefulSet\'s pods get their DNS names from it',
    ]);
  });

  test('fails if a StatefulSet serviceName is not headless', () => {
    assert.deepEqual(semantics([statefulSet('ring'), service('ring', { app: 'ring' })]), [
      'statefulset/service-name: StatefulSet ring: spec.serviceName: ' +
        'Service "ring" is not headless (spec.clusterIP must be "None"), so the pods get no stable DNS names',
    ]);
  });
});

describe('names and duplicates (c)', () => {
  test('fails on a metadata.name that is not a DNS-1123 subdomain', () => {
    assert.deepEqual(semantics([secret('DB_Creds')]), [
      'name/dns-subdomain: Secret DB_Creds: metadata.name: "DB_Creds" is not a valid DNS-1123 subdomain: ' +
        'at most 253 characters of a-z, 0-9, "-" and ".", each dot-separated part starting and ending with a letter or digit',
    ]);
  });

  test('fails on a Service name that is not a DNS label (dots, or a leading digit)', () => {
    const findings = semantics([deployment(), service('web.v1'), service('1web')]);
    assert.deepEqual(findings, [
      'name/dns-label: Service web.v1: metadata.name: "web.v1" is not a valid Service name: ' +
        'at most 63 characters of a-z, 0-9 and "-", starting with a letter and ending with a letter or digit',
      'name/dns-label: Service 1web: metadata.name: "1web" is not a valid Service name: ' +
        'at most 63 characters of a-z, 0-9 and "-", starting with a letter and ending with a letter or digit',
    ]);
  });

  test('fails on a container name that is not a DNS-1123 label and a port name that is not an IANA_SVC_NAME', () => {
    const d = deployment();
    podSpecOf(d).containers[0].name = 'Main';
    podSpecOf(d).containers[0].ports[0].name = 'http-metrics-port';
    assert.deepEqual(semantics([d]), [
      'name/dns-label: Deployment web: spec.template.spec.containers[0].name: "Main" is not a valid container name: ' +
        'at most 63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
      'name/iana-svc-name: Deployment web: spec.template.spec.containers[0].ports[0].name: "http-metrics-port" is not a valid port name: ' +
        'at most 15 characters of a-z, 0-9 and "-", with at least one letter and no leading, trailing or double "-"',
    ]);
  });

  test('fails on two objects with the same kind, namespace and name', () => {
    assert.deepEqual(semantics([secret('db'), secret('db'), { ...secret('db'), metadata: { name: 'db', namespace: 'other' } }]), [
      'object/duplicate: Secret db: metadata.name: duplicate object: Secret "db" is already object #0 of this file',
    ]);
  });
});

describe('NetworkPolicies isolate trainer pods and open no more than the topology needs (c)', () => {
  const trainerLabels = { app: 'ring', 'tensorfleet.io/trainer': 'true' };
  const policy = (spec: JsonObject): JsonObject => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'ring' },
    spec: { podSelector: { matchLabels: { app: 'ring' } }, ...spec },
  });

  test('accepts a trainer pod isolated both ways, with ports on every rule that leaves the namespace', () => {
    const rules = {
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'ring' } } }] }],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ protocol: 'TCP', port: 443 }] }],
    };
    assert.deepEqual(semantics([deployment('ring', trainerLabels), policy(rules)]), []);
  });

  test('fails if a trainer pod is selected by no policy, or isolated one way only', () => {
    assert.deepEqual(semantics([deployment('ring', trainerLabels)]), [
      'network-policy/trainer-unisolated: Deployment ring: spec.template.metadata.labels: a trainer pod (tensorfleet.io/trainer=true) ' +
        'must be selected by NetworkPolicies of this chart with policyTypes Ingress and Egress; Ingress and Egress not isolated',
    ]);
    assert.deepEqual(semantics([deployment('ring', trainerLabels), policy({ policyTypes: ['Ingress'] })]), [
      'network-policy/trainer-unisolated: Deployment ring: spec.template.metadata.labels: a trainer pod (tensorfleet.io/trainer=true) ' +
        'must be selected by NetworkPolicies of this chart with policyTypes Ingress and Egress; Egress not isolated',
    ]);
  });

  test('fails on a peer in every namespace and on a rule that opens every port beyond the namespace', () => {
    const rules = {
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: {} }], ports: [{ protocol: 'TCP', port: 80 }] }],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }],
    };
    assert.deepEqual(semantics([deployment('ring', trainerLabels), policy(rules)]), [
      'network-policy/all-namespaces: NetworkPolicy ring: spec.ingress[0].from[0].namespaceSelector: ' +
        'an empty namespaceSelector admits every namespace: select the namespaces by label, or leave it out for this namespace only',
      'network-policy/unrestricted-ports: NetworkPolicy ring: spec.egress[0]: ' +
        'a rule without ports must name pods of this namespace only; this one names an ipBlock or other namespaces',
    ]);
  });
});
