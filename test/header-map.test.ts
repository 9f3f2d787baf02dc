import { expect } from 'chai';
import { HeaderMap, reply } from '../core/index.ts';

describe('HeaderMap', () => {
  it('reads and writes names case-insensitively over the object it wraps, without copying it', () => {
    const record: Record<string, string | string[] | undefined> = Object.create(null);
    const headers = new HeaderMap(record);
    headers.set('X-Tenant', 'acme');
    expect(headers.get('x-tenant')).to.equal('acme');
    expect(record['x-tenant']).to.equal('acme');
    expect(headers.has('X-TENANT')).to.equal(true);
    expect(headers.delete('x-Tenant')).to.equal(true);
    expect(headers.delete('x-tenant')).to.equal(false);
  });

  it('keeps repeated values apart, joining them only when read as one', () => {
    const headers = new HeaderMap();
    headers.append('Set-Cookie', 'a=1').append('set-cookie', 'b=2').append('set-cookie', 'c=3');
    expect(headers.getAll('set-cookie')).to.deep.equal(['a=1', 'b=2', 'c=3']);
    expect(headers.get('set-cookie')).to.equal('a=1, b=2, c=3');
    expect([...headers.entries()]).to.deep.equal([['set-cookie', ['a=1', 'b=2', 'c=3']]]);
    expect(headers.getAll('missing')).to.deep.equal([]);
  });
});

describe('reply helpers', () => {
  it('builds JSON and text replies', () => {
    expect(reply.json(403, { error: 'no' }, { 'x-why': 'plan' })).to.deep.equal({ status: 403, json: { error: 'no' }, headers: { 'x-why': 'plan' } });
    expect(reply.text(429, 'slow down')).to.deep.equal({ status: 429, body: 'slow down', headers: { 'content-type': 'text/plain; charset=utf-8' } });
  });
});
