import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import client from 'prom-client';
import { routesFromOpenApi } from '../../core/index.ts';
import { createTestGateway, type TestGateway } from '../../core/testing/index.ts';
import { validate } from '../../plugins/index.ts';

const orders = JSON.parse(readFileSync(new URL('../fixtures/openapi/orders.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const json = { 'content-type': 'application/json' };
const tenant = { 'x-tenant': 'acme' };
const goodOrder = { customer: 'ops@example.com', items: [{ sku: 'A-1', qty: 2 }] };

async function validationRuns(mode: 'inline' | 'thread'): Promise<number> {
  const metric = await client.register.getSingleMetric('tollgate_offload_tasks_total')?.get();
  return (metric?.values ?? [])
    .filter((value) => value.labels.task === 'validate-task' && value.labels.mode === mode)
    .reduce((sum, value) => sum + value.value, 0);
}

describe('validate plugin', () => {
  describe('against an OpenAPI 3.0 document', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await createTestGateway({ plugins: [validate({ openapi: orders, bodyLimit: 4 * 1024 * 1024 })], config: { offload: { inlineBelow: 16_384 } } });
    });
    after(() => gw.close());
    beforeEach(() => {
      gw.upstreamRequests.length = 0;
    });

    it('lets a valid request through, body unchanged', async () => {
      const body = JSON.stringify(goodOrder);
      const res = await gw.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body });
      expect(res.status).to.equal(200);
      expect(gw.upstreamRequests[0]!.body).to.equal(body);
    });

    it('reads path and query parameters as their declared types (repeated and comma-separated arrays too)', async () => {
      expect((await gw.request('/orders/42')).status).to.equal(200);
      expect((await gw.request('/orders?limit=10&status=open&status=shipped&fields=id,total')).status).to.equal(200);
      expect((await gw.request('/orders?status=open')).status).to.equal(200);
    });

    it('answers 400 listing every violation, where it is and why, and the upstream never sees the request', async () => {
      const body = JSON.stringify({ customer: 'not-an-email', items: [{ sku: 'A-1', qty: 0 }, { qty: 1 }], gift: true });
      const res = await gw.request('/orders', { method: 'POST', headers: { ...json, 'x-tenant': 'ACME!' }, body });
      expect(res.status).to.equal(400);
      const error = res.json().error;
      expect(error.code).to.equal('TG_ERR_VALIDATION');
      expect(error.details.violations).to.deep.include.members([
        { in: 'header', path: '/x-tenant', message: 'must match pattern "^[a-z]+$"' },
        { in: 'body', path: '/customer', message: 'must match format "email"' },
        { in: 'body', path: '/items/0/qty', message: 'must be >= 1' },
        { in: 'body', path: '/items/1/sku', message: 'is required' },
        { in: 'body', path: '/gift', message: 'is not allowed' },
      ]);
      expect(gw.upstreamRequests).to.have.length(0);
    });

    it('checks path and query parameters', async () => {
      const id = await gw.request('/orders/0');
      expect(id.json().error.details.violations).to.deep.equal([{ in: 'path', path: '/id', message: 'must be >= 1' }]);
      const query = await gw.request('/orders?limit=many&status=lost&fields=a,b,c,d');
      expect(query.json().error.details.violations).to.deep.include.members([
        { in: 'query', path: '/limit', message: 'must be integer' },
        { in: 'query', path: '/status/0', message: 'must be equal to one of the allowed values: "open", "shipped"' },
        { in: 'query', path: '/fields', message: 'must NOT have more than 3 items' },
      ]);
      const header = await gw.request('/orders', { method: 'POST', headers: json, body: JSON.stringify(goodOrder) });
      expect(header.json().error.details.violations).to.deep.equal([{ in: 'header', path: '/x-tenant', message: 'is required' }]);
    });

    it('refuses a missing required body and a body that is not JSON', async () => {
      const missing = await gw.request('/orders', { method: 'POST', headers: tenant });
      expect(missing.status).to.equal(400);
      expect(missing.json().error.details.violations).to.deep.equal([{ in: 'body', path: '', message: 'a request body is required' }]);
      const broken = await gw.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body: '{"customer":' });
      expect(broken.status).to.equal(400);
      expect(broken.json().error.details.violations[0].message).to.match(/^the body is not valid JSON/);
    });

    it('answers 415 for a media type the operation does not accept, and streams an accepted non-JSON body unread', async () => {
      const wrong = await gw.request('/orders', { method: 'POST', headers: { 'content-type': 'text/plain', ...tenant }, body: 'hello' });
      expect(wrong.status).to.equal(415);
      expect(wrong.json().error).to.include({ code: 'TG_ERR_UNSUPPORTED_MEDIA_TYPE' });
      expect(wrong.json().error.details).to.deep.equal({ accepted: ['application/json'] });
      const image = await gw.request('/orders/7', { method: 'PUT', headers: { 'content-type': 'image/png' }, body: 'PNG...' });
      expect(image.status).to.equal(200);
      expect(gw.upstreamRequests[0]!.body).to.equal('PNG...');
    });

    it('answers 404 TG_ERR_UNKNOWN_OPERATION for a request the document does not describe', async () => {
      const path = await gw.request('/customers');
      expect(path.status).to.equal(404);
      expect(path.json().error.code).to.equal('TG_ERR_UNKNOWN_OPERATION');
      const method = await gw.request('/orders/1', { method: 'DELETE' });
      expect(method.json().error.code).to.equal('TG_ERR_UNKNOWN_OPERATION');
      expect(gw.upstreamRequests).to.have.length(0);
    });

    it('checks a large body on an offload thread and a small one inline', async () => {
      const [inlineBefore, threadBefore] = [await validationRuns('inline'), await validationRuns('thread')];
      const small = await gw.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body: JSON.stringify(goodOrder) });
      const items = Array.from({ length: 20_000 }, (_, i) => ({ sku: `SKU-${i}`, qty: 1 + (i % 5) }));
      items[12_345]!.qty = -1;
      const large = await gw.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body: JSON.stringify({ customer: 'ops@example.com', items }) });
      expect(small.status).to.equal(200);
      expect(large.status).to.equal(400);
      expect(large.json().error.details.violations).to.deep.equal([{ in: 'body', path: '/items/12345/qty', message: 'must be >= 1' }]);
      expect(await validationRuns('inline')).to.equal(inlineBefore + 1);
      expect(await validationRuns('thread')).to.equal(threadBefore + 1);
    });

    it('forwards a large valid body, checked on a thread from shared memory, byte for byte', async () => {
      const threadBefore = await validationRuns('thread');
      const items = Array.from({ length: 5_000 }, (_, i) => ({ sku: `SKU-${i}`, qty: 1 + (i % 5) }));
      const body = JSON.stringify({ customer: 'ops@example.com', note: 'ünïcödé ✓', items });
      const res = await gw.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body });
      expect(res.status, res.text).to.equal(200);
      expect(await validationRuns('thread')).to.equal(threadBefore + 1);
      expect(gw.upstreamRequests[0]!.body).to.equal(body);
    });

    it('answers 413 for a body over bodyLimit', async () => {
      const small = await createTestGateway({ plugins: [validate({ openapi: orders, bodyLimit: 1024 })] });
      try {
        const res = await small.request('/orders', { method: 'POST', headers: { ...json, ...tenant }, body: JSON.stringify({ ...goodOrder, note: 'x'.repeat(2048) }) });
        expect(res.status).to.equal(413);
        expect(small.upstreamRequests).to.have.length(0);
      } finally {
        await small.close();
      }
    });
  });

  describe('options', () => {
    it('lets requests the document does not describe through with unknownOperation "allow"', async () => {
      const gw = await createTestGateway({ plugins: [validate({ openapi: orders, unknownOperation: 'allow' })] });
      try {
        expect((await gw.request('/customers')).status).to.equal(200);
      } finally {
        await gw.close();
      }
    });

    it('matches operations under the prefix the API is mounted at', async () => {
      const gw = await createTestGateway({ routes: [{ path: '/api/*', upstream: 'upstream', plugins: [validate({ openapi: orders, prefix: '/api' })] }] });
      try {
        expect((await gw.request('/api/orders/5')).status).to.equal(200);
        expect((await gw.request('/api/orders/%35')).status).to.equal(200);
        expect((await gw.request('/api/orders/x')).status).to.equal(400);
      } finally {
        await gw.close();
      }
    });

    it('checks every route generated from the same document with one instance listed in their plugins', async () => {
      const routes = routesFromOpenApi(orders, { upstream: 'upstream', prefix: '/api', plugins: [validate({ openapi: orders, prefix: '/api' })] });
      const gw = await createTestGateway({ routes });
      try {
        expect((await gw.request('/api/orders?limit=5')).status).to.equal(200);
        expect((await gw.request('/api/orders?limit=500')).json().error.details.violations).to.deep.equal([{ in: 'query', path: '/limit', message: 'must be <= 100' }]);
        expect((await gw.request('/api/orders', { method: 'POST', headers: { ...json, ...tenant }, body: '{}' })).status).to.equal(400);
      } finally {
        await gw.close();
      }
    });

    it('checks a route against plain JSON Schemas', async () => {
      const gw = await createTestGateway({
        routes: [{
          path: '/tenants/:tenant/items',
          upstream: 'upstream',
          plugins: [validate({
            schemas: {
              params: { type: 'object', properties: { tenant: { type: 'string', minLength: 3 } } },
              query: { type: 'object', properties: { page: { type: 'integer' } }, additionalProperties: false },
              headers: { type: 'object', required: ['X-Request-Source'] },
              body: { type: 'object', required: ['name'] },
              bodyRequired: true,
            },
          })],
        }],
      });
      try {
        const good = await gw.request('/tenants/acme/items?page=2', { method: 'POST', headers: { ...json, 'x-request-source': 'app' }, body: '{"name":"a"}' });
        expect(good.status, good.text).to.equal(200);
        // Decoded once, as the route sees it: "%41" is three characters, not "A".
        const encoded = await gw.request('/tenants/%2541/items', { method: 'POST', headers: { ...json, 'x-request-source': 'app' }, body: '{"name":"a"}' });
        expect(encoded.status, encoded.text).to.equal(200);
        const bad = await gw.request('/tenants/ab/items?page=x&debug=1', { method: 'POST', headers: json, body: '{}' });
        expect(bad.json().error.details.violations).to.deep.include.members([
          { in: 'path', path: '/tenant', message: 'must NOT have fewer than 3 characters' },
          { in: 'query', path: '/page', message: 'must be integer' },
          { in: 'query', path: '/debug', message: 'is not allowed' },
          { in: 'header', path: '/x-request-source', message: 'is required' },
          { in: 'body', path: '/name', message: 'is required' },
        ]);
      } finally {
        await gw.close();
      }
    });

    it('reads OpenAPI 3.1 schemas as JSON Schema 2020-12', async () => {
      const doc = {
        openapi: '3.1.0',
        info: { title: 't', version: '1' },
        paths: {
          '/notes': {
            post: {
              requestBody: {
                content: { 'application/json': { schema: { type: 'object', properties: { text: { type: ['string', 'null'] }, tags: { type: 'array', prefixItems: [{ const: 'first' }] } } } } },
              },
            },
          },
        },
      };
      const gw = await createTestGateway({ plugins: [validate({ openapi: doc })] });
      try {
        expect((await gw.request('/notes', { method: 'POST', headers: json, body: '{"text":null,"tags":["first","x"]}' })).status).to.equal(200);
        const bad = await gw.request('/notes', { method: 'POST', headers: json, body: '{"text":1,"tags":["second"]}' });
        expect(bad.json().error.details.violations).to.deep.include.members([
          { in: 'body', path: '/text', message: 'must be string,null' },
          { in: 'body', path: '/tags/0', message: 'must be equal to constant' },
        ]);
      } finally {
        await gw.close();
      }
    });

    it('fails at startup, naming the operation, when a schema cannot be compiled', async () => {
      const broken = structuredClone(orders) as { components: { schemas: { Item: { properties: { qty: unknown } } } } };
      broken.components.schemas.Item.properties.qty = { type: 'integer', minimum: 'one' };
      let failure: Error | null = null;
      await createTestGateway({ plugins: [validate({ openapi: broken })] }).then((gw) => gw.close(), (error: Error) => (failure = error));
      expect(failure).to.not.equal(null);
      expect(failure!.message).to.contain('validate').and.to.contain('operation createOrder');
    });

    it('refuses options with both a document and schemas, or neither', async () => {
      for (const wrong of [{ openapi: orders, schemas: {} }, {}]) {
        let failure: Error | null = null;
        await createTestGateway({ plugins: [validate(wrong as never)] }).then((gw) => gw.close(), (error: Error) => (failure = error));
        expect(failure!.message).to.contain('give exactly one of "openapi" or "schemas"');
      }
    });
  });
});
