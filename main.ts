/**
 * The Tensorfleet app: every chart synthesized into dist/ (what `kubectl apply`
 * and Argo CD apply), and the Argo CD Application into dist/argocd/ (applied
 * once, by hand, into the Argo CD namespace).
 */
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { GitOpsApplication, MlflowStack } from './charts';

const outdir = process.env.CDK8S_OUTDIR ?? 'dist';
/** The repository Argo CD syncs: point it at your fork. */
const REPO_URL = 'https://github.com/tensorfleet/tensorfleet.git';

export function buildApp(dir: string): App {
  const app = new App({ outdir: dir });
  new MlflowStack(new Chart(app, 'mlflow', { disableResourceNameHashes: true }), 'Mlflow');
  return app;
}

export function buildGitOpsApp(dir: string): App {
  const app = new App({ outdir: join(dir, 'argocd') });
  new GitOpsApplication(new Chart(app, 'application', { disableResourceNameHashes: true }), 'Tensorfleet', {
    repoUrl: REPO_URL,
    path: 'dist',
    targetRevision: 'main',
    destinationNamespace: 'tensorfleet',
  });
  return app;
}

if (require.main === module) {
  buildApp(outdir).synth();
  buildGitOpsApp(outdir).synth();
}
