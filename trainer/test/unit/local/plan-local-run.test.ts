/**
 * What `tensorfleet run` starts for a chart: every training job, a fleet's server with its own clients (paired by
 * job), and the workloads it cannot run alone, read from charts synthesized through the constructs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Chart, Testing } from 'cdk8s';
import { DdpCluster, FederatedFleet, SplitLearning, TrainingApi } from '../../../../charts';
import { planLocalRun, trainerWorkloads } from '../../../src/local/run-chart';

function chart(build: (c: Chart) => void): ReturnType<typeof trainerWorkloads> {
  const c = new Chart(Testing.app(), 'c', { disableResourceNameHashes: true });
  build(c);
  return trainerWorkloads(Testing.synth(c) as Parameters<typeof trainerWorkloads>[0]);
}

describe('planLocalRun', () => {
  test('a DdpCluster, a FederatedFleet and a SplitLearning in one chart: three units in the chart order', () => {
    const workloads = chart((c) => {
      new DdpCluster(c, 'Ring');
      new FederatedFleet(c, 'Fleet', { clients: 3, minFitClients: 2, minAvailableClients: 2 });
      new SplitLearning(c, 'Split');
      new TrainingApi(c, 'Api');
    });
    assert.ok(!workloads.some((w) => w.role === 'api'), 'the TrainingApi is no trainer workload');
    const plan = planLocalRun(workloads);
    assert.deepEqual(plan.unpaired, []);
    assert.deepEqual(
      plan.units.map((u) => ('workload' in u ? [u.name, u.workload.role] : [u.name, u.server.name, u.client.name])),
      [
        ['ring', 'ddp'],
        ['fleet', 'fleet-server', 'fleet-client'],
        ['split', 'split-server', 'split-client'],
      ],
    );
  });

  test('two fleets in one chart: each server is paired with its own clients', () => {
    const plan = planLocalRun(
      chart((c) => {
        new FederatedFleet(c, 'SiteA');
        new FederatedFleet(c, 'SiteB');
      }),
    );
    assert.deepEqual(
      plan.units.map((u) => ('server' in u ? `${u.server.name}+${u.client.name}` : u.name)),
      ['site-a-server+site-a-client', 'site-b-server+site-b-client'],
    );
  });

  test('a fleet server whose clients are not in the chart cannot run: it is listed, not dropped', () => {
    const workloads = chart((c) => new FederatedFleet(c, 'Fleet'));
    const plan = planLocalRun(workloads.filter((w) => w.role !== 'fl-client'));
    assert.deepEqual(plan.units, []);
    assert.deepEqual(
      plan.unpaired.map((w) => `${w.kind}/${w.name}`),
      ['Deployment/fleet-server'],
    );
  });
});
