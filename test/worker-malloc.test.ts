import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { WORKER_MALLOC_ENV, workerMallocEnv } from '../core/cluster/worker-malloc.ts';
import { CORE, startGateway } from './support/gateway-process.ts';

const CONFIG = `
  import { defineConfig } from '${CORE}';
  export default defineConfig({ listen: { port: 0, host: '127.0.0.1' }, upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a' }] });
`;

function environOf(pid: number): Record<string, string> {
  return Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

describe('worker malloc settings', () => {
  it('fix glibc\'s mmap and trim thresholds in every worker\'s environment, not the primary\'s', async () => {
    const gateway = await startGateway(CONFIG, { workers: 2 });
    try {
      for (const pid of gateway.workerPids) expect(environOf(pid)).to.include(WORKER_MALLOC_ENV);
      expect(environOf(gateway.child.pid!)).to.not.have.property('MALLOC_MMAP_THRESHOLD_');
    } finally {
      await gateway.stop();
    }
  });

  it("leave an operator's own malloc settings alone", async () => {
    expect(workerMallocEnv({ MALLOC_TRIM_THRESHOLD_: '0' })).to.deep.equal({});
    expect(workerMallocEnv({ MALLOC_ARENA_MAX: '2' })).to.deep.equal(WORKER_MALLOC_ENV);
    const gateway = await startGateway(CONFIG, { env: { MALLOC_MMAP_THRESHOLD_: '65536' } });
    try {
      const worker = environOf(gateway.workerPids[0]!);
      expect(worker.MALLOC_MMAP_THRESHOLD_).to.equal('65536');
      expect(worker).to.not.have.property('MALLOC_TRIM_THRESHOLD_');
    } finally {
      await gateway.stop();
    }
  });
});
