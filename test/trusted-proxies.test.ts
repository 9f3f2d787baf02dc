import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { TrustedProxies } from '../core/http/trusted-proxies.ts';

/** Just the two things clientIp reads from a request. */
function request(peer: string, forwardedFor?: string): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } } as IncomingMessage;
}

describe('trusted proxies', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);

  it('takes the peer as the client when the peer is not trusted, whatever X-Forwarded-For says', () => {
    expect(trusted.clientIp(request('203.0.113.5', '1.2.3.4'))).to.equal('203.0.113.5');
    expect(new TrustedProxies([]).clientIp(request('::ffff:127.0.0.1', '1.2.3.4'))).to.equal('127.0.0.1');
  });

  it('walks X-Forwarded-For from the right past trusted hops to the first untrusted one', () => {
    expect(trusted.clientIp(request('10.1.1.1', '198.51.100.1, 203.0.113.9, 10.2.2.2'))).to.equal('203.0.113.9');
    expect(trusted.clientIp(request('::ffff:192.0.2.7', '198.51.100.1'))).to.equal('198.51.100.1');
    expect(trusted.clientIp(request('fd00::1', '2001:db8::5'))).to.equal('2001:db8::5');
  });

  it('falls back to the peer, or the leftmost hop, when every hop is trusted', () => {
    expect(trusted.clientIp(request('10.1.1.1'))).to.equal('10.1.1.1');
    expect(trusted.clientIp(request('10.1.1.1', '10.3.3.3, 10.4.4.4'))).to.equal('10.3.3.3');
  });
});
