import { expect } from 'chai';
import { cache } from '../../plugins/index.ts';
import { createTestGateway } from '../../core/testing/index.ts';
import { CORE, FIXTURE_PLUGINS, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { parsePrometheus, total } from '../support/prometheus.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { purger } from '../fixtures/plugins/purger.ts';

const TOKEN = 'cache-purge-api-token-0123456789';

describe('gw.cache.purge (plugins purging the response caches)', () => {
  describe('in a cluster', () => {
    let app: TestUpstream;
    let gateway: GatewayProcess;
    let admin: string;

    before(async () => {
      app = await startUpstream((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'surrogate-key': `item-${req.url!.split('/').pop()}` });
        res.end(`item ${req.url}`);
      });
      const adminPort = await closedPort();
      admin = `http://127.0.0.1:${adminPort}`;
      gateway = await startGateway(
        `
        import { defineConfig } from '${CORE}';
        import { cache } from '${PLUGINS}';
        import { purger } from '${FIXTURE_PLUGINS}/purger.ts';
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          // Round-robin hands fresh connections to the workers in turn, so both hold every entry.
          scheduling: 'round-robin',
          admin: { port: ${adminPort}, token: '${TOKEN}' },
          upstreams: { app: { targets: ['${app.url}'] } },
          routes: [{ path: '/items/:id', upstream: 'app', plugins: [purger(), cache()] }],
        });
      `,
        { workers: 2 },
      );
    });

    after(async () => {
      await gateway?.stop();
      await app?.close();
    });

    const entries = async (): Promise<number> =>
      total(parsePrometheus((await send(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text), 'tollgate_cache_entries');

    it("drops the tagged entries from every worker's cache and reports the host-wide count", async () => {
      // Twice each, in turn: each path reaches both workers.
      for (const id of [1, 1, 2, 2]) await send(`${gateway.url}/items/${id}`);
      expect(await entries()).to.equal(4);
      const purge = await send(`${gateway.url}/items/1`, { headers: { 'x-purge': JSON.stringify({ tag: 'item-1' }) } });
      expect(purge.json()).to.deep.equal({ purged: 2, workers: 2 });
      expect(await entries()).to.equal(2);
      expect((await send(`${gateway.url}/items/1`)).headers['cache-status']).to.not.match(/hit/);
      expect((await send(`${gateway.url}/items/2`)).headers['cache-status']).to.match(/hit/);
    });

    it('purges by URL prefix too', async () => {
      const purge = await send(`${gateway.url}/items/9`, { headers: { 'x-purge': JSON.stringify({ prefix: '/items/' }) } });
      expect(purge.json().workers).to.equal(2);
      expect(await entries()).to.equal(0);
    });
  });

  describe('in a test gateway (no cluster)', () => {
    it("purges the gateway's own caches, and refuses a malformed target", async () => {
      const gw = await createTestGateway({
        plugins: [purger(), cache({ ttl: '1m' })],
      });
      try {
        await gw.request('/a');
        expect((await gw.request('/a')).headers['cache-status']).to.match(/hit/);
        const outcome = await gw.request('/x', { headers: { 'x-purge': JSON.stringify({ url: `${gw.url}/a` }) } });
        expect(outcome.json()).to.deep.equal({ purged: 1, workers: 1 });
        expect((await gw.request('/a')).headers['cache-status']).to.not.match(/hit/);
        const wrong = await gw.request('/x', { headers: { 'x-purge': JSON.stringify({ tag: 'a', prefix: '/b' }) } });
        expect(wrong.status).to.equal(400);
        expect(wrong.json().error).to.contain('exactly one of');
      } finally {
        await gw.close();
      }
    });
  });
});
