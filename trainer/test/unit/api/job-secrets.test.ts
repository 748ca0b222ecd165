/**
 * The Secrets generated for a job: ensureSecrets run as the job's ensure-secrets
 * ServiceAccount against the recording stand-in of the Kubernetes API (no API server
 * runs here), which authorizes it with the Role the job's construct emits and deletes
 * dependents as the garbage collector does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildJobObjects } from '../../../src/api/objects';
import { retainsSecret } from '../../../src/contract';
import { KubeApi, serviceAccountOfToken } from '../../../src/kube/api-client';
import { ensureSecrets } from '../../../src/kube/ensure-secrets';
import { KubeApiRecorder } from '../../support/kube-api-recorder';

const NS = 'jobs';
const jwt = (claims: unknown): string => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

describe("a job's generated Secrets against the Kubernetes API contract (recording server; no API server runs here)", () => {
  const kube = new KubeApiRecorder();
  let url: string;
  const secretPath = (name: string): string => `/api/v1/namespaces/${NS}/secrets/${name}`;
  /** The job's ensure-secrets ServiceAccount, Role and RoleBinding, as the API applies them. */
  const seedJob = (job: string): void =>
    kube.seed(
      buildJobObjects({ job_name: job, kind: 'federated' }).filter(
        (o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind) && o.metadata.name === `${job}-secrets`,
      ),
      NS,
    );
  const asJob = (job: string): KubeApi => new KubeApi({ baseUrl: url, token: kube.issueToken(NS, `${job}-secrets`) });

  before(async () => {
    url = await kube.start();
  });
  after(() => kube.stop());

  test('the bearer token is owned by the ServiceAccount whose token ran ensure-secrets, and goes when it is deleted', async () => {
    seedJob('owned');
    const account = kube.store.get(`/api/v1/namespaces/${NS}/serviceaccounts/owned-secrets`);
    const lines: string[] = [];
    assert.deepEqual(await ensureSecrets(asJob('owned'), NS, [{ name: 'owned-token', keys: ['token'] }], (l) => lines.push(l)), {
      'owned-token': 'created',
    });
    const post = kube.requests.find((r) => r.method === 'POST');
    assert.equal(post?.path, `/api/v1/namespaces/${NS}/secrets`);
    assert.equal(post?.query.get('fieldManager'), 'tensorfleet');
    assert.deepEqual(kube.store.get(secretPath('owned-token')).metadata.ownerReferences, [
      { apiVersion: 'v1', kind: 'ServiceAccount', name: 'owned-secrets', uid: account.metadata.uid },
    ]);
    assert.match(lines.join('\n'), /created with key\(s\) token, owned by ServiceAccount owned-secrets \(deleted with it\)/);
    const admin = new KubeApi({ baseUrl: url, token: kube.adminToken });
    assert.equal(
      (await admin.request('DELETE', `/api/v1/namespaces/${NS}/serviceaccounts/owned-secrets?propagationPolicy=Background`)).status,
      200,
    );
    assert.equal(kube.store.get(secretPath('owned-token')), undefined);
  });

  test('passwords and S3 keys are kept (they guard data that outlives the pods); retain says otherwise either way', async () => {
    seedJob('kept');
    const api = asJob('kept');
    assert.deepEqual(await ensureSecrets(api, NS, [{ name: 'kept-token', keys: ['token'], retain: true }]), { 'kept-token': 'created' });
    assert.equal(kube.store.get(secretPath('kept-token')).metadata.ownerReferences, undefined);
    assert.equal(retainsSecret({ name: 'db', keys: ['password'] }), true);
    assert.equal(retainsSecret({ name: 's3', keys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] }), true);
    assert.equal(retainsSecret({ name: 't', keys: ['token'] }), false);
    assert.equal(retainsSecret({ name: 'db', keys: ['password'], retain: false }), false);
  });

  test('an existing Secret is left as it is and never adopted', async () => {
    seedJob('mine');
    kube.seed([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mine-token' }, type: 'Opaque', data: { token: 'aGFuZA==' } }], NS);
    assert.deepEqual(await ensureSecrets(asJob('mine'), NS, [{ name: 'mine-token', keys: ['token'] }]), { 'mine-token': 'exists' });
    assert.equal(kube.store.get(secretPath('mine-token')).metadata.ownerReferences, undefined);
    assert.equal(kube.requests.filter((r) => r.method === 'POST' && r.body?.metadata?.name === 'mine-token').length, 0);
  });

  test(
    'a Secret owned by an earlier ServiceAccount of the same name (a job submitted again) ' +
      'is waited for until the garbage collector removes it',
    async () => {
      seedJob('again');
      const stale = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'again-token',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: 'again-secrets', uid: 'uid-gone' }],
        },
        data: { token: 'b2xk' },
      };
      kube.seed([stale], NS);
      setTimeout(() => kube.store.delete(secretPath('again-token')), 150);
      const lines: string[] = [];
      assert.deepEqual(
        await ensureSecrets(asJob('again'), NS, [{ name: 'again-token', keys: ['token'] }], (l) => lines.push(l), {
          pollMs: 20,
          staleWaitMs: 5000,
        }),
        { 'again-token': 'created' },
      );
      assert.match(lines[0], /owned by an earlier ServiceAccount again-secrets; waiting for the garbage collector/);
      assert.notEqual(kube.store.get(secretPath('again-token')).data.token, 'b2xk');
      kube.seed([{ ...stale, metadata: { ...stale.metadata, name: 'again-token' } }], NS);
      await assert.rejects(
        ensureSecrets(asJob('again'), NS, [{ name: 'again-token', keys: ['token'] }], undefined, { pollMs: 20, staleWaitMs: 100 }),
        /Secret jobs\/again-token is still owned by an earlier ServiceAccount again-secrets after 100ms/,
      );
    },
  );

  test(
    'where an owner reference needs delete on the Secret (OwnerReferencesPermissionEnforcement), ' + 'it is created without one',
    async () => {
      seedJob('plain');
      kube.failNext({
        method: 'POST',
        path: /\/secrets$/,
        code: 403,
        message: `secrets "plain-token" is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>`,
      });
      const lines: string[] = [];
      assert.deepEqual(await ensureSecrets(asJob('plain'), NS, [{ name: 'plain-token', keys: ['token'] }], (l) => lines.push(l)), {
        'plain-token': 'created',
      });
      assert.equal(kube.store.get(secretPath('plain-token')).metadata.ownerReferences, undefined);
      assert.match(lines.join('\n'), /created without an owner, it is kept after the job/);
    },
  );

  test("the job's Role lets it read only its own Secrets: another name is 403", async () => {
    seedJob('nosy');
    await assert.rejects(
      ensureSecrets(asJob('nosy'), NS, [{ name: 'mlflow-postgres', keys: ['password'] }]),
      new RegExp(
        /GET Secret jobs\/mlflow-postgres answered 403: secrets "mlflow-postgres" is forbidden: /.source +
          /User "system:serviceaccount:jobs:nosy-secrets" cannot get resource "secrets"/.source,
      ),
    );
  });
});

test('the service account of a token: bound tokens, legacy tokens, anything else', () => {
  assert.deepEqual(serviceAccountOfToken(jwt({ 'kubernetes.io': { namespace: 'ns', serviceaccount: { name: 'sa', uid: 'u1' } } })), {
    name: 'sa',
    uid: 'u1',
    namespace: 'ns',
  });
  assert.deepEqual(
    serviceAccountOfToken(
      jwt({
        'kubernetes.io/serviceaccount/namespace': 'ns',
        'kubernetes.io/serviceaccount/service-account.name': 'sa',
        'kubernetes.io/serviceaccount/service-account.uid': 'u2',
      }),
    ),
    { name: 'sa', uid: 'u2', namespace: 'ns' },
  );
  assert.equal(serviceAccountOfToken('test-token'), undefined);
  assert.equal(serviceAccountOfToken(jwt({ sub: 'system:admin' })), undefined);
  assert.equal(serviceAccountOfToken('a.!!!.c'), undefined);
});
