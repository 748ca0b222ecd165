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
import { parseAllDocuments } from 'yaml';
import { API_CLIENT_ENV, API_FIELD_MANAGER, ApiErrorBody, JobStatus } from '../../src/contract';
import { KubeJobs } from '../../src/api/kube';
import { buildJobObjects } from '../../src/api/objects';
import { createApiServer } from '../../src/api/server';
import { CLI_JS, REPO_ROOT } from '../../../tools/test-support/paths';
import { KubeApiRecorder } from '../support/kube-api-recorder';

const NS = 'training';
const TOKEN = 'api-test-token';
const KUBE_TOKEN = 'service-account-token';

function kubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'recorder', server, skipTLSVerify: true }],
    users: [{ name: 'api', token: KUBE_TOKEN }],
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
    const kubeUrl = await kube.start();
    api = createApiServer({
      jobs: new KubeJobs(kubeConfig(kubeUrl), { namespace: NS, mlflowLink: async (job) => `http://mlflow.example/#/experiments/by-name/${job}` }),
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
  });
  afterEach(() => {
    kube.requests.length = 0;
  });

  const ddp = { job_name: 'mnist-a', kind: 'ddp', epochs: 2, batch_size: 64, dataset_size: 20000, world_size: 2, dataset_type: 'mnist', dataset_uri: 'https://data.example/mnist' };

  test('POST /jobs applies every object with server-side apply: PATCH, fieldManager, force, apply-patch content type, service-account token', async () => {
    const r = await call('POST', '/jobs', ddp);
    assert.equal(r.status, 201, r.text);
    const expected = buildJobObjects(ddp as never, { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' });
    assert.deepEqual(r.json, { name: 'mnist-a', kind: 'ddp', objects: expected.map((o) => `${o.kind}/${o.metadata.name}`) });
    const patches = kube.calls().filter((c) => c.method === 'PATCH');
    assert.deepEqual(
      patches.map((p) => p.path),
      [`/api/v1/namespaces/${NS}/services/mnist-a-ring`, `/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`, `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/mnist-a`],
    );
    for (const p of patches) {
      assert.equal(p.contentType, 'application/apply-patch+yaml');
      assert.equal(p.query.get('fieldManager'), API_FIELD_MANAGER);
      assert.equal(p.query.get('force'), 'true');
      assert.equal(p.authorization, `Bearer ${KUBE_TOKEN}`);
      assert.equal(p.body.metadata.namespace, NS);
    }
    // What was applied is the construct's object, namespaced.
    const job = patches[1].body;
    assert.deepEqual({ ...job, metadata: { ...job.metadata, namespace: undefined } }, { ...expected[1], metadata: { ...expected[1].metadata, namespace: undefined } });
    assert.equal(job.spec.template.spec.containers[0].image, 'ghcr.io/tensorfleet/trainer:9.9.9');
  });

  test('POST /jobs with an existing name answers 409 ALREADY_EXISTS and applies nothing', async () => {
    const r = await call('POST', '/jobs', ddp);
    assert.equal(r.status, 409);
    assert.equal((r.json as ApiErrorBody).error.code, 'ALREADY_EXISTS');
    assert.equal(kube.calls().filter((c) => c.method === 'PATCH').length, 0);
  });

  test('the Kubernetes API\'s own 409 Conflict (an apply conflict) becomes 409 ALREADY_EXISTS with its message', async () => {
    kube.failNext({
      method: 'PATCH',
      path: /\/jobs\/conflicted$/,
      code: 409,
      message: 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using batch/v1: .spec.parallelism',
    });
    const r = await call('POST', '/jobs', { job_name: 'conflicted', kind: 'ddp' });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'ALREADY_EXISTS');
    assert.match(r.json.error.message, /applying Job conflicted \(server-side apply: patch jobs\.batch\): the Kubernetes API answered 409 Conflict: Apply failed with 1 conflict/);
  });

  test('the Kubernetes API\'s 403 Forbidden becomes 403 KUBERNETES_FORBIDDEN naming the object', async () => {
    kube.failNext({
      method: 'PATCH',
      path: /\/jobs\/fl-forbidden$|\/deployments\/fl-forbidden-server$/,
      code: 403,
      message: 'deployments.apps "fl-forbidden-server" is forbidden: User "system:serviceaccount:training:training-api" cannot patch resource "deployments" in API group "apps" in the namespace "training"',
    });
    const r = await call('POST', '/jobs', { job_name: 'fl-forbidden', kind: 'federated', clients: 2, rounds: 1 });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, 'KUBERNETES_FORBIDDEN');
    assert.match(r.json.error.message, /applying Deployment fl-forbidden-server \(server-side apply: patch deployments\.apps\): .*cannot patch resource "deployments"/);
  });

  test('the Kubernetes API\'s 422 Invalid becomes 422 KUBERNETES_INVALID with its causes', async () => {
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
    assert.match(r.json.error.message, /StatefulSet sl-invalid-client \(server-side apply: patch statefulsets\.apps\): .*spec\.replicas: Invalid value: -1/);
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
    assert.deepEqual(docs, JSON.parse(JSON.stringify(buildJobObjects({ job_name: 'dry', kind: 'split', clients: 2, cut_layer: 2 }, { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' }))));
    assert.equal(kube.calls().length, 0);
  });

  test('validation: 400 lists every problem field by field; a construct\'s refusal names the request field', async () => {
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

  test('auth: no token or a wrong token is refused with 401 before any Kubernetes call; health and the OpenAPI document are open', async () => {
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
  });

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

  test('GET /jobs/{name} and GET /jobs read the documented workload status: phase, ready, progress, MLflow link', async () => {
    const jobPath = `/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`;
    const job = kube.store.get(jobPath);
    kube.put(jobPath, { ...job, status: { active: 1, ready: 1, succeeded: 1 } });
    const one = await call('GET', '/jobs/mnist-a');
    assert.equal(one.status, 200, one.text);
    const status = one.json as JobStatus;
    assert.deepEqual(
      { name: status.name, kind: status.kind, phase: status.phase, ready: status.ready, desired: status.desired, progress: status.progress, link: status.mlflowRunUrl },
      { name: 'mnist-a', kind: 'ddp', phase: 'Running', ready: 1, desired: 2, progress: 0.5, link: 'http://mlflow.example/#/experiments/by-name/mnist-a' },
    );
    kube.put(jobPath, { ...job, status: { succeeded: 2, conditions: [{ type: 'Complete', status: 'True' }] } });
    const list = await call('GET', '/jobs');
    const listed = (list.json.jobs as JobStatus[]).find((j) => j.name === 'mnist-a');
    assert.equal(listed?.phase, 'Succeeded');
    assert.equal(listed?.progress, 1);
    const selectors = kube.calls().filter((c) => c.method === 'GET' && c.path.endsWith('/jobs')).map((c) => c.query.get('labelSelector'));
    assert.ok(selectors.includes('tensorfleet.io/role=ddp'), `label selectors: ${selectors.join(' | ')}`);
    assert.equal((await call('GET', '/jobs/nope')).status, 404);
  });

  test('GET /jobs/{name}/logs reads each pod\'s log with tailLines, only of the job\'s pods', async () => {
    const template = kube.store.get(`/apis/batch/v1/namespaces/${NS}/jobs/mnist-a`).spec.template.metadata.labels;
    kube.put(`/api/v1/namespaces/${NS}/pods/mnist-a-0-abcde`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mnist-a-0-abcde', labels: template } });
    kube.podLogs.set('mnist-a-0-abcde', 'line 1\nline 2\nline 3\n');
    // Another app's pod with the same instance label (say, a TrainingApi named mnist-a) is not the job's.
    kube.put(`/api/v1/namespaces/${NS}/pods/mnist-a-api`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mnist-a-api', labels: { 'app.kubernetes.io/instance': 'mnist-a', 'app.kubernetes.io/name': 'training-api' } } });
    kube.podLogs.set('mnist-a-api', 'not a trainer\n');
    const r = await call('GET', '/jobs/mnist-a/logs?tail=2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, '==> pod/mnist-a-0-abcde <==\nline 2\nline 3\n');
    const logCall = kube.calls().find((c) => c.path.endsWith('/log'));
    assert.equal(logCall?.path, `/api/v1/namespaces/${NS}/pods/mnist-a-0-abcde/log`);
    assert.equal(logCall?.query.get('tailLines'), '2');
    assert.equal(
      kube.calls().find((c) => c.path === `/api/v1/namespaces/${NS}/pods`)?.query.get('labelSelector'),
      'app.kubernetes.io/instance=mnist-a,app.kubernetes.io/name in (ddp-cluster,federated-fleet,split-learning)',
    );
    kube.store.delete(`/api/v1/namespaces/${NS}/pods/mnist-a-api`);
    const bad = await call('GET', '/jobs/mnist-a/logs?tail=zero');
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json.error.fields.map((f: { field: string }) => f.field), ['tail']);
  });

  test('the CLI submits, lists, reads logs and cancels through the API', async () => {
    const env = { ...process.env, [API_CLIENT_ENV.url]: base, [API_CLIENT_ENV.token]: TOKEN };
    const cli = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, env });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const submitted = await cli('submit', 'federated', '--job-name', 'fl-cli', '--clients', '3', '--rounds', '2', '--strategy', 'fedprox', '--proximal-mu', '0.01');
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
    kube.put(`/api/v1/namespaces/${NS}/pods/fl-cli-client-0`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'fl-cli-client-0', labels: sts.spec.template.metadata.labels } });
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
