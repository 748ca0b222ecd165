/** Which cdk8s app `synth` and `run <chart>` work on, and which cdk8s CLI synthesizes it. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { REPO_ROOT } from '../../../../tools/test-support/paths';
import { appRoot, cdk8sCli, checkoutRoot } from '../../../src/cli/cdk8s-app';

describe('the cdk8s app of synth and run', () => {
  const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'tensorfleet-app-')));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test("is the nearest cdk8s.yaml above the working directory: a user's app, not this checkout", () => {
    const app = join(scratch, 'my-app');
    mkdirSync(join(app, 'src', 'deep'), { recursive: true });
    writeFileSync(join(app, 'cdk8s.yaml'), 'app: node main.js\n');
    assert.equal(appRoot(app), app);
    assert.equal(appRoot(join(app, 'src', 'deep')), app);
  });

  test('falls back to the checkout this CLI runs from when no cdk8s.yaml is above the working directory', () => {
    const elsewhere = join(scratch, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    assert.equal(appRoot(elsewhere), REPO_ROOT);
  });

  test('the checkout is the package this code runs from; an installed package inside an app is none', () => {
    assert.equal(checkoutRoot(), REPO_ROOT);
    // The compiled module as npm lays out an installed package: node_modules/tensorfleet inside a user's cdk8s app.
    const app = join(scratch, 'installed-app');
    const cli = join(app, 'node_modules', 'tensorfleet', 'build', 'trainer', 'src', 'cli');
    mkdirSync(cli, { recursive: true });
    writeFileSync(join(app, 'cdk8s.yaml'), 'app: node main.js\n');
    writeFileSync(join(app, 'package.json'), '{"name":"my-app"}\n');
    writeFileSync(join(app, 'node_modules', 'tensorfleet', 'package.json'), '{"name":"tensorfleet"}\n');
    for (const file of ['cdk8s-app.js', 'args.js']) copyFileSync(join(__dirname, '..', '..', '..', 'src', 'cli', file), join(cli, file));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const installed = require(join(cli, 'cdk8s-app.js')) as { checkoutRoot(): string | undefined };
    assert.equal(installed.checkoutRoot(), undefined);
  });

  test("synthesizes with the app's own cdk8s CLI, else the one beside this CLI", () => {
    const app = join(scratch, 'with-cli');
    mkdirSync(join(app, 'node_modules', '.bin'), { recursive: true });
    writeFileSync(join(app, 'node_modules', '.bin', 'cdk8s'), '#!/bin/sh\n');
    assert.equal(cdk8sCli(app), join(app, 'node_modules', '.bin', 'cdk8s'));
    assert.equal(cdk8sCli(join(scratch, 'elsewhere')), join(REPO_ROOT, 'node_modules', '.bin', 'cdk8s'));
  });
});
