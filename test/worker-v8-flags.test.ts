import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { workerExecArgv } from '../core/cluster/worker-v8-flags.ts';
import { CORE, startGateway } from './support/gateway-process.ts';

describe('worker V8 flags', () => {
  it('are flags this V8 knows (an unknown one would only print a warning and do nothing)', () => {
    const module = CORE.replace(/index\.ts$/, 'cluster/worker-v8-flags.ts');
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { applyWorkerV8Flags } from '${module}'; applyWorkerV8Flags();`], { encoding: 'utf8' });
    expect(child.status).to.equal(0);
    expect(child.stderr).to.equal('');
    // The flag in question must exist here (Node 24 is what tollgate is developed and tested on).
    const options = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout;
    expect(options).to.contain('--external-memory-accounted-in-global-limit');
  });

  it('start workers with 2 MiB semi-spaces unless node was given its own size', async () => {
    expect(workerExecArgv(['--enable-source-maps'])).to.deep.equal(['--max-semi-space-size=2', '--expose-gc-as=__tollgate_gc', '--enable-source-maps']);
    expect(workerExecArgv(['--max-semi-space-size=8'])).to.deep.equal(['--expose-gc-as=__tollgate_gc', '--max-semi-space-size=8']);
    const gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({ listen: { port: 0, host: '127.0.0.1' }, upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a' }] });
    `);
    try {
      const worker = readFileSync(`/proc/${gateway.workerPids[0]}/cmdline`, 'utf8').split('\0');
      expect(worker).to.include('--max-semi-space-size=2');
      expect(worker).to.include('--expose-gc-as=__tollgate_gc');
      const primary = readFileSync(`/proc/${gateway.child.pid}/cmdline`, 'utf8').split('\0');
      expect(primary).to.not.include('--max-semi-space-size=2');
    } finally {
      await gateway.stop();
    }
  });

  it('expose V8\'s gc to workers under a name of their own, leaving an operator\'s --expose-gc as it is', () => {
    expect(workerExecArgv([])).to.include('--expose-gc-as=__tollgate_gc');
    expect(workerExecArgv(['--expose-gc'])).to.deep.equal(['--max-semi-space-size=2', '--expose-gc']);
    expect(workerExecArgv(['--expose_gc'])).to.deep.equal(['--max-semi-space-size=2', '--expose_gc']);
  });
});
