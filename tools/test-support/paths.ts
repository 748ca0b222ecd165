import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

function findRepoRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'cdk8s.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no repository root (package.json + cdk8s.yaml) above ${start}`);
    dir = parent;
  }
  return dir;
}

/** The repository root (works from sources and from build/). */
export const REPO_ROOT = findRepoRoot(__dirname);
/** ../shared beside the repository, or TENSORFLEET_SHARED_DIR. */
export const SHARED_DIR = resolve(process.env.TENSORFLEET_SHARED_DIR ?? join(REPO_ROOT, '..', 'shared'));
/** Compiled JavaScript tree. */
export const BUILD_DIR = join(REPO_ROOT, 'build');
/** Entry point of the compiled trainer / CLI. */
export const CLI_JS = join(BUILD_DIR, 'trainer', 'src', 'cli', 'main.js');
