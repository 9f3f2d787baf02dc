import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { HeaderMap, reply } from '../core/index.ts';
import { nullRecord } from '../core/null-record.ts';
import { REPO } from './support/gateway-process.ts';

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

describe('records of names from a request (headers, path parameters, plugin state)', () => {
  it('inherit nothing: __proto__ and constructor are fields like any other, toString is absent', () => {
    const record = nullRecord<string>();
    expect(record.constructor).to.equal(undefined);
    expect('toString' in record).to.equal(false);
    record['__proto__'] = 'a';
    record['constructor'] = 'b';
    expect(Object.keys(record)).to.deep.equal(['__proto__', 'constructor']);
    expect(record['__proto__']).to.equal('a');
    expect(Object.getPrototypeOf(Object.getPrototypeOf(record))).to.equal(null);
  });

  it("stay in V8's fast mode when filled with a request's headers, where Object.create(null) makes a dictionary", () => {
    // V8's own check, in a child with natives syntax; Object.create(null) is the control.
    const script = `
      import { nullRecord } from ${JSON.stringify(`${REPO}core/null-record.ts`)};
      const fill = (record) => { for (const name of ['host', 'accept', 'user-agent', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) record[name] = 'v'; return record; };
      console.log(JSON.stringify([%HasFastProperties(fill(nullRecord())), %HasFastProperties(fill(Object.create(null)))]));
    `;
    const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).to.equal('');
    expect(JSON.parse(run.stdout)).to.deep.equal([true, false]);
  });
});
