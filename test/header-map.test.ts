import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
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

describe('HeaderMap, removing a field', () => {
  it('hides the field from every read, and node:http gets a record without it', async () => {
    const headers = new HeaderMap(nullRecord());
    headers.set('x-api-key', 'secret').set('accept', 'text/plain');
    headers.delete('X-Api-Key');
    expect(headers.has('x-api-key')).to.equal(false);
    expect(headers.get('x-api-key')).to.equal(undefined);
    expect([...headers.entries()]).to.deep.equal([['accept', 'text/plain']]);
    const defined = headers.toDefinedRecord();
    expect(Object.keys(defined)).to.deep.equal(['accept']);
    // node:http refuses an undefined value (ERR_HTTP_INVALID_HEADER_VALUE); the defined record it takes.
    const server = createServer((_req, res) => res.writeHead(200, headers.toDefinedRecord()).end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const res = await request(`http://127.0.0.1:${port}/`);
      expect(res.statusCode).to.equal(200);
      expect(res.headers['x-api-key']).to.equal(undefined);
      expect(res.headers.accept).to.equal('text/plain');
      await res.body.text();
    } finally {
      server.close();
    }
  });

  it('is the same record for node:http when nothing was removed (no copy)', () => {
    const record = nullRecord<string>();
    const headers = new HeaderMap(record);
    headers.set('accept', 'text/plain');
    expect(headers.toDefinedRecord()).to.equal(record);
  });

  it("keeps the record in V8's fast mode, where delete would make it a dictionary", () => {
    const script = `
      import { HeaderMap } from ${JSON.stringify(`${REPO}core/http/header-map.ts`)};
      import { nullRecord } from ${JSON.stringify(`${REPO}core/null-record.ts`)};
      const fill = () => { const record = nullRecord(); for (const name of ['host', 'accept', 'x-api-key', 'x-forwarded-for', 'x-request-id']) record[name] = 'v'; return record; };
      const removed = fill();
      new HeaderMap(removed).delete('x-api-key');
      const deleted = fill();
      delete deleted['x-api-key'];
      console.log(JSON.stringify([%HasFastProperties(removed), %HasFastProperties(deleted)]));
    `;
    const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).to.equal('');
    expect(JSON.parse(run.stdout)).to.deep.equal([true, false]);
  });
});

describe('reply helpers', () => {
  it('builds JSON and text replies', () => {
    expect(reply.json(403, { error: 'no' }, { 'x-why': 'plan' })).to.deep.equal({ status: 403, json: { error: 'no' }, headers: { 'x-why': 'plan' } });
    expect(reply.text(429, 'slow down')).to.deep.equal({ status: 429, body: 'slow down', headers: { 'content-type': 'text/plain; charset=utf-8' } });
  });
});
