import { expect } from 'chai';
import { stripResponseHopByHop } from '../core/http/proxy-headers.ts';

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

  it('hands back the same object when there is nothing to remove', () => {
    const upstream = { 'content-type': 'text/plain', 'content-length': '2' };
    expect(stripResponseHopByHop(upstream)).to.equal(upstream);
  });
});
