import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiObject, Cron, JsonPatch, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { passOf, validateObjects, validateSchema, validateSemantics } from '../index';
import { describeAll, FILE } from '../test-fixtures';

/** A chart that exercises most cdk8s-plus-27 constructs the project uses. */
function synthPlusChart(hardened: boolean): unknown[] {
  const chart = Testing.chart();
  const securityContext: kplus.ContainerSecurityContextProps = hardened
    ? { capabilities: { drop: ['ALL' as kplus.Capability] } } // the enum has no ALL, only CAP_* names
    : {};
  const web = new kplus.Deployment(chart, 'x', { containers: [{ image: 'nginx:1.27.0', portNumber: 80, securityContext }] });
  web.exposeViaService();
  const secret = new kplus.Secret(chart, 'sec', { stringData: { password: 'x' } });
  const config = new kplus.ConfigMap(chart, 'cm', { data: { a: 'b' } });
  const ring = new kplus.StatefulSet(chart, 'ss', { containers: [{ image: 'nginx:1.27.0', portNumber: 80, securityContext }] });
  ring.containers[0].env.addVariable('PASSWORD', kplus.EnvValue.fromSecretValue({ secret, key: 'password' }));
  ring.containers[0].mount('/config', kplus.Volume.fromConfigMap(chart, 'cfg', config));
  ring.containers[0].mount('/tmp', kplus.Volume.fromEmptyDir(chart, 'tmp', 'tmp'));
  const job = new kplus.Job(chart, 'job', { containers: [{ image: 'busybox:1.36', securityContext }] });
  const cron = new kplus.CronJob(chart, 'cj', { schedule: Cron.daily(), containers: [{ image: 'busybox:1.36', securityContext }] });
  new kplus.NetworkPolicy(chart, 'np', {});
  new kplus.ServiceAccount(chart, 'sa');
  if (hardened) {
    // cdk8s-plus-27 has no seccompProfile prop: add it with an escape hatch.
    const seccomp = { type: 'RuntimeDefault' };
    for (const w of [web, ring, job])
      ApiObject.of(w).addJsonPatch(JsonPatch.add('/spec/template/spec/securityContext/seccompProfile', seccomp));
    ApiObject.of(cron).addJsonPatch(JsonPatch.add('/spec/jobTemplate/spec/template/spec/securityContext/seccompProfile', seccomp));
  }
  return Testing.synth(chart);
}

describe('real cdk8s-plus-27 output', () => {
  test('passes the schema pass (a) with no findings', () => {
    const objects = synthPlusChart(false);
    assert.equal(objects.length, 10);
    assert.deepEqual(describeAll(validateSchema(objects, { file: FILE })), []);
  });

  test('passes the semantics pass (c): selectors, targetPorts, refs, governing Service', () => {
    assert.deepEqual(describeAll(validateSemantics(synthPlusChart(false), FILE)), []);
  });

  test('misses only capabilities.drop and seccompProfile of the security baseline by default', () => {
    const findings = validateObjects(synthPlusChart(false), { file: FILE });
    assert.ok(findings.every((f) => passOf(f.rule) === 'security'));
    assert.deepEqual([...new Set(findings.map((f) => f.rule))].sort(), [
      'security/capabilities-drop-all',
      'security/seccomp-runtime-default',
    ]);
  });

  test('passes every rule once capabilities are dropped and seccomp is patched in', () => {
    assert.deepEqual(describeAll(validateObjects(synthPlusChart(true), { file: FILE })), []);
  });
});
