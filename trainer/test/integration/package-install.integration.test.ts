/**
 * Tensorfleet as a user's own cdk8s app installs it. `npm pack` runs on a copy of this checkout, so its
 * `prepack` build writes into the copy, never into this checkout's build/ (which the other tests read while
 * this one runs). The tarball is unpacked into a fresh app's node_modules as npm lays a package out, and
 * the dependencies it declares are symlinked from this checkout's node_modules: no network, no npm cache
 * needed, and nothing is ever written into those node_modules. An undeclared dependency fails here, as the
 * app's node_modules holds only what the package and the app declare. The app's main.ts is then
 * type-checked (strict) against the installed .d.ts, synthesized by the installed bin, and every object it
 * wrote is validated.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI_JS, REPO_ROOT } from '../../../tools/test-support/paths';
import { formatFinding, formatSummary, summarize } from '../../../tools/validate';
import { manifestFiles, validateDist } from '../../../tools/validate-dist';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run a program to its end (at most `timeoutMs`); never throws, the caller asserts on the result. */
function run(file: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<Ran> {
  const env = { ...process.env, CDK8S_CHECK_UPGRADE: 'false', npm_config_update_notifier: 'false', npm_config_fund: 'false' };
  const start = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), seconds: (performance.now() - start) / 1000 });
    });
  });
}

function explain(ran: Ran): string {
  return `exit ${ran.code}\n--- stdout\n${ran.stdout.slice(-4000)}\n--- stderr\n${ran.stderr.slice(-4000)}`;
}

const CHECKOUT_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const TSC = join(CHECKOUT_MODULES, 'typescript', 'bin', 'tsc');

/** What the fresh app's own package.json declares, besides tensorfleet. */
const APP_DEPENDENCIES = ['cdk8s', 'constructs'];
const APP_DEV_DEPENDENCIES = ['cdk8s-cli', 'typescript', '@types/node'];

const APP_MAIN_TS = `import { App, Chart } from 'cdk8s';
import { DdpCluster, FederatedFleet, MlflowStack, SplitLearning, TrainingApi } from 'tensorfleet';
import { ENV } from 'tensorfleet/contract';

const app = new App();
const chart = (id: string): Chart => new Chart(app, id, { disableResourceNameHashes: true });
const tracking = new MlflowStack(chart('tracking'), 'Mlflow');
new DdpCluster(chart('my-ddp'), 'MyDdp', { worldSize: 2, model: 'mlp', dataset: 'mnist', epochs: 2, tracking });
new FederatedFleet(chart('my-fl'), 'MyFl', { clients: 2, rounds: 3, model: 'mlp', dataset: 'mnist', tracking });
new SplitLearning(chart('my-split'), 'MySplit', { clients: 1, cutLayer: 2, model: 'mlp', dataset: 'mnist', tracking });
new TrainingApi(chart('my-api'), 'TrainingApi', { tracking });
// The contract's values load at run time through the package's exports.
if (typeof ENV.role !== 'string') throw new Error('tensorfleet/contract has no ENV.role');
app.synth();

/** Never called: the installed types are real (an \`any\` would make these expectations fail). */
export function typesAreChecked(): void {
  // @ts-expect-error worldSize is a number
  new DdpCluster(chart('x'), 'X', { worldSize: 'two', model: 'mlp', dataset: 'mnist' });
  // @ts-expect-error no such prop
  new TrainingApi(chart('y'), 'Y', { notAProp: true });
}
`;

const APP_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2022'],
    module: 'node16',
    moduleResolution: 'node16',
    strict: true,
    noImplicitReturns: true,
    noUnusedLocals: true,
    esModuleInterop: true,
    skipLibCheck: false,
    types: ['node'],
  },
  files: ['main.ts'],
};

/** name -> mtime of every file under `dir`. */
function mtimes(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, entry);
    if (statSync(path).isFile()) out.set(entry, statSync(path).mtimeMs);
  }
  return out;
}

/** Symlink `name` (a package folder) from this checkout's node_modules into `modules`, as an install would place it. */
function linkPackage(modules: string, name: string): void {
  const target = join(CHECKOUT_MODULES, name);
  statSync(join(target, 'package.json'));
  mkdirSync(dirname(join(modules, name)), { recursive: true });
  symlinkSync(target, join(modules, name), 'dir');
}

/** Link `bin` of package `name` into modules/.bin, as npm's bin-links does (which also makes the unpacked file executable). */
function linkBin(modules: string, name: string, bin: string, path: string): void {
  mkdirSync(join(modules, '.bin'), { recursive: true });
  symlinkSync(join('..', name, path), join(modules, '.bin', bin));
}

describe('tensorfleet installed into a fresh cdk8s app (npm pack, no network)', () => {
  let scratch = '';
  let app = '';
  let packed: string[] = [];
  let packSeconds = 0;
  let checkoutDist = new Map<string, number>();

  before(async () => {
    scratch = realpathSync(mkdtempSync(join(tmpdir(), 'tensorfleet-package-')));
    // A copy of the checkout's package sources; its node_modules is the checkout's, read only (tsc, @types).
    const stage = join(scratch, 'stage');
    for (const path of ['package.json', 'tsconfig.json', 'tsconfig.lib.json', 'README.md', 'bin', 'charts', 'imports', 'trainer/src']) {
      cpSync(join(REPO_ROOT, path), join(stage, path), { recursive: true });
    }
    symlinkSync(CHECKOUT_MODULES, join(stage, 'node_modules'), 'dir');
    const pack = await run('npm', ['pack', '--json', '--offline', '--pack-destination', scratch], stage, 180_000);
    assert.equal(pack.code, 0, `npm pack: ${explain(pack)}`);
    packSeconds = pack.seconds;
    const [result] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    packed = result.files.map((f) => f.path).sort();

    // The user's app: its own package.json, cdk8s.yaml and main.ts; the tarball unpacked into its node_modules.
    app = join(scratch, 'my-app');
    const modules = join(app, 'node_modules');
    const installed = join(modules, 'tensorfleet');
    mkdirSync(installed, { recursive: true });
    const untar = await run('tar', ['-xzf', join(scratch, result.filename), '-C', installed, '--strip-components=1'], scratch);
    assert.equal(untar.code, 0, `tar: ${explain(untar)}`);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies?: Record<string, string>;
      bin: Record<string, string>;
    };
    const optional = Object.keys(manifest.optionalDependencies ?? {});
    const declared = [...new Set([...Object.keys(manifest.dependencies), ...APP_DEPENDENCIES, ...APP_DEV_DEPENDENCIES])];
    for (const name of declared) linkPackage(modules, name);
    for (const name of optional) {
      try {
        linkPackage(modules, name);
      } catch {
        // an optional dependency npm ci did not install: the package must run without it
      }
    }
    for (const [bin, path] of Object.entries(manifest.bin)) {
      chmodSync(join(installed, path), 0o755); // the unpacked file only: a linked package is never written to
      linkBin(modules, 'tensorfleet', bin, path);
    }
    linkBin(modules, 'cdk8s-cli', 'cdk8s', 'bin/cdk8s');

    writeFileSync(
      join(app, 'package.json'),
      `${JSON.stringify(
        {
          name: 'my-app',
          version: '1.0.0',
          private: true,
          dependencies: { tensorfleet: `file:../${result.filename}`, cdk8s: '*', constructs: '*' },
          devDependencies: Object.fromEntries(APP_DEV_DEPENDENCIES.map((name) => [name, '*'])),
        },
        null,
        2,
      )}\n`,
    );
    writeFileSync(join(app, 'cdk8s.yaml'), 'language: typescript\napp: node main.js\noutput: dist\n');
    writeFileSync(join(app, 'tsconfig.json'), `${JSON.stringify(APP_TSCONFIG, null, 2)}\n`);
    writeFileSync(join(app, 'main.ts'), APP_MAIN_TS);
    checkoutDist = mtimes(join(REPO_ROOT, 'dist'));
  });

  after(() => {
    // rm unlinks the symlinks into the checkout's node_modules; it never follows them.
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('the tarball carries bin/, the compiled JS and .d.ts of the constructs, contract and CLI; no tests, fuzz or maps', (t) => {
    t.diagnostic(`npm pack (its prepack build included): ${packSeconds.toFixed(1)} s, ${packed.length} files`);
    for (const file of [
      'package.json',
      'bin/tensorfleet',
      'build/charts/index.js',
      'build/charts/index.d.ts',
      'build/charts/ddp-cluster.d.ts',
      'build/trainer/src/contract/index.js',
      'build/trainer/src/contract/index.d.ts',
      'build/trainer/src/cli/main.js',
      'build/trainer/src/roles/index.js',
    ]) {
      assert.ok(packed.includes(file), `${file} is not in the tarball`);
    }
    const unwanted = packed.filter((f) => /(^|\/)(test|fuzz)\/|\.map$|tsbuildinfo|^(tools|dist|main\.ts|charts\/|trainer\/)/.test(f));
    assert.deepEqual(unwanted, []);
  });

  test("the app's main.ts type-checks (strict, library .d.ts included) against the installed types", async (t) => {
    // node16 resolution reads the package's exports; node10 (older apps' tsconfig) reads types and typesVersions.
    const node16 = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
    assert.equal(node16.code, 0, `tsc (node16): ${explain(node16)}`);
    const node10 = await run(
      process.execPath,
      [TSC, '-p', 'tsconfig.json', '--noEmit', '--skipLibCheck', '--module', 'commonjs', '--moduleResolution', 'node10'],
      app,
    );
    assert.equal(node10.code, 0, `tsc (node10): ${explain(node10)}`);
    t.diagnostic(`tsc: ${node16.seconds.toFixed(1)} s (node16, lib check), ${node10.seconds.toFixed(1)} s (node10)`);
  });

  test("the installed `tensorfleet synth` writes the app's own charts into the app's dist/, not the checkout's", async () => {
    const synth = await run(join(app, 'node_modules', '.bin', 'tensorfleet'), ['synth'], app);
    assert.equal(synth.code, 0, `tensorfleet synth: ${explain(synth)}`);
    const files = manifestFiles(join(app, 'dist')).map((p) => relative(join(app, 'dist'), p));
    assert.deepEqual(files, ['my-api.k8s.yaml', 'my-ddp.k8s.yaml', 'my-fl.k8s.yaml', 'my-split.k8s.yaml', 'tracking.k8s.yaml']);
    assert.deepEqual(mtimes(join(REPO_ROOT, 'dist')), checkoutDist, "the checkout's dist/ changed");
  });

  test('every object the app synthesized passes the schema, CRD, semantics and security-baseline validation', (t) => {
    const result = validateDist(join(app, 'dist'));
    t.diagnostic(`validated ${formatSummary(summarize(result.objects, result.findings))}`);
    assert.ok(result.objects >= 20, `only ${result.objects} objects`);
    assert.deepEqual(result.findings.map(formatFinding), []);
  });

  test("the installed bin answers --help and --version, and `run` reads the charts of the app's dist/", async () => {
    const bin = join(app, 'node_modules', '.bin', 'tensorfleet');
    const help = await run(bin, ['--help'], app);
    assert.equal(help.code, 0, `--help: ${explain(help)}`);
    for (const command of ['synth', 'run', 'eval', 'submit']) assert.match(help.stdout, new RegExp(`^\\s+${command}\\s`, 'm'));
    const version = await run(bin, ['--version'], app);
    assert.equal(version.code, 0, `--version: ${explain(version)}`);
    const { version: expected } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.ok(version.stdout.includes(expected), `--version printed ${JSON.stringify(version.stdout)}, not ${expected}`);
    const topology = await run(bin, ['run', 'my-ddp', '--dist', 'dist', '--topology-only'], app);
    assert.equal(topology.code, 0, `run --topology-only: ${explain(topology)}`);
    assert.match(topology.stdout, /Job\/my-ddp\b.*completions 2/);
    const unknown = await run(bin, ['run', 'no-such-chart'], app);
    assert.notEqual(unknown.code, 0);
    assert.ok(
      unknown.stderr.includes(`charts in ${join(app, 'dist')}: my-api, my-ddp, my-fl, my-split, tracking`),
      `run did not list the app's charts: ${explain(unknown)}`,
    );
  });

  test("this checkout's own CLI, run in the app's folder, synthesizes and lists the app's charts too", async () => {
    rmSync(join(app, 'dist'), { recursive: true, force: true });
    const synth = await run(process.execPath, [CLI_JS, 'synth'], app);
    assert.equal(synth.code, 0, `synth: ${explain(synth)}`);
    assert.equal(manifestFiles(join(app, 'dist')).length, 5);
    assert.deepEqual(mtimes(join(REPO_ROOT, 'dist')), checkoutDist, "the checkout's dist/ changed");
    const unknown = await run(process.execPath, [CLI_JS, 'run', 'no-such-chart'], app);
    assert.ok(unknown.stderr.includes(`charts in ${join(app, 'dist')}: my-api,`), `run: ${explain(unknown)}`);
  });
});
