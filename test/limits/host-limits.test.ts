import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../support/gateway-process.ts';

/**
 * A cluster of one worker whose primary answers host-limit asks only after `answerAfterMs` (as a busy
 * primary would), while the worker asks in `turns` consecutive event-loop turns. Resolves with the
 * asks each message carried and what the worker's takes resolved to.
 */
async function askThroughSlowPrimary(turns: number, answerAfterMs: number): Promise<{ asksPerMessage: number[]; granted: number[] }> {
  const script = join(mkdtempSync(join(tmpdir(), 'tollgate-host-limits-')), 'cluster.mjs');
  writeFileSync(
    script,
    `import cluster from 'node:cluster';
if (cluster.isPrimary) {
  const worker = cluster.fork();
  const asksPerMessage = [];
  worker.on('message', (message) => {
    if (message.type === 'tollgate:limits') {
      asksPerMessage.push(message.asks.length);
      const answers = message.asks.map(([id]) => [id, 1, 0, 99, 1000]);
      setTimeout(() => worker.send({ type: 'tollgate:limits-answer', answers }), ${answerAfterMs});
    }
    if (message.type === 'done') {
      console.log(JSON.stringify({ asksPerMessage, granted: message.granted }));
      worker.kill();
    }
  });
  worker.on('exit', (code, signal) => {
    if (signal !== 'SIGTERM') process.exit(1);
  });
} else {
  const { hostLimits } = await import(${JSON.stringify(join(REPO, 'core/limits/host-limits.ts'))});
  // It logs only when the primary is gone, which this test does not do.
  const limits = hostLimits({ warn() {} });
  const rates = [{ emissionUs: 1000, toleranceUs: 100000 }];
  const decisions = [];
  for (let turn = 0; turn < ${turns}; turn++) {
    decisions.push(limits.take('client-' + turn, rates, 1), limits.take('client-' + turn + 'b', rates, 1));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const granted = (await Promise.all(decisions)).map((d) => d.granted);
  process.send({ type: 'done', granted });
}
`,
  );
  const child = spawn(process.execPath, [script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk));
  const [code] = (await once(child, 'exit')) as [number];
  expect(code, 'the cluster script failed').to.equal(0);
  return JSON.parse(out) as { asksPerMessage: number[]; granted: number[] };
}

describe('host limits (the primary decides for every worker)', function () {
  this.timeout(30_000);

  it('keeps one ask message in flight: asks made while it waits for its answer go out together', async () => {
    const { asksPerMessage, granted } = await askThroughSlowPrimary(20, 200);
    // The first turn's two asks, then the other 19 turns' 38 in one message once the answer came.
    expect(asksPerMessage).to.deep.equal([2, 38]);
    expect(granted).to.deep.equal(Array(40).fill(1));
  });
});
