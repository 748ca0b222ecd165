/**
 * The benches' default data: ../shared/data beside a repository checkout. Only a checkout has one; an
 * installed package (no cdk8s.yaml at its root, e.g. node_modules/tensorfleet) never looks beside itself.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkoutRoot } from '../cli/cdk8s-app';

/** `parts` under ../shared/data beside the checkout this runs from, when it exists. */
export function checkoutDataPath(...parts: string[]): string | undefined {
  const root = checkoutRoot();
  if (root === undefined) return undefined;
  const candidate = join(root, '..', 'shared', 'data', ...parts);
  return existsSync(candidate) ? candidate : undefined;
}

/** ../shared/data beside the checkout (a data folder with one folder per dataset), when it holds `dataset`. */
export function checkoutDataDir(dataset: string): string | undefined {
  const folder = checkoutDataPath(dataset);
  return folder === undefined ? undefined : join(folder, '..');
}
