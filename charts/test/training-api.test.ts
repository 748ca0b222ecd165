import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { App, Chart } from 'cdk8s';
import { MlflowStack } from '../mlflow-stack';
import { TrainingApi, TrainingApiProps } from '../training-api';
import { RbacRule, jobConstructManifests, rulesCover, trainingApiRoleRules } from '../lib/emitted-kinds';
import { formatFinding, validateObjects } from '../../tools/validate';
import {
  ANNOTATIONS,
  API_ENV,
  API_PATHS,
  DEFAULT_API_MAX_BODY_BYTES,
  ENV,
  LABELS,
  PORTS,
  SECRET_KEYS,
  TRAINER_IMAGE,
  parseTrainerEnv,
} from '../../trainer/src/contract';
import { KubeObject, find, podSpec, selectedWorkloads, synth, testChart } from './helpers';

function api(props: TrainingApiProps = {}): KubeObject[] {
  const chart = testChart();
  new TrainingApi(chart, 'Api', props);
  return synth(chart);
}

function tracked(props: TrainingApiProps = {}): KubeObject[] {
  const chart = testChart();
  new TrainingApi(chart, 'Api', { tracking: new MlflowStack(testChart(), 'Mlflow'), ...props });
  return synth(chart);
}

/** The env of the API container as the kubelet would supply it. */
function envOf(objects: KubeObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of podSpec(find(objects, 'Deployment', 'api')).containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = 'tensorfleet';
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'from-secret';
  }
  return env;
}

describe('TrainingApi', () => {
  test('Deployment, Service, ServiceAccount, Role, RoleBinding and NetworkPolicy, plus the token Job', () => {
    const objects = api();
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'Deployment/api',
      'Job/api-secrets',
      'NetworkPolicy/api',
      'NetworkPolicy/api-secrets',
      'Role/api',
      'Role/api-secrets',
      'RoleBinding/api',
      'RoleBinding/api-secrets',
      'Service/api',
      'ServiceAccount/api',
      'ServiceAccount/api-secrets',
    ]);
    const secrets = find(objects, 'Job', 'api-secrets');
    assert.match(podSpec(secrets).containers[0].env[0].value, /"name":"api-token","keys":\["token"\]/);
  });

  test('the Deployment: the api role on its port, liveness on /healthz, readiness on /readyz, token from the generated Secret', () => {
    const objects = api({ replicas: 2 });
    const deployment = find(objects, 'Deployment', 'api');
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(deployment.metadata.annotations![ANNOTATIONS.externalRefs], 'secret/api-token');
    const c = podSpec(deployment).containers[0];
    assert.equal(c.image, `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`);
    assert.deepEqual(c.args, ['trainer', 'api']);
    assert.deepEqual(c.ports, [{ name: 'http', containerPort: PORTS.api }]);
    assert.deepEqual(c.livenessProbe.httpGet, { path: API_PATHS.health, port: PORTS.api, scheme: 'HTTP' });
    // Not ready (out of the Service) while the Kubernetes API does not answer; alive all the same.
    assert.deepEqual(c.readinessProbe.httpGet, { path: API_PATHS.ready, port: PORTS.api, scheme: 'HTTP' });
    assert.deepEqual(c.env.find((e: any) => e.name === ENV.authToken).valueFrom, {
      secretKeyRef: { name: 'api-token', key: SECRET_KEYS.authToken },
    });
    assert.deepEqual(c.env.find((e: any) => e.name === API_ENV.namespace).valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
    const service = find(objects, 'Service', 'api');
    assert.deepEqual(service.spec.ports, [{ name: 'http', port: PORTS.api, targetPort: PORTS.api }]);
    assert.deepEqual(selectedWorkloads(objects, service.spec.selector), ['Deployment/api']);
    assert.deepEqual(selectedWorkloads(objects, deployment.spec.selector.matchLabels), ['Deployment/api']);
    assert.equal(
      podSpec(deployment).containers[0].env.some((e: any) => e.value !== undefined && e.name === ENV.authToken),
      false,
    );
  });

  test('secure by default; the only workload with a service-account token, bound to its own Role', () => {
    const objects = api();
    const deployment = find(objects, 'Deployment', 'api');
    const pod = podSpec(deployment);
    assert.equal(pod.serviceAccountName, 'api');
    assert.equal(pod.automountServiceAccountToken, true);
    assert.equal(deployment.metadata.annotations![ANNOTATIONS.usesKubernetesApi], 'true');
    assert.equal(find(objects, 'ServiceAccount', 'api').automountServiceAccountToken, false);
    assert.equal(pod.securityContext.runAsUser, TRAINER_IMAGE.uid);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const sc = pod.containers[0].securityContext;
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.deepEqual(pod.containers[0].resources, {
      requests: { cpu: '100m', memory: '256Mi' },
      limits: { cpu: '1000m', memory: '512Mi' },
    });
    const binding = find(objects, 'RoleBinding', 'api');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'api' });
    assert.deepEqual(binding.subjects, [{ apiGroup: '', kind: 'ServiceAccount', name: 'api' }]);
    assert.equal(
      objects.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding'),
      false,
    );
  });

  test('the Role grants exactly the derived rules (one rule per group and resource, as cdk8s-plus writes them)', () => {
    const role = find(api(), 'Role', 'api');
    assert.ok(rulesCover(role.rules, trainingApiRoleRules()), 'every derived rule is granted');
    assert.ok(rulesCover(trainingApiRoleRules(), role.rules), 'nothing beyond the derived rules is granted');
    assert.deepEqual(
      role.rules.find((r: any) => r.resources.includes('statefulsets')),
      {
        apiGroups: ['apps'],
        resources: ['statefulsets'],
        verbs: ['get', 'list', 'create', 'patch', 'delete'],
      },
    );
    assert.deepEqual(
      role.rules.find((r: any) => r.resources.includes('pods/log')),
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
    );
    assert.deepEqual(
      role.rules.find((r: any) => r.resources.includes('roles')),
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['roles'],
        verbs: ['get', 'list', 'create', 'patch', 'delete', 'bind', 'escalate'],
      },
    );
  });

  test('the Role grants no Secret access, no wildcard, and bind/escalate on Roles only', () => {
    const rules: RbacRule[] = find(api(), 'Role', 'api').rules;
    for (const r of rules) {
      assert.ok(!(r.resources ?? []).some((x) => x === 'secrets' || x === '*'), JSON.stringify(r));
      assert.ok(!(r.apiGroups ?? []).includes('*') && !r.verbs.includes('*'), JSON.stringify(r));
      assert.equal(r.resourceNames, undefined);
      if (r.verbs.includes('bind') || r.verbs.includes('escalate'))
        assert.deepEqual([r.apiGroups, r.resources], [['rbac.authorization.k8s.io'], ['roles']]);
    }
  });

  test(
    'with it the API may create every Role and RoleBinding a job construct emits ' +
      "(Kubernetes' escalation check: it holds their permissions, or may escalate / bind Roles)",
    () => {
      const held: RbacRule[] = find(api(), 'Role', 'api').rules;
      const may = (verb: string): boolean =>
        held.some((r) => r.apiGroups?.includes('rbac.authorization.k8s.io') && r.resources?.includes('roles') && r.verbs.includes(verb));
      let checked = 0;
      for (const m of jobConstructManifests()) {
        const objects = m.objects as unknown as KubeObject[];
        for (const role of objects.filter((o) => o.kind === 'Role')) {
          assert.ok(rulesCover(held, role.rules) || may('escalate'), `${m.construct} Role/${role.metadata.name}`);
          checked++;
        }
        for (const binding of objects.filter((o) => o.kind === 'RoleBinding')) {
          const bound = objects.find((o) => o.kind === 'Role' && o.metadata.name === binding.roleRef.name);
          assert.ok(bound, `${m.construct} RoleBinding/${binding.metadata.name} binds a Role of the same construct`);
          assert.ok(rulesCover(held, bound.rules) || may('bind'), `${m.construct} RoleBinding/${binding.metadata.name}`);
          checked++;
        }
      }
      assert.ok(checked >= 4, `checked ${checked}`);
      // Without them it could not: the ensure-secrets Roles grant Secret access the API does not hold.
      assert.equal(may('escalate') && may('bind'), true);
      const secretsRole = jobConstructManifests()
        .flatMap((m) => m.objects)
        .find((o) => o.kind === 'Role')!;
      assert.equal(rulesCover(held, secretsRole.rules!), false);
    },
  );

  test('rulesCover compares as RBAC does: groups, resources, verbs, names and wildcards', () => {
    const held: RbacRule[] = [
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['a'] },
      { apiGroups: ['apps'], resources: ['*'], verbs: ['list'] },
    ];
    assert.equal(rulesCover(held, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['a'] }]), true);
    assert.equal(rulesCover(held, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['a', 'b'] }]), false);
    assert.equal(
      rulesCover(held, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]),
      false,
      'a named grant does not cover every name',
    );
    assert.equal(rulesCover(held, [{ apiGroups: ['apps'], resources: ['deployments', 'statefulsets'], verbs: ['list'] }]), true);
    assert.equal(rulesCover(held, [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'get'] }]), false);
  });

  test('its manifests are valid Kubernetes 1.27 objects (schema, cross-object references, security baseline)', () => {
    const findings = validateObjects(tracked({ mlflowUiUrl: 'https://mlflow.example.com' }), { file: 'training-api.k8s.yaml' });
    assert.deepEqual(findings.map(formatFinding), []);
  });

  test('the MLflow UI URL comes from the tracking stack; mlflowUiUrl overrides it; no tracking, no URL', () => {
    assert.equal(envOf(tracked())[API_ENV.mlflowUiUrl], 'http://mlflow:5000');
    assert.equal(envOf(tracked({ mlflowUiUrl: 'https://mlflow.example.com' }))[API_ENV.mlflowUiUrl], 'https://mlflow.example.com');
    assert.equal(envOf(api())[API_ENV.mlflowUiUrl], undefined);
  });

  test('fails if its tracking stack is in another namespace than the API (its jobs could not reach MLflow)', () => {
    const app = new App({ outdir: 'unused' });
    const tracking = new MlflowStack(new Chart(app, 'mlflow', { namespace: 'tensorfleet' }), 'Mlflow');
    assert.throws(() => new TrainingApi(new Chart(app, 'api', { namespace: 'training' }), 'Api', { tracking }), {
      message:
        `TrainingApi 'Api': 'tracking' must be an MlflowStack in the TrainingApi's namespace (namespace "training"): ` +
        `the jobs run there and reach MLflow by its Service name, ` +
        `which MLflow's NetworkPolicy admits from its own namespace only; it is in namespace "tensorfleet", got "mlflow"`,
    });
    assert.doesNotThrow(() => new TrainingApi(new Chart(app, 'same', { namespace: 'tensorfleet' }), 'Api', { tracking }));
  });

  test('env: parsed by the trainer as role api; the API settings; defaults', () => {
    const env = envOf(api());
    const config = parseTrainerEnv(env);
    assert.equal(config.role, 'api');
    assert.equal(config.jobName, 'api');
    assert.equal(config.listenPort, PORTS.api);
    assert.equal(config.authToken, 'from-secret');
    assert.equal(config.trackingUri, undefined);
    assert.equal(env[API_ENV.namespace], 'tensorfleet');
    assert.equal(env[API_ENV.defaultImage], `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`);
    assert.equal(env[API_ENV.maxBodyBytes], String(DEFAULT_API_MAX_BODY_BYTES));
    assert.equal(env[API_ENV.mlflowStack], undefined);
    assert.equal(env[API_ENV.mlflowUiUrl], undefined);
    // Job settings are the API's to choose per request, not the API pod's.
    assert.equal(env[ENV.epochs], undefined);
  });

  test('env: tracking, the MLflow UI, the default image and the body limit', () => {
    const env = envOf(
      tracked({
        image: 'registry.example.com/trainer:0.2.0',
        defaultImage: 'registry.example.com/trainer:0.1.9',
        mlflowUiUrl: 'https://mlflow.example.com',
        maxBodyBytes: 4096,
      }),
    );
    assert.equal(parseTrainerEnv(env).trackingUri, 'http://mlflow:5000');
    assert.equal(env[API_ENV.mlflowStack], 'mlflow');
    assert.equal(env[API_ENV.mlflowUiUrl], 'https://mlflow.example.com');
    assert.equal(env[API_ENV.defaultImage], 'registry.example.com/trainer:0.1.9');
    assert.equal(env[API_ENV.maxBodyBytes], '4096');
  });

  test('defaultImage defaults to the API image', () => {
    const env = envOf(api({ image: 'registry.example.com/trainer:0.2.0' }));
    assert.equal(env[API_ENV.defaultImage], 'registry.example.com/trainer:0.2.0');
  });

  test('NetworkPolicy: any pod of the namespace in on the API port; out to the API server and DNS only', () => {
    const policy = find(api(), 'NetworkPolicy', 'api');
    assert.deepEqual([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.deepEqual(policy.spec.ingress, [{ from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: PORTS.api }] }]);
    assert.deepEqual(policy.spec.egress[0], {
      to: [{ ipBlock: { cidr: '0.0.0.0/0' } }],
      ports: [
        { protocol: 'TCP', port: 443 },
        { protocol: 'TCP', port: 6443 },
      ],
    });
    assert.deepEqual(
      policy.spec.egress[1].ports.map((p: any) => p.port),
      [53, 53],
    );
    assert.equal(policy.spec.egress.length, 2);
  });

  test('NetworkPolicy: allowed clients, the API server block, and MLflow with tracking', () => {
    const objects = tracked({
      allowedClients: [{ app: 'cli' }, { 'example.com/team': 'ml' }],
      kubernetesApiCidr: '10.96.0.1/32',
    });
    const policy = find(objects, 'NetworkPolicy', 'api');
    assert.deepEqual(
      policy.spec.ingress.flatMap((r: any) => r.from),
      [{ podSelector: { matchLabels: { app: 'cli' } } }, { podSelector: { matchLabels: { 'example.com/team': 'ml' } } }],
    );
    assert.ok(policy.spec.ingress.every((r: any) => r.ports[0].port === PORTS.api));
    assert.deepEqual(policy.spec.egress[0].to, [{ ipBlock: { cidr: '10.96.0.1/32' } }]);
    assert.deepEqual(policy.spec.egress[2], {
      to: [{ podSelector: { matchLabels: { [LABELS.instance]: 'mlflow', [LABELS.component]: 'tracking-server' } } }],
      ports: [{ protocol: 'TCP', port: PORTS.mlflow }],
    });
    // MLflow admits trainer pods: the API pod is one.
    assert.equal(find(objects, 'Deployment', 'api').spec.template.metadata.labels[LABELS.trainer], 'true');
  });

  describe('fails at synth on bad props, naming construct, prop, value and what is allowed', () => {
    const cases: Array<[string, TrainingApiProps, string]> = [
      ['no replicas', { replicas: 0 }, `TrainingApi 'Api': 'replicas' must be an integer from 1 to 100, got 0`],
      [
        'an unpinned image',
        { image: 'trainer:latest' },
        `TrainingApi 'Api': 'image' must be an image reference pinned to a version, ` +
          `like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest"), got "trainer:latest"`,
      ],
      [
        'an unpinned default image',
        { defaultImage: 'trainer' },
        `TrainingApi 'Api': 'defaultImage' must be an image reference pinned to a version, ` +
          `like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest"), got "trainer"`,
      ],
      ['a tiny body limit', { maxBodyBytes: 100 }, `TrainingApi 'Api': 'maxBodyBytes' must be an integer from 1024 to 16777216, got 100`],
      [
        'a UI URL without a scheme',
        { mlflowUiUrl: 'mlflow.example.com' },
        `TrainingApi 'Api': 'mlflowUiUrl' must be an http:// or https:// URL, got "mlflow.example.com"`,
      ],
      [
        'a malformed CIDR',
        { kubernetesApiCidr: '10.96.0.1' },
        `TrainingApi 'Api': 'kubernetesApiCidr' must be a CIDR block like "10.96.0.1/32" or "fd00::/8", got "10.96.0.1"`,
      ],
      [
        'a prefix past 32 bits',
        { kubernetesApiCidr: '10.0.0.0/33' },
        `TrainingApi 'Api': 'kubernetesApiCidr' must be a CIDR block like "10.96.0.1/32" or "fd00::/8", got "10.0.0.0/33"`,
      ],
      [
        'no allowed clients',
        { allowedClients: [] },
        `TrainingApi 'Api': ` +
          `'allowedClients' must be at least one label selector (leave it unset to admit any pod in the namespace), got []`,
      ],
      [
        'an empty selector',
        { allowedClients: [{ app: 'cli' }, {}] },
        `TrainingApi 'Api': 'allowedClients[1]' must be at least one label, each with a valid Kubernetes label key and value, got {}`,
      ],
      [
        'a bad label value',
        { allowedClients: [{ app: 'my cli' }] },
        `TrainingApi 'Api': 'allowedClients[0]' must be at least one label, ` +
          `each with a valid Kubernetes label key and value, got {"app":"my cli"}`,
      ],
      [
        'limits below requests',
        { resources: { cpuRequestMillis: 500, cpuLimitMillis: 100, memoryRequestMiB: 64, memoryLimitMiB: 64 } },
        `TrainingApi 'Api': 'resources.cpuLimitMillis' must be an integer >= 500, got 100`,
      ],
      [
        'a name that is no DNS label',
        { name: 'Training_API' },
        `TrainingApi 'Api': 'name' must be a DNS-1123 label (lowercase letters, digits and '-', at most 40 characters), got "Training_API"`,
      ],
    ];
    for (const [what, props, message] of cases) {
      test(`fails if given ${what}`, () => {
        assert.throws(() => new TrainingApi(testChart(), 'Api', props), { message });
      });
    }
  });

  test('accepts an IPv6 API server block', () => {
    const policy = find(api({ kubernetesApiCidr: 'fd00::1/128' }), 'NetworkPolicy', 'api');
    assert.deepEqual(policy.spec.egress[0].to, [{ ipBlock: { cidr: 'fd00::1/128' } }]);
  });
});
