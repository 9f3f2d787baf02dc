import { expect } from 'chai';
import { createTestGateway, type TestGateway } from '../../core/testing/index.ts';
import { transform } from '../../plugins/index.ts';

const module = new URL('../fixtures/transforms/orders.ts', import.meta.url);
const orders = (count: number): string =>
  JSON.stringify({ orders: Array.from({ length: count }, (_, i) => ({ id: i, total: i * 10, internalNotes: 'do not show' })) });

describe('transform plugin', () => {
  let upstreamBody = orders(2);
  let gw: TestGateway;
  before(async () => {
    gw = await createTestGateway({
      upstream: (req, res) => {
        const text = req.url === '/echo' ? req.body : upstreamBody;
        res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json; charset=utf-8', etag: '"v1"' });
        res.end(req.url === '/missing' ? '{"error":"nope"}' : text);
      },
      routes: [
        { path: '/orders', upstream: 'upstream', plugins: [transform({ response: { module, export: 'slim' } })] },
        { path: '/missing', upstream: 'upstream', plugins: [transform({ response: { module, export: 'slim' } })] },
        { path: '/same', upstream: 'upstream', plugins: [transform({ response: { module, export: 'unchanged' } })] },
        { path: '/broken', upstream: 'upstream', plugins: [transform({ response: { module, export: 'broken' } })] },
        { path: '/tenants/:tenant/echo', upstream: 'upstream', rewrite: '/echo', plugins: [transform({ request: { module, export: 'stamp' } })] },
      ],
      config: { offload: { inlineBelow: 4096 } },
    });
  });
  after(() => gw.close());

  it('reshapes a JSON response with the user\'s function, inline for a small body', async () => {
    upstreamBody = orders(2);
    const res = await gw.request('/orders');
    expect(res.status).to.equal(200);
    expect(res.json()).to.deep.equal({ route: '/orders', status: 200, ranOnMainThread: true, orders: [{ id: 0, total: 0 }, { id: 1, total: 10 }] });
    expect(res.headers.etag).to.equal(undefined);
    expect(Number(res.headers['content-length'] ?? res.text.length)).to.equal(Buffer.byteLength(res.text));
  });

  it('runs a large body on an offload thread, with the same result', async () => {
    upstreamBody = orders(5_000);
    const res = await gw.request('/orders');
    const body = res.json();
    expect(body.ranOnMainThread).to.equal(false);
    expect(body.orders).to.have.length(5_000);
    expect(body.orders[4_999]).to.deep.equal({ id: 4_999, total: 49_990 });
  });

  it('transforms the request body before it is forwarded', async () => {
    const res = await gw.request('/tenants/acme/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"item":"A-1"}' });
    expect(res.json()).to.deep.equal({ item: 'A-1', tenant: 'acme', direction: 'request' });
  });

  it('leaves other statuses, and a body the function returns undefined for, as they were', async () => {
    const missing = await gw.request('/missing');
    expect(missing.status).to.equal(404);
    expect(missing.json()).to.deep.equal({ error: 'nope' });
    upstreamBody = orders(1);
    const same = await gw.request('/same');
    expect(same.text).to.equal(upstreamBody);
    expect(same.headers.etag).to.equal('"v1"');
  });

  it('keeps the body and its ETag when the function returns undefined on an offload thread too', async () => {
    upstreamBody = orders(5_000);
    const same = await gw.request('/same');
    expect(same.text).to.equal(upstreamBody);
    expect(same.headers.etag).to.equal('"v1"');
  });

  it('answers 500 TG_ERR_OFFLOAD_FAILED when the function throws, without its message', async () => {
    const res = await gw.request('/broken');
    expect(res.status).to.equal(500);
    expect(res.json().error.code).to.equal('TG_ERR_OFFLOAD_FAILED');
    expect(res.text).to.not.contain('could not cope');
  });

  it('fails at startup, naming the module, when the export does not exist', async () => {
    let failure: Error | null = null;
    await createTestGateway({ plugins: [transform({ response: { module, export: 'absent' } })] }).then((g) => g.close(), (error: Error) => (failure = error));
    expect(failure!.message).to.contain('orders.ts has no function export "absent"');
  });
});
