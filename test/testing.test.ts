import { expect } from 'chai';
import { z } from 'zod';
import { definePlugin, GatewayError, reply } from '../core/index.ts';
import { createTestGateway, type TestGateway } from '../core/testing/index.ts';
import { rateLimit } from '../plugins/index.ts';

// A plugin as an author would write it: stamps a tenant header, refuses requests without one.
const stampTenant = definePlugin({
  name: 'stamp-tenant',
  version: '1.0.0',
  options: z.strictObject({ header: z.string().default('x-tenant'), seen: z.custom<string[]>(Array.isArray) }),
  setup(opts) {
    return {
      onRequest(ctx) {
        const tenant = ctx.request.headers[opts.header];
        if (typeof tenant !== 'string') throw new GatewayError('TG_ERR_FORBIDDEN', 'a tenant is required', { status: 400 });
        if (tenant === 'blocked') return reply.json(403, { error: 'tenant suspended' });
        opts.seen.push(tenant);
        ctx.upstreamRequest.headers.set('x-tenant-id', tenant.toUpperCase());
      },
      onResponse(_ctx, response) {
        response.headers.set('x-stamped', 'yes');
      },
    };
  },
});

describe('createTestGateway (tollgate/testing)', () => {
  let gw: TestGateway;
  const seen: string[] = [];

  before(async () => {
    gw = await createTestGateway({ plugins: [stampTenant({ header: 'x-tenant', seen })] });
  });
  after(async () => {
    await gw?.close();
  });

  it("runs the plugin's hooks in the test's process, in front of a stub upstream that records what it got", async () => {
    const res = await gw.request('/orders/1?x=1', { headers: { 'x-tenant': 'acme' } });
    expect(res.status).to.equal(200);
    expect(res.headers['x-stamped']).to.equal('yes');
    expect(res.json()).to.deep.include({ method: 'GET', url: '/orders/1?x=1' });
    expect(gw.upstreamRequests.at(-1)!.headers['x-tenant-id']).to.equal('ACME');
    expect(seen).to.deep.equal(['acme']);
  });

  it('shows early answers and coded errors as a client would get them, without reaching the upstream', async () => {
    const before = gw.upstreamRequests.length;
    const blocked = await gw.request('/x', { headers: { 'x-tenant': 'blocked' } });
    expect(blocked.status).to.equal(403);
    expect(blocked.json()).to.deep.equal({ error: 'tenant suspended' });
    const missing = await gw.request('/x');
    expect(missing.status).to.equal(400);
    expect(missing.json().error.code).to.equal('TG_ERR_FORBIDDEN');
    expect(gw.upstreamRequests.length).to.equal(before);
  });

  it('passes request bodies through and takes a custom upstream and bundled plugins', async () => {
    const custom = await createTestGateway({
      plugins: [rateLimit({ limit: 1, window: '1m', by: 'route' })],
      upstream: (req, res) => res.writeHead(201, { 'content-type': 'text/plain' }).end(`got ${req.body}`),
    });
    try {
      const first = await custom.request('/things', { method: 'POST', body: 'a body' });
      expect([first.status, first.text]).to.deep.equal([201, 'got a body']);
      expect((await custom.request('/things')).status).to.equal(429);
    } finally {
      await custom.close();
    }
  });
});
