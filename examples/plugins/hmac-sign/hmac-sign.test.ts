import { expect } from 'chai';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createTestGateway } from 'tollgate/testing';
import { hmacSign, signingString } from './index.ts';

const SECRET = 'a-shared-secret-of-at-least-32-chars!';

describe('example: hmac-sign', () => {
  it('signs method, path, timestamp and body so that the upstream can verify them', async () => {
    const verdicts: boolean[] = [];
    const gw = await createTestGateway({
      plugins: [hmacSign({ secret: SECRET, keyId: 'k1' })],
      upstream: (req, res) => {
        const [, keyId, signature] = /^keyId="([^"]+)",sha256=([0-9a-f]{64})$/.exec(String(req.headers['x-signature'])) ?? [];
        const expected = createHmac('sha256', SECRET)
          .update(signingString(req.method!, req.url!, String(req.headers['x-signature-timestamp']), Buffer.from(req.body)))
          .digest();
        verdicts.push(keyId === 'k1' && signature !== undefined && timingSafeEqual(Buffer.from(signature, 'hex'), expected));
        res.writeHead(204).end();
      },
    });
    try {
      await gw.request('/orders?page=2', { method: 'POST', body: JSON.stringify({ item: 42 }), headers: { 'content-type': 'application/json' } });
      await gw.request('/orders/7');
      expect(verdicts).to.deep.equal([true, true]);
      expect(gw.upstreamRequests[0]!.body).to.equal('{"item":42}');
    } finally {
      await gw.close();
    }
  });
});
