import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MlflowStack } from '../mlflow-stack';
import { SplitLearning, SplitLearningProps } from '../split-learning';
import { ENV, PORTS, parseTrainerEnv } from '../../trainer/src/contract';
import { KubeObject, find, podSpec, selectedWorkloads, synth, testChart } from './helpers';

function split(props: SplitLearningProps = {}): KubeObject[] {
  const chart = testChart();
  new SplitLearning(chart, 'Split', props);
  return synth(chart);
}

function podEnv(workload: KubeObject, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of podSpec(workload).containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'from-secret';
  }
  return env;
}

describe('SplitLearning', () => {
  test('server Deployment + Service and client StatefulSet agree on the cut, the mode and the server address', () => {
    const objects = split({ clients: 3, mode: 'u-shaped', cutLayer: 2, noiseSigma: 0.1, tracking: new MlflowStack(testChart(), 'Mlflow') });
    const server = parseTrainerEnv(podEnv(find(objects, 'Deployment', 'split-server'), 'split-server-x'));
    assert.equal(server.role, 'split-server');
    assert.equal(server.listenPort, PORTS.split);
    assert.equal(server.trackingUri, 'http://mlflow:5000');
    const clients = find(objects, 'StatefulSet', 'split-client');
    assert.equal(clients.spec.replicas, 3);
    const client = parseTrainerEnv(podEnv(clients, 'split-client-2'));
    assert.equal(client.rank, 2);
    for (const key of ['cutLayer', 'splitMode', 'noiseSigma', 'model', 'batchSize'] as const) assert.equal(client[key], server[key], key);
    assert.equal(client.splitMode, 'u-shaped');
    assert.equal(`${client.masterAddr}:${client.masterPort}`, `split-server:${PORTS.split}`);
    assert.equal(client.trackingUri, undefined, 'only the server reports to MLflow');
    assert.equal(podEnv(clients, 'split-client-0')[ENV.authToken], 'from-secret');
    assert.deepEqual(
      [server.afterDone, client.afterDone],
      ['idle', 'idle'],
      'a Deployment and a StatefulSet would restart processes that exit when training is over',
    );
  });

  test('NetworkPolicy: clients reach the server port only', () => {
    const objects = split();
    const client = find(objects, 'NetworkPolicy', 'split-client');
    assert.equal(client.spec.ingress, undefined, 'no ingress rule: with policyType Ingress, nothing is admitted');
    assert.deepEqual([...client.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.deepEqual(client.spec.egress[0].ports, [{ protocol: 'TCP', port: PORTS.split }]);
    const server = find(objects, 'NetworkPolicy', 'split-server');
    assert.deepEqual(server.spec.ingress[0].ports, [{ protocol: 'TCP', port: PORTS.split }]);
    assert.deepEqual(selectedWorkloads(objects, server.spec.ingress[0].from[0].podSelector.matchLabels), ['StatefulSet/split-client']);
  });

  describe('fails at synth on bad props, naming construct, prop, value and what is allowed', () => {
    const cases: Array<[string, SplitLearningProps, string]> = [
      ['a cut past the model', { model: 'mlp', cutLayer: 3 }, `SplitLearning 'Split': 'cutLayer' must be an integer from 1 to 2, got 3`],
      [
        'an unknown mode',
        { mode: 'y-shaped' as never },
        `SplitLearning 'Split': 'mode' must be one of vanilla, u-shaped, sequential, splitfed, got "y-shaped"`,
      ],
      [
        'SplitFed with one client',
        { mode: 'splitfed', clients: 1 },
        `SplitLearning 'Split': 'clients' must be at least 2 for mode splitfed, got 1`,
      ],
      ['negative noise', { noiseSigma: -1 }, `SplitLearning 'Split': 'noiseSigma' must be a number >= 0, got -1`],
    ];
    for (const [what, props, message] of cases) {
      test(`fails if given ${what}`, () => {
        assert.throws(() => new SplitLearning(testChart(), 'Split', props), { message });
      });
    }
  });
});
