import { expect } from 'chai';
import type { RequestContext } from '../../core/index.ts';
import { compileKey } from '../../plugins/rate-limit/keys.ts';

const request = (route: string | null, consumer: string | null, ip = '192.0.2.7') =>
  ({ route: route === null ? null : { name: route }, consumer: consumer === null ? null : { id: consumer }, request: { ip } }) as unknown as RequestContext;

describe('rate-limit bucket names', () => {
  it("names a consumer's bucket by route and consumer, each time the same", () => {
    const keyOf = compileKey('consumer', true, 64);
    for (let round = 0; round < 2; round++) {
      expect(keyOf(request('orders', 'alice'))).to.equal('orders|c:alice');
      expect(keyOf(request('billing', 'alice'))).to.equal('billing|c:alice');
      expect(keyOf(request('orders', 'bob'))).to.equal('orders|c:bob');
      expect(keyOf(request(null, 'alice'))).to.equal('(no route)|c:alice');
      expect(keyOf(request('orders', 'a|b{c}'))).to.equal('orders|c:a%7cb%7bc%7d');
      expect(keyOf(request('orders', null))).to.equal('orders|ip:192.0.2.7');
    }
    expect(compileKey('consumer', false, 64)(request('orders', 'alice'))).to.equal('c:alice');
  });

  it('names buckets right for consumers beyond those it remembers', () => {
    const keyOf = compileKey('consumer', true, 64);
    for (let i = 0; i < 12_000; i++) expect(keyOf(request('orders', `consumer-${i}`))).to.equal(`orders|c:consumer-${i}`);
    expect(keyOf(request('orders', 'consumer-0'))).to.equal('orders|c:consumer-0');
    expect(keyOf(request('orders', 'consumer-11999'))).to.equal('orders|c:consumer-11999');
  });

  it('reads an address without a colon as IPv4, and groups IPv6 by its prefix', () => {
    const keyOf = compileKey('ip', false, 48);
    expect(keyOf(request('orders', null, '198.51.100.4'))).to.equal('ip:198.51.100.4');
    expect(keyOf(request('orders', null, '::ffff:198.51.100.4'))).to.equal('ip:198.51.100.4');
    expect(keyOf(request('orders', null, '2001:db8:1:2::1'))).to.equal('ip:2001:db8:1:0:0:0:0:0/48');
  });
});
