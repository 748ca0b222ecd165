import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FederatedFleet, FederatedFleetProps, LIQO } from '../federated-fleet';
import { MlflowStack } from '../mlflow-stack';
import { ENV, PORTS, SECRET_KEYS, parseTrainerEnv } from '../../trainer/src/contract';
import { KubeObject, find, podSpec, selectedWorkloads, synth, testChart } from './helpers';

function fleet(props: FederatedFleetProps = {}): KubeObject[] {
  const chart = testChart();
  new FederatedFleet(chart, 'Fl', props);
  return synth(chart);
}

/** The env a pod would see: values, the pod name, and a Secret's value. */
function podEnv(workload: KubeObject, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of podSpec(workload).containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'token-from-secret';
  }
  return env;
}

describe('FederatedFleet', () => {
  test('server Deployment + ClusterIP Service, clients as a StatefulSet whose ordinal is the partition', () => {
    const objects = fleet({
      clients: 3,
      minFitClients: 2,
      minAvailableClients: 3,
      rounds: 7,
      strategy: 'fedadam',
      serverLearningRate: 0.1,
    });
    const server = find(objects, 'Deployment', 'fl-server');
    const service = find(objects, 'Service', 'fl-server');
    assert.notEqual(service.spec.clusterIP, 'None');
    assert.equal(service.spec.ports[0].port, PORTS.federated);
    const serverConfig = parseTrainerEnv(podEnv(server, 'fl-server-abc'));
    assert.equal(serverConfig.role, 'fl-server');
    assert.equal(serverConfig.rounds, 7);
    assert.equal(serverConfig.strategy, 'fedadam');
    assert.equal(serverConfig.serverLearningRate, 0.1);
    assert.equal(serverConfig.minAvailableClients, 3);
    assert.equal(serverConfig.afterDone, 'idle', 'a Deployment would restart a server that exits after the last round');
    const clients = find(objects, 'StatefulSet', 'fl-client');
    assert.equal(clients.spec.replicas, 3);
    for (const ordinal of [0, 2]) {
      const config = parseTrainerEnv(podEnv(clients, `fl-client-${ordinal}`));
      assert.equal(config.role, 'fl-client');
      assert.equal(config.rank, ordinal);
      assert.equal(config.worldSize, 3);
      assert.equal(`${config.masterAddr}:${config.masterPort}`, `fl-server:${PORTS.federated}`);
      assert.equal(config.authToken, 'token-from-secret');
      assert.equal(config.afterDone, 'idle');
    }
  });

  test('the bearer token comes from a Secret generated in the cluster, for server and clients alike', () => {
    const objects = fleet();
    const tokenRef = (w: KubeObject) => podSpec(w).containers[0].env.find((e: any) => e.name === ENV.authToken).valueFrom.secretKeyRef;
    assert.deepEqual(tokenRef(find(objects, 'Deployment', 'fl-server')), { name: 'fl-token', key: SECRET_KEYS.authToken });
    assert.deepEqual(tokenRef(find(objects, 'StatefulSet', 'fl-client')), { name: 'fl-token', key: SECRET_KEYS.authToken });
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    assert.match(podSpec(find(objects, 'Job', 'fl-secrets')).containers[0].env[0].value, /"name":"fl-token"/);
  });

  test('NetworkPolicy: clients reach the server port only; the server admits only clients', () => {
    const objects = fleet({ tracking: new MlflowStack(testChart(), 'Mlflow') });
    const client = find(objects, 'NetworkPolicy', 'fl-client');
    assert.equal(client.spec.ingress, undefined, 'no ingress rule: with policyType Ingress, nothing is admitted');
    assert.deepEqual([...client.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.deepEqual(client.spec.egress[0].ports, [{ protocol: 'TCP', port: PORTS.federated }]);
    const server = find(objects, 'NetworkPolicy', 'fl-server');
    assert.equal(server.spec.ingress.length, 1);
    assert.equal(server.spec.ingress[0].from.length, 1);
    assert.deepEqual(Object.keys(server.spec.ingress[0].from[0]), ['podSelector']);
    assert.deepEqual(selectedWorkloads(objects, server.spec.ingress[0].from[0].podSelector.matchLabels), ['StatefulSet/fl-client']);
    assert.ok(
      server.spec.egress.some((r: any) => r.ports?.[0]?.port === PORTS.mlflow),
      'the server reaches MLflow',
    );
  });

  test('the workloads keep the selectors they had before cdk8s-plus (a selector is immutable once applied)', () => {
    const objects = fleet();
    const server = find(objects, 'Deployment', 'fl-server');
    const clients = find(objects, 'StatefulSet', 'fl-client');
    assert.deepEqual(server.spec.selector, {
      matchLabels: { 'app.kubernetes.io/component': 'server', 'app.kubernetes.io/instance': 'fl' },
    });
    assert.deepEqual(clients.spec.selector, {
      matchLabels: { 'app.kubernetes.io/component': 'client', 'app.kubernetes.io/instance': 'fl' },
    });
    assert.deepEqual(selectedWorkloads(objects, server.spec.selector.matchLabels), ['Deployment/fl-server']);
    assert.deepEqual(selectedWorkloads(objects, clients.spec.selector.matchLabels), ['StatefulSet/fl-client']);
    assert.deepEqual(selectedWorkloads(objects, find(objects, 'Service', 'fl-server').spec.selector), ['Deployment/fl-server']);
  });

  test('the server keeps its round checkpoint on a volume and is never run twice', () => {
    const objects = fleet({ serverStateGiB: 3 });
    const claim = find(objects, 'PersistentVolumeClaim', 'fl-server-state');
    assert.equal(claim.spec.resources.requests.storage, '3Gi');
    const server = find(objects, 'Deployment', 'fl-server');
    assert.equal(server.spec.strategy.type, 'Recreate');
    const checkpoints = podSpec(server).volumes.find((v: any) => v.name === 'checkpoints');
    assert.deepEqual(checkpoints.persistentVolumeClaim, { claimName: 'fl-server-state', readOnly: false });
  });

  test('multi-cluster: a Liqo NamespaceOffloading, clients on virtual nodes with the toleration, the server on local nodes', () => {
    const objects = fleet({ multiCluster: true, remoteClusterLabels: { 'liqo.io/remote-cluster-id': 'edge-1' } });
    const offloading = find(objects, 'NamespaceOffloading', LIQO.offloadingName);
    assert.equal(offloading.apiVersion, 'offloading.liqo.io/v1beta1');
    assert.equal(offloading.spec.podOffloadingStrategy, 'LocalAndRemote');
    assert.deepEqual(offloading.spec.clusterSelector.nodeSelectorTerms[0].matchExpressions, [
      { key: 'liqo.io/remote-cluster-id', operator: 'In', values: ['edge-1'] },
    ]);
    const clientTerms = podSpec(find(objects, 'StatefulSet', 'fl-client')).affinity.nodeAffinity
      .requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    assert.deepEqual(clientTerms[0].matchExpressions[0], { key: 'liqo.io/type', operator: 'In', values: ['virtual-node'] });
    assert.deepEqual(podSpec(find(objects, 'StatefulSet', 'fl-client')).tolerations, [
      { key: LIQO.taintKey, operator: 'Exists', effect: 'NoExecute' },
    ]);
    const serverTerms = podSpec(find(objects, 'Deployment', 'fl-server')).affinity.nodeAffinity
      .requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    assert.deepEqual(serverTerms[0].matchExpressions, [{ key: 'liqo.io/type', operator: 'NotIn', values: ['virtual-node'] }]);
  });

  describe('fails at synth on bad props, naming construct, prop, value and what is allowed', () => {
    const cases: Array<[string, FederatedFleetProps, string]> = [
      ['zero clients', { clients: 0 }, `FederatedFleet 'Fl': 'clients' must be an integer from 1 to 10000, got 0`],
      [
        'more available clients than clients',
        { clients: 2, minAvailableClients: 3 },
        `FederatedFleet 'Fl': 'minAvailableClients' must be an integer from 1 to 2, got 3`,
      ],
      [
        'more fit clients than available ones',
        { clients: 4, minAvailableClients: 2, minFitClients: 3 },
        `FederatedFleet 'Fl': 'minFitClients' must be an integer from 1 to 2, got 3`,
      ],
      ['a fraction above 1', { fractionFit: 1.5 }, `FederatedFleet 'Fl': 'fractionFit' must be a number in (0, 1], got 1.5`],
      [
        'an unknown strategy',
        { strategy: 'fedsgd' as never },
        `FederatedFleet 'Fl': 'strategy' must be one of fedavg, fedavgm, fedprox, fedadam, ` +
          `fedyogi, fedadagrad, fedmedian, fedtrimmedavg, krum, multikrum, got "fedsgd"`,
      ],
      [
        'noise without clipping',
        { dpNoiseMultiplier: 1 },
        `FederatedFleet 'Fl': ` +
          `'dpClipNorm' must be a number > 0 when 'dpNoiseMultiplier' is set (noise is scaled by the clip norm), got undefined`,
      ],
      [
        'Krum with too few clients per round',
        { clients: 4, minAvailableClients: 4, minFitClients: 4, strategy: 'krum', byzantineClients: 1 },
        `FederatedFleet 'Fl': 'minFitClients' must be at least 2 x byzantineClients + 3 (5) for krum, got 4`,
      ],
      ['a trim share of one half', { trimBeta: 0.5 }, `FederatedFleet 'Fl': 'trimBeta' must be a number in [0, 0.5), got 0.5`],
    ];
    for (const [what, props, message] of cases) {
      test(`fails if given ${what}`, () => {
        assert.throws(() => new FederatedFleet(testChart(), 'Fl', props), { message });
      });
    }
  });
});
