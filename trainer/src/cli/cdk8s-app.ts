/**
 * The cdk8s app `synth` and `run <chart>` work on: the user's app around the working directory (with
 * Tensorfleet installed into it), else the repository checkout this CLI runs from.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from './args';

/** The nearest folder holding a cdk8s.yaml, from `start` up. */
function cdk8sAppAbove(start: string): string | undefined {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'cdk8s.yaml'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The root of the repository checkout this code runs from: the nearest package.json above this file, when a
 * cdk8s.yaml is beside it. Undefined for an installed package (node_modules/tensorfleet has no cdk8s.yaml), even
 * inside a user's app: that app is not a checkout.
 */
export function checkoutRoot(): string | undefined {
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return existsSync(join(dir, 'cdk8s.yaml')) ? dir : undefined;
  }
  return undefined;
}

/** The app's folder: the nearest cdk8s.yaml above the working directory, else the checkout this CLI runs from. */
export function appRoot(cwd: string = process.cwd()): string {
  const root = cdk8sAppAbove(cwd) ?? checkoutRoot();
  if (root === undefined) {
    throw new UsageError(`no cdk8s.yaml in ${cwd} or above: run this in your cdk8s app's folder (or a Tensorfleet checkout)`);
  }
  return root;
}

/** The cdk8s CLI to synthesize `app` with: the app's own, else one beside this CLI (a checkout's devDependency). */
export function cdk8sCli(app: string): string {
  const own = join(app, 'node_modules', '.bin', 'cdk8s');
  if (existsSync(own)) return own;
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const beside = join(dir, 'node_modules', '.bin', 'cdk8s');
    if (existsSync(beside)) return beside;
  }
  throw new UsageError(
    `synth: no cdk8s CLI in ${join(app, 'node_modules', '.bin')}: add it to your app (npm install --save-dev cdk8s-cli)`,
  );
}
