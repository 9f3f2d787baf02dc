import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { REPO } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { closedPort } from './support/upstream.ts';

describe('npm run demo (the README quick start)', () => {
  it('serves the default gateway.config.ts in front of the demo upstream, then stops cleanly', async () => {
    const [gatewayPort, upstreamPort] = [await closedPort(), await closedPort()];
    const demo = spawn(process.execPath, [join(REPO, 'examples/demo.ts')], {
      cwd: REPO,
      env: { ...process.env, PORT: String(gatewayPort), DEMO_UPSTREAM_PORT: String(upstreamPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    try {
      await new Promise<void>((resolve, reject) => {
        demo.stdout.on('data', (chunk: Buffer) => {
          output += chunk;
          if (output.includes('"msg":"tollgate ready')) resolve();
        });
        demo.once('exit', (code) => reject(new Error(`demo exited (${code}):\n${output}`)));
      });
      const api = await send(`http://127.0.0.1:${gatewayPort}/api/hello?x=1`);
      expect(api.status).to.equal(200);
      expect(api.headers['x-served-by']).to.equal('tollgate');
      expect(api.json()).to.include({ upstream: `demo:${upstreamPort}`, url: '/hello?x=1' });
      const order = await send(`http://127.0.0.1:${gatewayPort}/orders/42`);
      expect(order.json().url).to.equal('/v1/orders/42');
      expect((await send(`http://127.0.0.1:${gatewayPort}/nope`)).json().error.code).to.equal('TG_ERR_ROUTE_NOT_FOUND');
      demo.kill('SIGTERM');
      const [code] = await once(demo, 'exit');
      expect(code).to.equal(0);
    } finally {
      // The gateway runs in its own process group: if the test failed, do not leave it behind.
      const primary = /"role":"primary","pid":(\d+)/.exec(output)?.[1];
      if (demo.exitCode === null) demo.kill('SIGKILL');
      if (primary) {
        try {
          process.kill(Number(primary), 'SIGKILL');
        } catch {
          // Already gone: the normal case.
        }
      }
    }
  });
});
