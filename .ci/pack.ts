/**
 * `npm run pack`: the package users install. Node strips TypeScript types everywhere but under
 * node_modules, so the published package is compiled: core/ and plugins/ become JavaScript with .d.ts
 * files in dist/package (tsconfig.build.json), next to a package.json whose exports and bin point at
 * them, packed as dist/tollgate-<version>.tgz. Prints the tarball's path.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const OUT = join(REPO, 'dist/package');
const source = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;

rmSync(OUT, { recursive: true, force: true });
execFileSync(join(REPO, 'node_modules/.bin/tsc'), ['-p', join(REPO, 'tsconfig.build.json')], { stdio: 'inherit' });

// The few modules in plain JavaScript (a worker runs them before any TypeScript) are copied as they are.
for (const file of ['core/modules/stripped-sources.mjs', 'core/modules/stripped-sources.d.mts', 'core/cluster/worker-entry.mjs', 'core/offload/task-entry.mjs']) {
  mkdirSync(dirname(join(OUT, file)), { recursive: true });
  copyFileSync(join(REPO, file), join(OUT, file));
}

const entry = (path: string): { types: string; default: string } => ({ types: `./${path}.d.ts`, default: `./${path}.js` });
const manifest = {
  name: source.name,
  version: source.version,
  description: source.description,
  license: source.license,
  type: 'module',
  engines: source.engines,
  bin: { tollgate: './core/cli/tollgate.js' },
  exports: {
    '.': entry('core/index'),
    './plugins': entry('plugins/index'),
    './testing': entry('core/testing/index'),
    './package.json': './package.json',
  },
  dependencies: source.dependencies,
};
writeFileSync(join(OUT, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
copyFileSync(join(REPO, 'README.md'), join(OUT, 'README.md'));

const [packed] = JSON.parse(execFileSync('npm', ['pack', OUT, '--pack-destination', join(REPO, 'dist'), '--json', '--silent'], { encoding: 'utf8' })) as { filename: string }[];
console.log(join(REPO, 'dist', packed!.filename));
