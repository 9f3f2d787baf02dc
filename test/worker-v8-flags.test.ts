import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { CORE } from './support/gateway-process.ts';

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
});
