import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './gateway-process.ts';

const run = promisify(execFile);

let tarball: Promise<string> | undefined;

/** `npm run pack`'s tarball, built once per test run. */
export function packed(): Promise<string> {
  tarball ??= run(process.execPath, [join(REPO, '.ci/pack.ts')], { cwd: REPO }).then(({ stdout }) => stdout.trim().split('\n').at(-1)!);
  return tarball;
}

export interface PackedProject {
  /** The project's folder (under the repository's .tmp). */
  dir: string;
  /** Where the package is installed: `<dir>/node_modules/tollgate`. */
  installed: string;
  /** The installed CLI. */
  cli: string;
  remove(): void;
}

/**
 * A user's project with the package installed as npm installs it: the tarball unpacked into its
 * node_modules, where Node does not strip types. The package's own dependencies resolve from the
 * repository's node_modules above it, as npm would have hoisted them.
 */
export async function installPackedProject(name: string): Promise<PackedProject> {
  const dir = join(REPO, '.tmp', `${name}-${process.pid}`);
  const installed = join(dir, 'node_modules/tollgate');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', await packed(), '-C', installed, '--strip-components=1']);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'a-user-project', private: true, type: 'module' }));
  return { dir, installed, cli: join(installed, 'core/cli/tollgate.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
