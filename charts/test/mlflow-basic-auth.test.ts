import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Construct } from 'constructs';
import { DdpCluster } from '../ddp-cluster';
import { FederatedFleet } from '../federated-fleet';
import { MlflowStack } from '../mlflow-stack';
import { MLFLOW_AUTH_DIR } from '../mlflow/tracking-server';
import { SplitLearning } from '../split-learning';
import { TrainingApi } from '../training-api';
import { formatFinding, validateObjects } from '../../tools/validate';
import { ANNOTATIONS, ENSURE_SECRETS_ENV, ENV, SECRET_KEYS, parseSecretSpecs, parseTrainerEnv } from '../../trainer/src/contract';
import { KubeObject, containers, find, podSpec, synth, testChart } from './helpers';

/** MlflowStack's basicAuth: MLflow's basic-auth app, its admin generated into a Secret and handed to every trainer from it. */

function stackObjects(basicAuth: boolean): KubeObject[] {
  const chart = testChart();
  new MlflowStack(chart, 'Mlflow', { basicAuth });
  return synth(chart);
}

function env(container: any): Record<string, any> {
  return Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e]));
}

function assertValid(objects: KubeObject[], file: string): void {
  const findings = validateObjects(objects, { file });
  assert.deepEqual(findings.map(formatFinding), [], 'schema, references, NetworkPolicies and security baseline hold');
}

/** The credentials as a pod gets them: both from the stack's auth Secret, neither as a value. */
function assertCredentialsFromSecret(container: any, what: string): void {
  const byName = env(container);
  for (const [name, key] of [
    [ENV.trackingUsername, SECRET_KEYS.username],
    [ENV.trackingPassword, SECRET_KEYS.password],
  ]) {
    assert.equal(byName[name]?.value, undefined, `${what}: ${name} is never a literal`);
    assert.deepEqual(byName[name]?.valueFrom, { secretKeyRef: { name: 'mlflow-auth', key } }, `${what}: ${name}`);
  }
}

describe('MlflowStack basicAuth', () => {
  test("runs MLflow's basic-auth app with the admin of a generated Secret, never a literal credential", () => {
    const objects = stackObjects(true);
    assert.equal(objects.filter((o) => o.kind === 'Secret' || o.kind === 'ConfigMap').length, 0, 'no credential in dist/');
    const specs = parseSecretSpecs(env(podSpec(find(objects, 'Job', 'mlflow-secrets')).containers[0])[ENSURE_SECRETS_ENV.spec].value);
    assert.deepEqual(
      specs.find((s) => s.name === 'mlflow-auth'),
      { name: 'mlflow-auth', keys: [SECRET_KEYS.username, SECRET_KEYS.password, SECRET_KEYS.flaskSecretKey] },
    );
    const deployment = find(objects, 'Deployment', 'mlflow');
    assert.match(deployment.metadata.annotations![ANNOTATIONS.externalRefs], /(^|,)secret\/mlflow-auth(,|$)/);
    const server = podSpec(deployment).containers[0];
    assert.ok(server.args.includes('--app-name=basic-auth'));
    const serverEnv = env(server);
    assert.equal(serverEnv.MLFLOW_AUTH_CONFIG_PATH.value, `${MLFLOW_AUTH_DIR}/basic_auth.ini`);
    assert.deepEqual(serverEnv.MLFLOW_FLASK_SERVER_SECRET_KEY.valueFrom, {
      secretKeyRef: { name: 'mlflow-auth', key: SECRET_KEYS.flaskSecretKey },
    });
    // The probes stay on /health, which MLflow's auth app leaves open.
    assert.equal(server.readinessProbe.httpGet.path, '/health');
    // The init step writes the INI from the Secret's values and adds the admin before the workers start.
    const setup = podSpec(deployment).initContainers.find((c: any) => c.name === 'auth-setup');
    assert.ok(setup, 'an auth-setup init container');
    assert.deepEqual(setup.command.slice(0, 2), ['python', '-c']);
    assert.deepEqual(env(setup).MLFLOW_ADMIN_PASSWORD.valueFrom, { secretKeyRef: { name: 'mlflow-auth', key: SECRET_KEYS.password } });
    assert.ok(
      setup.volumeMounts.some((m: any) => m.mountPath === '/tmp'),
      'the INI goes to the scratch volume the server mounts',
    );
    assertValid(objects, 'mlflow.yaml');
  });

  test('the setup step writes the INI MLflow 2.10 reads: the admin from the Secret, verbatim, mode 0600', () => {
    const setup = podSpec(find(stackObjects(true), 'Deployment', 'mlflow')).initContainers.find((c: any) => c.name === 'auth-setup');
    const script: string = setup.command[2];
    // Run with this machine's python up to MLflow's own store (not installed here), in a scratch folder for its own.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-mlflow-ini-'));
    try {
      const local = script.replace(`d = ${JSON.stringify(MLFLOW_AUTH_DIR)}`, `d = ${JSON.stringify(dir)}`);
      assert.notEqual(local, script, 'the script names its folder once');
      const mlflowOnly = local.indexOf('from mlflow');
      assert.ok(mlflowOnly > 0);
      const env = { PATH: process.env.PATH ?? '', MLFLOW_ADMIN_USERNAME: 'ad%min', MLFLOW_ADMIN_PASSWORD: 'p%(w)s=;#x' };
      execFileSync('python3', ['-c', local.slice(0, mlflowOnly)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      const ini = path.join(dir, 'basic_auth.ini');
      assert.equal(fs.statSync(ini).mode & 0o777, 0o600);
      const lines = fs.readFileSync(ini, 'utf8').split('\n');
      assert.equal(lines[0], '[mlflow]');
      assert.deepEqual(lines.slice(1, 5).sort(), [
        'admin_password = p%(w)s=;#x',
        'admin_username = ad%min',
        `database_uri = sqlite:///${dir}/basic_auth.db`,
        'default_permission = READ',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('off by default: no auth app, no auth Secret, no setup step', () => {
    const objects = stackObjects(false);
    const deployment = find(objects, 'Deployment', 'mlflow');
    assert.ok(!podSpec(deployment).containers[0].args.some((a: string) => a.startsWith('--app-name')));
    assert.ok(!containers(deployment).some((c) => c.name === 'auth-setup'));
    assert.doesNotMatch(JSON.stringify(objects), /mlflow-auth/);
  });

  const TRAINERS: Record<string, (scope: Construct, stack: MlflowStack) => void> = {
    DdpCluster: (scope, tracking) => new DdpCluster(scope, 'Train', { tracking }),
    FederatedFleet: (scope, tracking) => new FederatedFleet(scope, 'Fl', { tracking }),
    SplitLearning: (scope, tracking) => new SplitLearning(scope, 'Split', { tracking }),
  };
  for (const [kind, make] of Object.entries(TRAINERS)) {
    test(`${kind}: every container that reports to MLflow gets MLFLOW_TRACKING_USERNAME/PASSWORD from the auth Secret`, () => {
      const chart = testChart();
      make(chart, new MlflowStack(chart, 'Mlflow', { basicAuth: true }));
      const objects = synth(chart);
      const trainers = objects.filter((o) => podSpec(o)?.containers?.some((c: any) => env(c)[ENV.role] !== undefined));
      const reporting = trainers.filter((o) => env(podSpec(o).containers[0])[ENV.trackingUri] !== undefined);
      assert.ok(reporting.length > 0, `${kind} reports to MLflow`);
      for (const workload of trainers) {
        const container = podSpec(workload).containers[0];
        if (env(container)[ENV.trackingUri] === undefined) {
          assert.equal(
            env(container)[ENV.trackingPassword],
            undefined,
            `${workload.metadata.name} does not talk to MLflow: no credentials`,
          );
          continue;
        }
        assertCredentialsFromSecret(container, workload.metadata.name);
        assert.match(workload.metadata.annotations![ANNOTATIONS.externalRefs], /(^|,)secret\/mlflow-auth(,|$)/);
        // The trainer accepts the env it gets (both halves of basic auth, from the Secret).
        const values = Object.fromEntries(
          container.env.map((e: any) => [e.name, e.value ?? (e.valueFrom?.secretKeyRef ? 'from-secret' : '0')]),
        );
        const config = parseTrainerEnv({ ...values, [ENV.peers]: values[ENV.peers] ?? 'a:1' });
        assert.equal(config.trackingUsername, 'from-secret');
      }
      assertValid(objects, `${kind}.yaml`);
    });
  }

  test('a stack without basic auth hands no credentials', () => {
    const chart = testChart();
    new DdpCluster(chart, 'Train', { tracking: new MlflowStack(chart, 'Mlflow') });
    const job = find(synth(chart), 'Job', 'train');
    assert.equal(env(podSpec(job).containers[0])[ENV.trackingUsername], undefined);
  });

  test('TrainingApi: reads runs with the credentials and tells the API to hand them to its jobs', () => {
    const chart = testChart();
    new TrainingApi(chart, 'Api', { tracking: new MlflowStack(chart, 'Mlflow', { basicAuth: true }) });
    const objects = synth(chart);
    const deployment = find(objects, 'Deployment', 'api');
    const container = podSpec(deployment).containers[0];
    assertCredentialsFromSecret(container, 'api');
    assert.match(deployment.metadata.annotations![ANNOTATIONS.externalRefs], /(^|,)secret\/mlflow-auth(,|$)/);
    assertValid(objects, 'training-api.yaml');
  });
});
