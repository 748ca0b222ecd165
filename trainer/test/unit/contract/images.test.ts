import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, TRAINER_IMAGE } from '../../../src/contract';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';

test("the trainer Dockerfile's user and entrypoint are the contract's", () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'trainer', 'Dockerfile'), 'utf8');
  assert.match(dockerfile, new RegExp(`^USER ${TRAINER_IMAGE.uid}:${TRAINER_IMAGE.gid}$`, 'm'));
  assert.match(dockerfile, new RegExp(`^WORKDIR ${TRAINER_IMAGE.workdir}$`, 'm'));
  const entry = CLI_JS.replace(REPO_ROOT, TRAINER_IMAGE.workdir);
  assert.match(dockerfile, new RegExp(`^ENTRYPOINT \\["node", "${entry}"\\]$`, 'm'));
  assert.match(dockerfile, new RegExp(`-t ${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag} `));
});

test('the MLflow image runs as the non-root user the MlflowStack pod declares', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'images', 'mlflow', 'Dockerfile'), 'utf8');
  assert.match(dockerfile, new RegExp(`^USER ${TRAINER_IMAGE.uid}:${TRAINER_IMAGE.gid}$`, 'm'));
  assert.match(dockerfile, /^FROM ghcr\.io\/mlflow\/mlflow:v2\.10\.2$/m);
});

test('the image installs the lockfile with the native backend, which package.json keeps optional and allowed to build', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'trainer', 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  assert.match(dockerfile, /^COPY package\.json package-lock\.json \.\/$/m);
  assert.match(dockerfile, /npm ci /);
  assert.match(dockerfile, /node -e "require\('@tensorflow\/tfjs-node'\)"/);
  assert.equal(pkg.optionalDependencies['@tensorflow/tfjs-node'], pkg.dependencies['@tensorflow/tfjs']);
  assert.equal(pkg.allowScripts['@tensorflow/tfjs-node'], true);
  assert.equal(pkg.bin.tensorfleet, 'bin/tensorfleet');
  // The Dockerfile copies every source folder the build compiles.
  const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8'));
  for (const pattern of tsconfig.include as string[]) {
    const top = pattern.split('/')[0];
    assert.match(dockerfile, new RegExp(`^COPY .*\\b${top.replace('.', '\\.')}\\b`, 'm'), `Dockerfile copies ${top}`);
  }
});

test('trainer/README.md documents every error code', () => {
  const readme = readFileSync(join(REPO_ROOT, 'trainer', 'README.md'), 'utf8');
  const missing = ERROR_CODES.filter((code) => !readme.includes(`| \`${code}\` |`));
  assert.deepEqual(missing, []);
});
