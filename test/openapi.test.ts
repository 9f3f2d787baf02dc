import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { loadOpenApi, routesFromOpenApi } from '../core/index.ts';
import { headers } from '../plugins/index.ts';
import { CORE, PLUGINS, runCli, startGatewayFrom, writeConfig, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

const orders = {
  openapi: '3.1.0',
  info: { title: 'orders', version: '1' },
  paths: {
    '/orders': { post: { operationId: 'createOrder' }, get: { operationId: 'listOrders' } },
    '/orders/{orderId}': { get: { operationId: 'getOrder' }, delete: { operationId: 'cancelOrder' }, parameters: [] },
    '/reports/daily': { get: { operationId: 'dailyReport', 'x-tollgate-upstream': 'reports' } },
  },
};

describe('routes from OpenAPI', () => {
  it('makes one route per operation, named by operationId, with {params} as :params and per-operation plugins', () => {
    const stamp = headers({ request: { set: { 'x-cancel': 'yes' } } });
    const routes = routesFromOpenApi(orders, { upstream: 'orders', operations: { cancelOrder: [stamp] } });
    expect(routes.map((r) => [r.name, r.methods, r.path, r.upstream, r.plugins?.length])).to.deep.equal([
      ['listOrders', ['GET'], '/orders', 'orders', 0],
      ['createOrder', ['POST'], '/orders', 'orders', 0],
      ['getOrder', ['GET'], '/orders/:orderId', 'orders', 0],
      ['cancelOrder', ['DELETE'], '/orders/:orderId', 'orders', 1],
      ['dailyReport', ['GET'], '/reports/daily', 'reports', 0],
    ]);
    expect(routesFromOpenApi(orders, { upstream: 'orders', prefix: '/api' })[0]!.path).to.equal('/api/orders');
  });

  it('names what it cannot route: a missing upstream, a mixed path segment, an unknown operation, not OpenAPI 3', () => {
    const error = (fn: () => unknown): string => {
      try {
        fn();
        return 'no error';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(error(() => routesFromOpenApi(orders))).to.include('operation listOrders has no upstream').and.include('operation getOrder has no upstream');
    expect(error(() => routesFromOpenApi({ openapi: '3.0.3', paths: { '/files/{name}.json': { get: {} } } }, { upstream: 'a' }))).to.include(
      'a segment mixing text and a parameter ("{name}.json")',
    );
    expect(error(() => routesFromOpenApi(orders, { upstream: 'orders', operations: { deleteEverything: [] } }))).to.include('"deleteEverything"');
    expect(error(() => routesFromOpenApi({ swagger: '2.0', paths: {} }))).to.include('expected an OpenAPI 3.x document');
  });

  describe('loadOpenApi', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-openapi-'));

    it('reads the same document from JSON and from YAML', () => {
      writeFileSync(join(dir, 'a.json'), JSON.stringify(orders));
      writeFileSync(join(dir, 'a.yaml'), stringify(orders));
      expect(loadOpenApi(join(dir, 'a.yaml'))).to.deep.equal(orders);
      expect(loadOpenApi(pathToFileURL(join(dir, 'a.json')))).to.deep.equal(orders);
    });

    it('names the file and the line of a document that does not parse, and a file that is missing', () => {
      writeFileSync(join(dir, 'broken.yaml'), 'openapi: 3.1.0\npaths:\n  /a: [unclosed\n');
      expect(() => loadOpenApi(join(dir, 'broken.yaml'))).to.throw(/broken\.yaml does not parse \(line \d+, column \d+\)/);
      expect(() => loadOpenApi(join(dir, 'missing.yaml'))).to.throw(/cannot read the OpenAPI document .*missing\.yaml: ENOENT/);
      writeFileSync(join(dir, 'list.yml'), '- a\n- b\n');
      expect(() => loadOpenApi(join(dir, 'list.yml'))).to.throw(/is not an object/);
    });
  });

  describe('in a config (a YAML document)', () => {
    let upstream: TestUpstream;
    let gateway: GatewayProcess;

    before(async () => {
      upstream = await startUpstream();
      const file = writeConfig(`
        import { defineConfig, loadOpenApi, routesFromOpenApi } from '${CORE}';
        import { headers } from '${PLUGINS}';
        const api = loadOpenApi(new URL('./orders.openapi.yaml', import.meta.url));
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          upstreams: { orders: { targets: ['${upstream.url}'] }, reports: { targets: ['${upstream.url}/r'] } },
          routes: routesFromOpenApi(api, { upstream: 'orders', operations: { cancelOrder: [headers({ request: { set: { 'x-cancel': 'yes' } } })] } }),
        });
      `);
      writeFileSync(join(dirname(file), 'orders.openapi.yaml'), stringify(orders));
      gateway = await startGatewayFrom(file);
    });
    after(async () => {
      await gateway?.stop();
      await upstream?.close();
    });

    it('routes the operations of the document, and only those', async () => {
      expect((await send(`${gateway.url}/orders/42`)).json().url).to.equal('/orders/42');
      const cancelled = await send(`${gateway.url}/orders/42`, { method: 'DELETE' });
      expect(cancelled.json().headers['x-cancel']).to.equal('yes');
      expect((await send(`${gateway.url}/reports/daily`)).json().url).to.equal('/r/reports/daily');
      const patch = await send(`${gateway.url}/orders/42`, { method: 'PATCH' });
      expect(patch.status).to.equal(405);
      expect(patch.headers.allow).to.equal('GET, DELETE, HEAD');
    });

    it('makes tollgate check report operations that have no upstream', async () => {
      const file = writeConfig(`
        import { defineConfig, routesFromOpenApi } from '${CORE}';
        export default defineConfig({
          upstreams: { orders: { targets: ['http://127.0.0.1:1'] } },
          routes: routesFromOpenApi(${JSON.stringify(orders)}),
        });
      `);
      const result = await runCli(['check', '--config', file]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.include('operation listOrders has no upstream');
      // dailyReport names its own upstream with x-tollgate-upstream.
      expect(result.stderr).not.to.include('dailyReport');
    });
  });
});
