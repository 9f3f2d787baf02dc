import { expect } from 'chai';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { errorCodeOf, firstStatus, rawExchange } from './raw-http.ts';

const get = (port: number, host: string, path = '/x', extra = ''): Promise<{ text: string }> =>
  rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);

describe('security: Host header', () => {
  let api: TestUpstream;
  let fallback: TestUpstream;
  let hostOnly: GatewayProcess;
  let withDefault: GatewayProcess;

  before(async () => {
    api = await startUpstream();
    fallback = await startUpstream();
    hostOnly = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { api: { targets: ['${api.url}'] } },
        routes: [{ path: '/*', host: 'api.example', upstream: 'api' }],
      });
    `);
    withDefault = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { keyAuth } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { api: { targets: ['${api.url}'] }, fallback: { targets: ['${fallback.url}'] } },
        routes: [
          { path: '/*', host: 'admin.example', upstream: 'api', plugins: [keyAuth({ consumers: { ops: { keyHashes: ['${hashKey('ops-key')}'] } } })] },
          { path: '/*', upstream: 'fallback' },
        ],
      });
    `);
  });

  after(async () => {
    await hostOnly?.stop();
    await withDefault?.stop();
    await api?.close();
    await fallback?.close();
  });

  beforeEach(() => {
    api.requests.length = 0;
    fallback.requests.length = 0;
  });

  it('answers 404 for a host no route names when no route is for any host', async () => {
    const { text } = await get(hostOnly.port, 'evil.example');
    expect(firstStatus(text)).to.equal(404);
    expect(api.requests).to.deep.equal([]);
  });

  it('matches a host whatever its case, port or trailing dot', async () => {
    for (const host of ['API.EXAMPLE', 'api.example:8080', 'api.example.', 'Api.Example.:80']) {
      const { text } = await get(hostOnly.port, host);
      expect(firstStatus(text), host).to.equal(200);
    }
  });

  it("does not let a fully qualified host (trailing dot) skip its routes' plugins for the default route", async () => {
    const { text } = await get(withDefault.port, 'admin.example.');
    expect(firstStatus(text)).to.equal(401);
    expect(fallback.requests).to.deep.equal([]);
  });

  for (const host of ['admin.example@evil.example', 'admin.example/x', 'admin.example\\x', 'admin example', 'admin.example:80:80x', '[::1']) {
    it(`refuses the malformed Host ${JSON.stringify(host)} with 400`, async () => {
      const { text } = await get(withDefault.port, host);
      expect(firstStatus(text)).to.equal(400);
      expect(api.requests).to.deep.equal([]);
      expect(fallback.requests).to.deep.equal([]);
    });
  }

  it('refuses two Host fields with 400 (RFC 9112 §3.2)', async () => {
    const { text } = await get(withDefault.port, 'fallback.example', '/x', 'Host: admin.example\r\n');
    expect(firstStatus(text)).to.equal(400);
    expect(errorCodeOf(text)).to.equal('TG_ERR_BAD_REQUEST');
    expect(text).to.contain('more than one Host header');
  });

  it('never builds a Location from the Host header: the gateway answers without redirects', async () => {
    for (const path of ['/x', '/x/', '/%2e%2e/x']) {
      const { text } = await get(hostOnly.port, 'evil.example', path);
      expect(text.toLowerCase()).to.not.contain('location:');
      expect(text).to.not.contain('evil.example');
    }
  });
});
