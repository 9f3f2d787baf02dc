import { expect } from 'chai';
import { createTestGateway } from 'tollgate/testing';
import { tenantPrefix } from './index.ts';

describe('example: tenant-prefix', () => {
  it("prefixes the upstream path with the tenant's and refuses tenants it does not know", async () => {
    const gw = await createTestGateway({ plugins: [tenantPrefix({ tenants: { acme: '/t/acme', globex: '/t/globex' } })] });
    try {
      const res = await gw.request('/orders/1?x=1', { headers: { 'x-tenant': 'globex' } });
      expect(res.json().url).to.equal('/t/globex/orders/1?x=1');
      expect(res.json().headers).not.to.have.property('x-tenant');
      expect((await gw.request('/orders/1', { headers: { 'x-tenant': 'initech' } })).status).to.equal(404);
      expect((await gw.request('/orders/1')).status).to.equal(404);
      expect(gw.upstreamRequests).to.have.length(1);
    } finally {
      await gw.close();
    }
  });
});
