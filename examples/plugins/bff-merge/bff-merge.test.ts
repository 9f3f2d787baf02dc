import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestGateway } from 'tollgate/testing';
import { bffMerge } from './index.ts';

/** A service on loopback answering `body(path)`, or the status it returns. */
async function service(answer: (path: string) => unknown | number): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const result = answer(req.url ?? '/');
    if (typeof result === 'number') return void res.writeHead(result).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('example: bff-merge', () => {
  it('merges two services fetched in parallel, and says which part failed when one does', async () => {
    const users = await service((path) => ({ id: path.split('/').pop(), name: 'Ada' }));
    let ordersDown = false;
    const orders = await service(() => (ordersDown ? 503 : [{ id: 1 }, { id: 2 }]));
    const gw = await createTestGateway({
      routes: [{ path: '/profile/:id', upstream: 'upstream', plugins: [bffMerge({ parts: { user: { url: `${users.url}/users/:id` }, orders: { url: `${orders.url}/orders?user=:id` } } })] }],
    });
    try {
      const whole = await gw.request('/profile/7');
      expect(whole.status).to.equal(200);
      expect(whole.json()).to.deep.equal({ user: { id: '7', name: 'Ada' }, orders: [{ id: 1 }, { id: 2 }] });
      ordersDown = true;
      const partial = await gw.request('/profile/7');
      expect(partial.status).to.equal(207);
      expect(partial.json()).to.deep.equal({ user: { id: '7', name: 'Ada' }, orders: null, errors: [{ part: 'orders', error: 'status 503' }] });
      expect(gw.upstreamRequests).to.have.length(0);
    } finally {
      await gw.close();
      users.server.close();
      orders.server.close();
    }
  });
});
