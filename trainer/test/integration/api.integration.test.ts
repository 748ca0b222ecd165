/**
 * The TrainingApi end to end: the real API server (createApiServer + KubeJobs
 * over @kubernetes/client-node), its callers (HTTP and the `tensorfleet` CLI),
 * and the Kubernetes API's request contract checked by a recording stand-in that
 * answers as the API documents (no real API server can run here).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AddressInfo } from 'node:net';
import { Server } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { App, Chart } from 'cdk8s';
import { parseAllDocuments } from 'yaml';
import { TrainingApi } from '../../../charts/training-api';
import { API_CLIENT_ENV, API_FIELD_MANAGER, ApiErrorBody, ENSURE_SECRETS_ENV, JobStatus, parseSecretSpecs } from '../../src/contract';
import { KubeJobs } from '../../src/api/kube';
import { MlflowRuns } from '../../src/api/mlflow';
import { buildJobObjects } from '../../src/api/objects';
import { createApiServer } from '../../src/api/server';
import { KubeApi } from '../../src/kube/api-client';
import { ensureSecrets } from '../../src/kube/ensure-secrets';
import { CLI_JS, REPO_ROOT } from '../../../tools/test-support/paths';
import { KubeApiRecorder } from '../support/kube-api-recorder';
import { FakeMlflow } from '../support/mlflow-stand-in';

const NS = 'training';
const TOKEN = 'api-test-token';
const MLFLOW_UI = 'http://mlflow.example';

/** The TrainingApi's ServiceAccount, Role and RoleBinding, as the training-api chart applies them. */
function trainingApiRbac(): any[] {
  const app = new App({ outdir: 'unused' });
  new TrainingApi(new Chart(app, 'training-api', { disableResourceNameHashes: true }), 'TrainingApi');
  return (app.charts[0].toJson() as any[]).filter(
    (o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind) && o.metadata.name === 'training-api',
  );
}

function kubeConfig(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'recorder', server, skipTLSVerify: true }],
    users: [{ name: 'api', token }],
    contexts: [{ name: 'recorder', cluster: 'recorder', user: 'api', namespace: NS }],
    currentContext: 'recorder',
  });
  return kc;
}

interface Answer {
  status: number;
  type: string;
  text: string;
  json: any;
  headers: Headers;
}

describe('TrainingApi against the Kubernetes API request contract (recording server; no API server runs here)', () => {
  let kube: KubeApiRecorder;
  let kubeUrl: string;
  let kubeToken: string;
  let mlflow: FakeMlflow;
  let api: Server;
  let base: string;
  const logLines: string[] = [];

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, json, headers: res.headers };
  }

  before(async () => {
    kube = new KubeApiRecorder();
    kubeUrl = await kube.start();
    // The API calls as its own ServiceAccount, authorized by the Role the chart gives it.
    kube.seed(trainingApiRbac(), NS);
    kubeToken = kube.issueToken(NS, 'training-api');
    mlflow = new FakeMlflow();
    const mlflowUrl = await mlflow.start();
    api = createApiServer({
      jobs: new KubeJobs(kubeConfig(kubeUrl, kubeToken), {
        namespace: NS,
        tracking: { runs: new MlflowRuns({ trackingUri: mlflowUrl }), uiUrl: MLFLOW_UI },
      }),
      token: TOKEN,
      maxBodyBytes: 4096,
      version: 'test',
      build: { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' },
      log: (line) => logLines.push(line),
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => api.close(() => resolve()));
    await kube.stop();
    await mlflow.stop();
  });
  afterEach(() => {
    kube.requests.length = 0;
  });

  const ddp = {
    job_name: 'mnist-a',
    kind: 'ddp',
    epochs: 2,
    batch_size: 64,
    dataset_size: 20000,
    world_size: 2,
    dataset_type: 'mnist',
    dataset_uri: 'https://data.example/mnist',
  };

  test(
    'POST /jobs applies every object with server-side apply: ' +
      'PATCH, fieldManager, force, apply-patch content type, service-account token',
    async () => {
      const r = await call('POST', '/jobs', ddp);
      assert.equal(r.status, 201, r.text);
      const expected = buildJobObjects(ddp as never, { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' });
      assert.deepEqual(r.json, { name: 'mnist-a', kind: 'ddp', objects: expected.map((o) => `${o.kind}/${o.metadata.name}`) });
      const patches = kube.calls().filter((c) => c.method === 'PATCH');
      assert.deepEqual(
        patches.map((p) => p.path),
        [
          // The ring's bearer token: a per-job Secret made in the cluster by the secret generator (its account, Role,
          // RoleBinding, Job and NetworkPolicy) before the ring starts.
          `/api/v1/namespaces/${NS}/serviceaccounts/mnist-a-secrets`,
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/mnist-a-secrets`,
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/mnist-a-secrets`,
          `/apis/batch/v1/namespaces/${NS}/jobs/mnist-a-secrets`,
          `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/mnist-a-secrets`,
          `/api/v1/namespaces/${NS}/services/mnist-a-ring`,
          `/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`,
          `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/mnist-a`,
        ],
      );
      for (const p of patches) {
        assert.equal(p.contentType, 'application/apply-patch+yaml');
        assert.equal(p.query.get('fieldManager'), API_FIELD_MANAGER);
        assert.equal(p.query.get('force'), 'true');
        assert.equal(p.authorization, `Bearer ${kubeToken}`);
        assert.equal(p.body.metadata.namespace, NS);
      }
      // What was applied is the construct's object, namespaced.
      const job = patches.find((p) => p.path.endsWith('/jobs/mnist-a'))!.body;
      const expectedJob = expected.find((o) => o.kind === 'Job' && o.metadata.name === 'mnist-a')!;
      assert.deepEqual(
        { ...job, metadata: { ...job.metadata, namespace: undefined } },
        { ...expectedJob, metadata: { ...expectedJob.metadata, namespace: undefined } },
      );
      assert.equal(job.spec.template.spec.containers[0].image, 'ghcr.io/tensorfleet/trainer:9.9.9');
    },
  );

  test('POST /jobs with an existing name answers 409 ALREADY_EXISTS and applies nothing', async () => {
    const r = await call('POST', '/jobs', ddp);
    assert.equal(r.status, 409);
    assert.equal((r.json as ApiErrorBody).error.code, 'ALREADY_EXISTS');
    assert.equal(kube.calls().filter((c) => c.method === 'PATCH').length, 0);
  });

  test("the Kubernetes API's own 409 Conflict (an apply conflict) becomes 409 ALREADY_EXISTS with its message", async () => {
    kube.failNext({
      method: 'PATCH',
      path: /\/jobs\/conflicted$/,
      code: 409,
      message: 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using batch/v1: .spec.parallelism',
    });
    const r = await call('POST', '/jobs', { job_name: 'conflicted', kind: 'ddp' });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'ALREADY_EXISTS');
    assert.match(
      r.json.error.message,
      new RegExp(
        /applying Job conflicted \(server-side apply: patch jobs\.batch\): the Kubernetes API answered 409 Conflict: /.source +
          /Apply failed with 1 conflict/.source,
      ),
    );
  });

  test("the Kubernetes API's 403 Forbidden becomes 403 KUBERNETES_FORBIDDEN naming the object", async () => {
    kube.failNext({
      method: 'PATCH',
      path: /\/jobs\/fl-forbidden$|\/deployments\/fl-forbidden-server$/,
      code: 403,
      message:
        'deployments.apps "fl-forbidden-server" is forbidden: User "system:serviceaccount:training:training-api" ' +
        'cannot patch resource "deployments" in API group "apps" in the namespace "training"',
    });
    const r = await call('POST', '/jobs', { job_name: 'fl-forbidden', kind: 'federated', clients: 2, rounds: 1 });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, 'KUBERNETES_FORBIDDEN');
    assert.match(
      r.json.error.message,
      /applying Deployment fl-forbidden-server \(server-side apply: patch deployments\.apps\): .*cannot patch resource "deployments"/,
    );
  });

  test("the Kubernetes API's 422 Invalid becomes 422 KUBERNETES_INVALID with its causes", async () => {
    kube.failNext({
      method: 'PATCH',
      path: /\/statefulsets\/sl-invalid-client$/,
      code: 422,
      message: 'StatefulSet.apps "sl-invalid-client" is invalid',
      causes: [{ field: 'spec.replicas', message: 'Invalid value: -1: must be greater than or equal to 0', reason: 'FieldValueInvalid' }],
    });
    const r = await call('POST', '/jobs', { job_name: 'sl-invalid', kind: 'split', clients: 1 });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, 'KUBERNETES_INVALID');
    assert.match(
      r.json.error.message,
      /StatefulSet sl-invalid-client \(server-side apply: patch statefulsets\.apps\): .*spec\.replicas: Invalid value: -1/,
    );
  });

  test('a Kubernetes API that answers 500 becomes 503 KUBERNETES_UNAVAILABLE', async () => {
    kube.failNext({ method: 'GET', path: /\/namespaces\/training\/jobs$/, code: 500, message: 'etcdserver: request timed out' });
    const r = await call('POST', '/jobs', { job_name: 'down', kind: 'ddp' });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'KUBERNETES_UNAVAILABLE');
    assert.match(r.json.error.message, /etcdserver: request timed out/);
  });

  test('?dryRun=true answers the YAML it would apply and makes no Kubernetes call but discovery', async () => {
    const r = await call('POST', '/jobs?dryRun=true', { job_name: 'dry', kind: 'split', clients: 2, cut_layer: 2 });
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/yaml');
    const docs = parseAllDocuments(r.text).map((d) => d.toJSON());
    assert.deepEqual(
      docs,
      JSON.parse(
        JSON.stringify(
          buildJobObjects(
            { job_name: 'dry', kind: 'split', clients: 2, cut_layer: 2 },
            { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' },
          ),
        ),
      ),
    );
    assert.equal(kube.calls().length, 0);
  });

  test("validation: 400 lists every problem field by field; a construct's refusal names the request field", async () => {
    const r = await call('POST', '/jobs', { job_name: 'Bad_Name', kind: 'ddp', epochs: 0, rounds: 3, colour: 'red' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'INVALID_REQUEST');
    assert.deepEqual(
      r.json.error.fields.map((f: { field: string }) => f.field),
      ['job_name', 'epochs', 'rounds', 'colour'],
    );
    const cut = await call('POST', '/jobs', { job_name: 'cut', kind: 'split', model: 'mlp', cut_layer: 7 });
    assert.equal(cut.status, 400);
    assert.equal(cut.json.error.fields[0].field, 'cut_layer');
    assert.match(cut.json.error.fields[0].allowed, /from 1 to 2/);
    assert.equal(kube.calls().length, 0);
  });

  test('413 past the body limit, 415 for a non-JSON body, 400 for malformed JSON, 405 with Allow', async () => {
    const big = await call('POST', '/jobs', { job_name: 'x', kind: 'ddp', dataset_uri: `https://h/${'a'.repeat(5000)}` });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, 'PAYLOAD_TOO_LARGE');
    const form = await call('POST', '/jobs', 'job_name=x', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415);
    const broken = await call('POST', '/jobs', '{"job_name":', {});
    assert.equal(broken.status, 400);
    assert.equal(broken.json.error.fields[0].field, '(body)');
    const put = await call('PUT', '/jobs');
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'GET, POST');
  });

  test(
    'auth: no token or a wrong token is refused with 401 before any Kubernetes call; ' + 'health and the OpenAPI document are open',
    async () => {
      const none = await fetch(`${base}/jobs`);
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      const wrong = await call('GET', '/jobs', undefined, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.json.error.message, 'the bearer token is wrong');
      assert.equal(kube.calls().length, 0);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string };
      assert.equal(doc.openapi, '3.0.3');
      const docs = await fetch(`${base}/docs`);
      assert.match(await docs.text(), /SwaggerUIBundle\(\{ url: '\/openapi\.json'/);
      const bundle = await fetch(`${base}/docs/swagger-ui-bundle.js`);
      assert.equal(bundle.status, 200);
      assert.ok((await bundle.arrayBuffer()).byteLength > 100_000, 'the Swagger UI bundle is served locally');
    },
  );

  test('every request is logged with who (address and token fingerprint, never the token) and what', () => {
    const lines = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const created = lines.find((l) => l.method === 'POST' && l.status === 201);
    assert.ok(created, 'the 201 was logged');
    assert.equal(created.job, 'mnist-a');
    assert.equal(created.path, '/jobs');
    assert.match(String(created.who), /^127\.0\.0\.1 \(token:[0-9a-f]{12}\)$/);
    assert.ok(!logLines.some((l) => l.includes(TOKEN)), 'the token never appears in the log');
    assert.ok(lines.some((l) => l.status === 401 && l.who === '127.0.0.1 (no token)'));
  });

  const pick = (s: JobStatus) => ({
    phase: s.phase,
    ready: s.ready,
    desired: s.desired,
    progress: s.progress,
    link: s.mlflowRunUrl,
    runId: s.mlflowRunId,
  });

  test(
    "GET /jobs/{name} and GET /jobs: phase and ready from the workload's documented status; " +
      "progress, run link and run id from the job's MLflow run",
    async () => {
      const jobPath = `/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`;
      const job = kube.store.get(jobPath);
      const created = Date.parse(job.metadata.creationTimestamp);
      kube.put(jobPath, { ...job, status: { active: 2, ready: 2 } });
      // No experiment yet: no link, progress unknown.
      let one = await call('GET', '/jobs/mnist-a');
      assert.equal(one.status, 200, one.text);
      assert.deepEqual(pick(one.json), { phase: 'Running', ready: 2, desired: 2, progress: undefined, link: undefined, runId: undefined });
      // The experiment, no run of this job yet: an earlier job of the same name finished one before this job was created.
      mlflow.addExperiment('mnist-a', '7');
      mlflow.runs.push({
        experimentName: 'mnist-a',
        runId: 'earlier',
        startTime: created - 3_600_000,
        status: 'FINISHED',
        tags: { 'tensorfleet.role': 'ddp' },
        metrics: { epoch_loss: { value: 0.1, step: 2 } },
      });
      one = await call('GET', '/jobs/mnist-a');
      assert.deepEqual(pick(one.json), {
        phase: 'Running',
        ready: 2,
        desired: 2,
        progress: undefined,
        link: `${MLFLOW_UI}/#/experiments/7`,
        runId: undefined,
      });
      // Rank 0's run, one of the job's two epochs done.
      mlflow.runs.push({
        experimentName: 'mnist-a',
        runId: 'run-1',
        startTime: created + 4000,
        tags: { 'tensorfleet.role': 'ddp', 'tensorfleet.resumeEpoch': '0' },
        metrics: { epoch_loss: { value: 0.3, step: 1 }, train_loss: { value: 0.2, step: 313 } },
      });
      one = await call('GET', '/jobs/mnist-a');
      assert.deepEqual(pick(one.json), {
        phase: 'Running',
        ready: 2,
        desired: 2,
        progress: 0.5,
        link: `${MLFLOW_UI}/#/experiments/7/runs/run-1`,
        runId: 'run-1',
      });
      const search = mlflow.requests.filter((r) => r.path === '/api/2.0/mlflow/runs/search').at(-1);
      assert.deepEqual(search?.body.experiment_ids, ['7']);
      assert.equal(search?.body.filter, "tags.`tensorfleet.role` = 'ddp'");
      kube.put(jobPath, { ...job, status: { succeeded: 2, conditions: [{ type: 'Complete', status: 'True' }] } });
      const list = await call('GET', '/jobs');
      const listed = (list.json.jobs as JobStatus[]).find((j) => j.name === 'mnist-a');
      assert.deepEqual(pick(listed!), {
        phase: 'Succeeded',
        ready: 0,
        desired: 2,
        progress: 1,
        link: `${MLFLOW_UI}/#/experiments/7/runs/run-1`,
        runId: 'run-1',
      });
      const selectors = kube
        .calls()
        .filter((c) => c.method === 'GET' && c.path.endsWith('/jobs'))
        .map((c) => c.query.get('labelSelector'));
      assert.ok(selectors.includes('tensorfleet.io/role=ddp'), `label selectors: ${selectors.join(' | ')}`);
      assert.equal((await call('GET', '/jobs/nope')).status, 404);
    },
  );

  test('a federated job: progress is rounds done over rounds; its server idles once done, so the finished run says Succeeded', async () => {
    const r = await call('POST', '/jobs', { job_name: 'fl-rounds', kind: 'federated', clients: 2, rounds: 4 });
    assert.equal(r.status, 201, r.text);
    const path = `/apis/apps/v1/namespaces/${NS}/deployments/fl-rounds-server`;
    const server = kube.store.get(path);
    kube.put(path, { ...server, status: { availableReplicas: 1 } });
    mlflow.addExperiment('fl-rounds', '9');
    const run = {
      experimentName: 'fl-rounds',
      runId: 'fl-run',
      startTime: Date.parse(server.metadata.creationTimestamp) + 1000,
      tags: { 'tensorfleet.role': 'fl-server', 'tensorfleet.resumeRound': '0' },
    };
    mlflow.runs.push({ ...run, metrics: { test_accuracy: { value: 0.8, step: 3 } } });
    assert.deepEqual(pick((await call('GET', '/jobs/fl-rounds')).json), {
      phase: 'Running',
      ready: 0,
      desired: 2,
      progress: 0.75,
      link: `${MLFLOW_UI}/#/experiments/9/runs/fl-run`,
      runId: 'fl-run',
    });
    mlflow.runs.splice(
      mlflow.runs.findIndex((x) => x.runId === 'fl-run'),
      1,
      { ...run, status: 'FINISHED', metrics: { test_accuracy: { value: 0.9, step: 4 } } },
    );
    assert.deepEqual(pick((await call('GET', '/jobs/fl-rounds')).json), {
      phase: 'Succeeded',
      ready: 0,
      desired: 2,
      progress: 1,
      link: `${MLFLOW_UI}/#/experiments/9/runs/fl-run`,
      runId: 'fl-run',
    });
    assert.equal((await call('DELETE', '/jobs/fl-rounds')).status, 200);
  });

  test(
    "RBAC: the chart's Role lets the API create every kind a job construct emits, " +
      'its Roles and RoleBindings included, without any Secret permission',
    async () => {
      const role = kube.store.get(`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/training-api`);
      assert.equal(
        role.rules.some((r: any) => r.resources.includes('secrets')),
        false,
        'no Secret permission',
      );
      const gang = await call('POST', '/jobs', {
        job_name: 'gang',
        kind: 'ddp',
        world_size: 2,
        gang_scheduling: true,
        volcano_queue: 'research',
      });
      assert.equal(gang.status, 201, gang.text);
      assert.equal(kube.store.get(`/apis/scheduling.volcano.sh/v1beta1/namespaces/${NS}/podgroups/gang`).spec.queue, 'research');
      const fl = await call('POST', '/jobs', { job_name: 'fl-rbac', kind: 'federated', clients: 2 });
      assert.equal(fl.status, 201, fl.text);
      const jobRole = kube.store.get(`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/fl-rbac-secrets`);
      assert.ok(
        jobRole.rules.some((r: any) => r.resources.includes('secrets') && r.resourceNames?.includes('fl-rbac-token')),
        'the job Role grants what the API does not hold',
      );
      assert.ok(kube.store.get(`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/fl-rbac-secrets`));
      for (const name of ['gang', 'fl-rbac']) assert.equal((await call('DELETE', `/jobs/${name}`)).status, 200);
    },
  );

  test(
    "RBAC: without escalate (or bind) on Roles the Kubernetes API refuses the job's Role (RoleBinding) " +
      'as an escalation; the caller gets 403 KUBERNETES_FORBIDDEN',
    async () => {
      const path = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/training-api`;
      const original = kube.store.get(path);
      const without = (...verbs: string[]) => ({
        ...original,
        rules: original.rules.map((r: any) => ({ ...r, verbs: r.verbs.filter((v: string) => !verbs.includes(v)) })),
      });
      try {
        kube.put(path, without('escalate', 'bind'));
        const r = await call('POST', '/jobs', { job_name: 'fl-esc', kind: 'federated', clients: 2 });
        assert.equal(r.status, 403, r.text);
        assert.equal(r.json.error.code, 'KUBERNETES_FORBIDDEN');
        assert.match(
          r.json.error.message,
          new RegExp(
            /applying Role fl-esc-secrets \(server-side apply: patch roles\.rbac\.authorization\.k8s\.io\): .*is attempting to /.source +
              /grant RBAC permissions not currently held:\n\{APIGroups:\[""\], Resources:\["secrets"\], Verbs:\["create"\]\}/.source,
          ),
        );
        kube.put(path, without('bind'));
        // The same name again: what the refused apply left is the job's own and is applied again.
        const again = await call('POST', '/jobs', { job_name: 'fl-esc', kind: 'federated', clients: 2 });
        assert.equal(again.status, 403, again.text);
        assert.match(
          again.json.error.message,
          /applying RoleBinding fl-esc-secrets .*attempting to grant RBAC permissions not currently held/,
        );
      } finally {
        kube.put(path, original);
      }
      assert.equal((await call('DELETE', '/jobs/fl-esc')).status, 200);
    },
  );

  test(
    'DELETE removes the Secrets generated for the job ' +
      "(owned by its ensure-secrets ServiceAccount, the garbage collector deletes them with it), never a Secret that is not the job's",
    async () => {
      // Made by hand before the job, under the name the job's token would have: not the job's.
      kube.seed(
        [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fl-keep-token' }, type: 'Opaque', data: { token: 'aGFuZC1tYWRl' } }],
        NS,
      );
      const outcomes: Record<string, string> = {};
      for (const name of ['fl-gc', 'fl-keep']) {
        const r = await call('POST', '/jobs', { job_name: name, kind: 'federated', clients: 2, rounds: 1 });
        assert.equal(r.status, 201, r.text);
        // What the job's ensure-secrets Job runs, as its own ServiceAccount, authorized by the Role the API created.
        const secretsJob = kube.store.get(`/apis/batch/v1/namespaces/${NS}/jobs/${name}-secrets`);
        const specs = parseSecretSpecs(
          secretsJob.spec.template.spec.containers[0].env.find((e: any) => e.name === ENSURE_SECRETS_ENV.spec).value,
        );
        Object.assign(
          outcomes,
          await ensureSecrets(new KubeApi({ baseUrl: kubeUrl, token: kube.issueToken(NS, `${name}-secrets`) }), NS, specs),
        );
      }
      assert.deepEqual(outcomes, { 'fl-gc-token': 'created', 'fl-keep-token': 'exists' });
      const secret = (name: string) => kube.store.get(`/api/v1/namespaces/${NS}/secrets/${name}`);
      const account = kube.store.get(`/api/v1/namespaces/${NS}/serviceaccounts/fl-gc-secrets`);
      assert.deepEqual(secret('fl-gc-token').metadata.ownerReferences, [
        { apiVersion: 'v1', kind: 'ServiceAccount', name: 'fl-gc-secrets', uid: account.metadata.uid },
      ]);
      assert.equal(secret('fl-keep-token').metadata.ownerReferences, undefined, 'an existing Secret is never adopted');
      kube.requests.length = 0;
      const deleted = await call('DELETE', '/jobs/fl-gc');
      assert.equal(deleted.status, 200, deleted.text);
      assert.ok(deleted.json.deleted.includes('ServiceAccount/fl-gc-secrets'));
      assert.equal(secret('fl-gc-token'), undefined, 'the garbage collector deleted the job token with its owner');
      assert.equal((await call('DELETE', '/jobs/fl-keep')).status, 200);
      assert.deepEqual(secret('fl-keep-token').data, { token: 'aGFuZC1tYWRl' }, 'the hand-made Secret is still there');
      assert.equal(
        kube.calls().filter((c) => c.path.includes('/secrets') && c.authorization === `Bearer ${kubeToken}`).length,
        0,
        'the API itself never touches a Secret',
      );
    },
  );

  test("a construct's refusals come back together, each under its request field, over HTTP", async () => {
    const r = await call('POST', '/jobs', { job_name: 'sl-bad', kind: 'split', model: 'mlp', cut_layer: 3, mode: 'splitfed', clients: 1 });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(
      r.json.error.fields.map((f: { field: string; value: unknown }) => [f.field, f.value]),
      [
        ['cut_layer', 3],
        ['clients', 1],
      ],
    );
    assert.equal(kube.calls().length, 0);
  });

  test("GET /jobs/{name}/logs reads each pod's log with tailLines, only of the job's pods", async () => {
    const template = kube.store.get(`/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`).spec.template.metadata.labels;
    kube.put(`/api/v1/namespaces/${NS}/pods/mnist-a-0-abcde`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'mnist-a-0-abcde', labels: template },
    });
    kube.podLogs.set('mnist-a-0-abcde', 'line 1\nline 2\nline 3\n');
    // Another app's pod with the same instance label (say, a TrainingApi named mnist-a) is not the job's.
    kube.put(`/api/v1/namespaces/${NS}/pods/mnist-a-api`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'mnist-a-api', labels: { 'app.kubernetes.io/instance': 'mnist-a', 'app.kubernetes.io/name': 'training-api' } },
    });
    kube.podLogs.set('mnist-a-api', 'not a trainer\n');
    const r = await call('GET', '/jobs/mnist-a/logs?tail=2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, '==> pod/mnist-a-0-abcde <==\nline 2\nline 3\n');
    const logCall = kube.calls().find((c) => c.path.endsWith('/log'));
    assert.equal(logCall?.path, `/api/v1/namespaces/${NS}/pods/mnist-a-0-abcde/log`);
    assert.equal(logCall?.query.get('tailLines'), '2');
    assert.equal(
      kube
        .calls()
        .find((c) => c.path === `/api/v1/namespaces/${NS}/pods`)
        ?.query.get('labelSelector'),
      'app.kubernetes.io/instance=mnist-a,app.kubernetes.io/name in (ddp-cluster,federated-fleet,split-learning)',
    );
    kube.store.delete(`/api/v1/namespaces/${NS}/pods/mnist-a-api`);
    const bad = await call('GET', '/jobs/mnist-a/logs?tail=zero');
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.json.error.fields.map((f: { field: string }) => f.field),
      ['tail'],
    );
  });

  /** The `tensorfleet` CLI against this API. */
  const cli = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const env = { ...process.env, [API_CLIENT_ENV.url]: base, [API_CLIENT_ENV.token]: TOKEN };
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  };

  test(
    'the CLI sends the construct options: booleans as bare flags, ' +
      'label maps as k=v, objects and arrays as JSON; a nested problem names its flag',
    async () => {
      const resources = '{"cpu_request_millis":500,"cpu_limit_millis":1000,"memory_request_mib":512,"memory_limit_mib":1024}';
      const dry = await cli(
        'submit',
        'ddp',
        '--job-name',
        'cli-ddp',
        '--world-size',
        '2',
        '--gang-scheduling',
        '--volcano-queue',
        'research',
        '--node-selector',
        'kubernetes.io/arch=amd64,pool=gpu',
        '--tolerations',
        '[{"key":"gpu","operator":"Exists","effect":"NoSchedule"}]',
        '--resources',
        resources,
        '--active-deadline-seconds',
        '3600',
        '--dry-run',
      );
      assert.equal(dry.code, 0, dry.stderr);
      const job = parseAllDocuments(dry.stdout)
        .map((d) => d.toJSON())
        .find((o) => o.kind === 'Job' && o.metadata.name === 'cli-ddp');
      assert.equal(job.spec.activeDeadlineSeconds, 3600);
      assert.equal(job.spec.template.spec.schedulerName, 'volcano');
      // The node selector is written as a required node affinity (cdk8s-plus's form): one term, one In per label.
      const terms = job.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
      assert.deepEqual(
        terms.flatMap((t: { matchExpressions: unknown[] }) => t.matchExpressions),
        [
          { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
          { key: 'pool', operator: 'In', values: ['gpu'] },
        ],
      );
      assert.deepEqual(job.spec.template.spec.tolerations, [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
      assert.deepEqual(job.spec.template.spec.containers[0].resources, {
        requests: { cpu: '500m', memory: '512Mi' },
        limits: { cpu: '1000m', memory: '1024Mi' },
      });
      const bad = await cli(
        'submit',
        'ddp',
        '--job-name',
        'cli-bad',
        '--resources',
        resources.replace('"cpu_limit_millis":1000', '"cpu_limit_millis":100'),
        '--tolerations',
        'gpu',
        '--spread-over-nodes',
      );
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--resources\.cpu_limit_millis 100: must be at least cpu_request_millis \(500\)/);
      assert.match(bad.stderr, /--tolerations "gpu": must be an array of at most 32 tolerations/);
    },
  );

  test('the CLI submits, lists, reads logs and cancels through the API', async () => {
    const submitted = await cli(
      'submit',
      'federated',
      '--job-name',
      'fl-cli',
      '--clients',
      '3',
      '--rounds',
      '2',
      '--strategy',
      'fedprox',
      '--proximal-mu',
      '0.01',
    );
    assert.equal(submitted.code, 0, submitted.stderr);
    assert.match(submitted.stdout, /^submitted federated job fl-cli: \d+ objects applied/);
    const sts = kube.store.get(`/apis/apps/v1/namespaces/${NS}/statefulsets/fl-cli-client`);
    assert.equal(sts.spec.replicas, 3);
    const twice = await cli('submit', 'federated', '--job-name', 'fl-cli');
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /409 ALREADY_EXISTS: a job named "fl-cli" exists/);
    const bad = await cli('submit', 'federated', '--job-name', 'fl-bad', '--clients', 'many', '--cut-layer', '2');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /400 INVALID_REQUEST/);
    assert.match(bad.stderr, /--clients "many": must be an integer from 1 to 1000/);
    assert.match(bad.stderr, /--cut-layer 2: must be absent for kind federated/);
    const jobs = await cli('jobs');
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, /^NAME +KIND +PHASE/);
    assert.match(jobs.stdout, /\nfl-cli +federated +Pending +0\/3/);
    kube.put(`/api/v1/namespaces/${NS}/pods/fl-cli-client-0`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'fl-cli-client-0', labels: sts.spec.template.metadata.labels },
    });
    kube.podLogs.set('fl-cli-client-0', 'joined\nround 1 fit\n');
    const logs = await cli('logs', 'fl-cli', '--tail', '1');
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, '==> pod/fl-cli-client-0 <==\nround 1 fit\n');
    kube.store.delete(`/api/v1/namespaces/${NS}/pods/fl-cli-client-0`);
    const cancelled = await cli('cancel', 'fl-cli');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const deletes = kube.calls().filter((c) => c.method === 'DELETE');
    assert.ok(deletes.some((d) => d.path === `/apis/apps/v1/namespaces/${NS}/statefulsets/fl-cli-client`));
    assert.ok(deletes.every((d) => d.query.get('propagationPolicy') === 'Background'));
    assert.equal([...kube.store.keys()].filter((k) => k.includes('fl-cli')).length, 0, 'every object of the job is gone');
    const again = await cli('cancel', 'fl-cli');
    assert.equal(again.code, 2);
    assert.match(again.stderr, /404 NOT_FOUND: no job named "fl-cli"/);
  });
});
