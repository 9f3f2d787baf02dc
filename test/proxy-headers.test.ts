import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { buildUpstreamHeaders, stripResponseHopByHop } from '../core/http/proxy-headers.ts';
import { TrustedProxies } from '../core/http/trusted-proxies.ts';

describe('response hop-by-hop fields', () => {
  it("answers with a copy without them and leaves the upstream's header object as it was", () => {
    const upstream = { 'content-type': 'application/json', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'x-kept': 'yes' };
    const stripped = stripResponseHopByHop(upstream);
    expect(stripped).to.deep.equal({ 'content-type': 'application/json', 'x-kept': 'yes' });
    expect(upstream).to.have.property('connection', 'keep-alive');
    expect(upstream).to.have.property('keep-alive', 'timeout=5');
  });

  it('drops the fields Connection names, keeping repeated values of the rest', () => {
    const stripped = stripResponseHopByHop({ connection: 'x-private, Keep-Alive', 'x-private': 'secret', 'set-cookie': ['a=1', 'b=2'], 'proxy-authenticate': 'Basic' });
    expect(stripped).to.deep.equal({ 'set-cookie': ['a=1', 'b=2'] });
  });

  it('copies a field named __proto__ as a field, not as the prototype of the copy', () => {
    // As undici hands it over: an own property, here repeated.
    const upstream: Record<string, string | string[]> = { connection: 'keep-alive', 'x-kept': 'yes' };
    Object.defineProperty(upstream, '__proto__', { value: ['a', 'b'], enumerable: true, configurable: true, writable: true });
    const stripped = stripResponseHopByHop(upstream);
    const names: string[] = [];
    for (const name in stripped) names.push(name);
    expect(names).to.have.members(['x-kept', '__proto__']);
    expect(Object.getOwnPropertyDescriptor(stripped, '__proto__')?.value).to.deep.equal(['a', 'b']);
    expect(Object.getPrototypeOf(stripped)).to.equal(Object.prototype);
  });

  it('hands back the same object when there is nothing to remove', () => {
    const upstream = { 'content-type': 'text/plain', 'content-length': '2' };
    expect(stripResponseHopByHop(upstream)).to.equal(upstream);
  });
});

describe('request headers sent upstream', () => {
  const options = { trusted: new TrustedProxies([]), consumerHeader: 'x-consumer-id', protocol: 'http', dropUnderscores: false };
  const request = (headers: Record<string, string>): IncomingMessage =>
    ({ headers, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;

  it('leave out a Content-Length of 0 (undici states an empty body itself) and keep any other', () => {
    const empty = buildUpstreamHeaders(request({ host: 'a.example', 'content-length': '0', accept: '*/*' }), options, 'id-1');
    expect(empty).to.not.have.property('content-length');
    expect(empty).to.include({ accept: '*/*', 'x-request-id': 'id-1' });
    const sized = buildUpstreamHeaders(request({ host: 'a.example', 'content-length': '12' }), options, 'id-2');
    expect(sized).to.include({ 'content-length': '12' });
  });
});
