/**
 * The benches' default data: ../shared/data beside a repository checkout. Only a checkout has one; an
 * installed package (no cdk8s.yaml at its root, e.g. node_modules/tensorfleet) never looks beside itself.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** `parts` under ../shared/data beside the checkout this runs from (build/trainer/src/bench), when it exists. */
export function checkoutDataPath(...parts: string[]): string | undefined {
  const root = resolve(__dirname, '..', '..', '..', '..');
  if (!existsSync(join(root, 'cdk8s.yaml'))) return undefined;
  const candidate = join(root, '..', 'shared', 'data', ...parts);
  return existsSync(candidate) ? candidate : undefined;
}
