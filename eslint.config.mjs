// ESLint (flat config): @eslint/js and typescript-eslint recommended, lines of at most 140
// characters, and the layering of ARCHITECTURE.md as import boundaries. `make lint` runs it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The folders under trainer/src that are layers, and those that compose them. */
const LAYERS = [
  'contract',
  'fsutil',
  'kernels',
  'transport',
  'collectives',
  'data',
  'model',
  'federated',
  'split',
  'tracking',
  'checkpoint',
];
const COMPOSERS = ['rendezvous', 'kube', 'roles', 'cli', 'local', 'report', 'api', 'bench', 'fuzz'];
/** A relative import that climbs into one of `folders` (under trainer/src), from any depth. */
const into = (folders) => `^(\\.\\./)+(${folders.join('|')})(/|$)`;
/** Every layer and composer but `allowed`. */
const except = (...allowed) => [...LAYERS, ...COMPOSERS].filter((folder) => !allowed.includes(folder));

/** One layer's boundary: files under `files` may not import what `regex` matches. */
const boundary = (files, regex, message) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns: [{ regex, message }] }] },
});

export default tseslint.config(
  { ignores: ['build/**', 'dist/**', 'imports/**', 'node_modules/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'max-len': ['error', { code: 140, ignoreUrls: true }],
      // require() stays for what is loaded only when needed: the optional tfjs backends, Swagger UI's
      // files, and a dependency's package.json (its version, read at run time).
      '@typescript-eslint/no-require-imports': [
        'error',
        { allow: ['^@tensorflow/tfjs-(node|backend-wasm)$', '^swagger-ui-dist$', '/package\\.json$'] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests walk untyped manifests and JSON bodies.
    files: ['**/test/**/*.ts', 'trainer/test/support/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  // The layering (ARCHITECTURE.md): a layer's files may not climb into the folders named.
  boundary(['trainer/src/{contract,fsutil}/**/*.ts'], into(except()), 'contract and fsutil import nothing of ours'),
  boundary(['trainer/src/kernels/**/*.ts'], into(except('contract')), 'kernels import only the contract'),
  boundary(['trainer/src/transport/**/*.ts'], into(except('contract')), 'transport imports only the contract'),
  boundary(
    ['trainer/src/collectives/**/*.ts'],
    `${into(except('contract', 'kernels', 'transport'))}|^(\\.\\./)+transport/(?!transport$)`,
    'collectives see the contract, the kernels and the Transport interface (transport/transport.ts) only',
  ),
  boundary(
    ['trainer/src/{data,model,federated,split,tracking,checkpoint}/**/*.ts'],
    into(COMPOSERS),
    'only rendezvous, kube, roles, cli, local, report, api, bench and fuzz compose the layers: import the layer they need instead',
  ),
  boundary(['charts/**/*.ts'], 'trainer/src/(?!contract(/|$))', "charts import only the trainer's contract (trainer/src/contract)"),
);
