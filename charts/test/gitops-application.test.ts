import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GitOpsApplication } from '../gitops-application';
import { synth, testChart } from './helpers';

test('GitOpsApplication syncs the repository path into the destination namespace', () => {
  const chart = testChart();
  new GitOpsApplication(chart, 'Tensorfleet', {
    repoUrl: 'https://git.example.com/ml/platform.git',
    path: 'dist',
    targetRevision: 'v1.2.0',
    destinationNamespace: 'ml',
  });
  const [app] = synth(chart);
  assert.equal(app.apiVersion, 'argoproj.io/v1alpha1');
  assert.equal(app.kind, 'Application');
  assert.equal(app.metadata.name, 'tensorfleet');
  assert.equal(app.metadata.namespace, 'argocd');
  assert.deepEqual(app.spec.source, {
    repoURL: 'https://git.example.com/ml/platform.git',
    path: 'dist',
    targetRevision: 'v1.2.0',
    directory: { recurse: false },
  });
  assert.equal(app.spec.destination.namespace, 'ml');
  assert.deepEqual(app.spec.syncPolicy.automated, { prune: true, selfHeal: true });
  assert.ok(app.spec.syncPolicy.syncOptions.includes('CreateNamespace=true'));
  assert.ok(app.spec.syncPolicy.syncOptions.includes('ApplyOutOfSyncOnly=true'), 'unchanged training Jobs are not recreated on every sync');
});

test('GitOpsApplication without automated sync leaves syncing to people', () => {
  const chart = testChart();
  new GitOpsApplication(chart, 'Manual', { repoUrl: 'git@github.com:o/r.git', automated: false });
  assert.equal(synth(chart)[0].spec.syncPolicy.automated, undefined);
});

test('fails if the repository URL or path is malformed', () => {
  assert.throws(() => new GitOpsApplication(testChart(), 'App', { repoUrl: 'github.com/o/r' }), {
    message: `GitOpsApplication 'App': 'repoUrl' must be a Git URL starting with https://, ssh:// or git@, got "github.com/o/r"`,
  });
  assert.throws(() => new GitOpsApplication(testChart(), 'App', { repoUrl: 'https://g/r.git', path: '../etc' }), {
    message: `GitOpsApplication 'App': 'path' must be a relative path inside the repository, without "..", got "../etc"`,
  });
});
