import { expect } from 'chai';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { rawExchange } from './raw-http.ts';

const SPOOFED = {
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  forwarded: 'for=203.0.113.9;host=evil.example',
  'x-real-ip': '203.0.113.9',
  'x-client-ip': '203.0.113.9',
  'true-client-ip': '203.0.113.9',
  'x-forwarded-port': '443',
  'x-forwarded-prefix': '/admin',
  'x-original-url': '/admin/users',
  'x-rewrite-url': '/admin/users',
  'x-consumer-id': 'root',
};

/**
 * Headers upstreams take as facts (client IP, scheme, host, the consumer, the original URL) come
 * from the gateway, never from an untrusted client, and a client's `Connection` header cannot
 * remove them (CVE-2024-45410, Traefik; CVE-2022-31813, Apache httpd mod_proxy X-Forwarded-*).
 */
describe('security: hop-by-hop and spoofed headers', () => {
  let app: TestUpstream;
  let gateway: GatewayProcess;
  let trustingGateway: GatewayProcess;
  let strictGateway: GatewayProcess;

  before(async () => {
    app = await startUpstream((req, res) => {
      req.resume();
      // An upstream that tries to strip a header the gateway adds on the way back.
      res.writeHead(200, { connection: 'x-frame-options, x-request-id', 'keep-alive': 'timeout=5', 'content-type': 'text/plain' });
      res.end('ok');
    });
    const config = (extra: string): string => `
      import { defineConfig } from '${CORE}';
      import { headers, keyAuth } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        ${extra}
        upstreams: { app: { targets: ['${app.url}'] } },
        plugins: [headers({ response: { set: { 'x-frame-options': 'DENY' } } })],
        routes: [
          { path: '/keyed/*', upstream: 'app', plugins: [keyAuth({ consumers: { acme: { keyHashes: ['${hashKey('acme-key')}'] } } })] },
          { path: '/*', upstream: 'app' },
        ],
      });
    `;
    gateway = await startGateway(config(''));
    trustingGateway = await startGateway(config(`trustProxy: ['127.0.0.1'],`));
    strictGateway = await startGateway(config(`server: { headersWithUnderscores: 'reject' },`));
  });

  after(async () => {
    await gateway?.stop();
    await trustingGateway?.stop();
    await strictGateway?.stop();
    await app?.close();
  });

  beforeEach(() => {
    app.requests.length = 0;
  });

  it('replaces or drops forwarding, client-IP, URL-override and consumer headers an untrusted client sends', async () => {
    await send(`${gateway.url}/keyed/x`, { headers: { ...SPOOFED, 'x-api-key': 'acme-key' } });
    const seen = app.requests[0]!.headers;
    expect(seen['x-forwarded-for']).to.equal('127.0.0.1');
    expect(seen['x-forwarded-proto']).to.equal('http');
    expect(seen['x-forwarded-host']).to.equal(`127.0.0.1:${gateway.port}`);
    expect(seen['x-consumer-id']).to.equal('acme');
    for (const name of ['forwarded', 'x-real-ip', 'x-client-ip', 'true-client-ip', 'x-forwarded-port', 'x-forwarded-prefix', 'x-original-url', 'x-rewrite-url']) {
      expect(seen, name).to.not.have.property(name);
    }
  });

  it('drops a client-sent consumer header on a route without auth', async () => {
    await send(`${gateway.url}/open`, { headers: { 'x-consumer-id': 'root' } });
    expect(app.requests[0]!.headers).to.not.have.property('x-consumer-id');
  });

  it('drops header names with underscores, which CGI-style upstreams read as dashes (X_Consumer_Id)', async () => {
    await send(`${gateway.url}/open`, { headers: { x_consumer_id: 'root', 'x_forwarded_for': '203.0.113.9', 'x-with-dash': 'kept' } });
    const seen = app.requests[0]!.headers;
    expect(seen).to.not.have.property('x_consumer_id');
    expect(seen).to.not.have.property('x_forwarded_for');
    expect(seen['x-with-dash']).to.equal('kept');
  });

  it("refuses header names with underscores with 400 under headersWithUnderscores: 'reject'", async () => {
    const response = await send(`${strictGateway.url}/open`, { headers: { x_consumer_id: 'root' } });
    expect(response.status).to.equal(400);
    expect(response.json().error.message).to.contain('underscore');
    expect(app.requests).to.deep.equal([]);
  });

  it('keeps what a trusted proxy says about the client, extending its X-Forwarded-For', async () => {
    await send(`${trustingGateway.url}/open`, { headers: SPOOFED });
    const seen = app.requests[0]!.headers;
    expect(seen['x-forwarded-for']).to.equal('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-host']).to.equal('evil.example');
    expect(seen['x-real-ip']).to.equal('203.0.113.9');
    expect(seen['x-original-url']).to.equal('/admin/users');
    // Even a trusted proxy cannot name the consumer: only the gateway's auth does.
    expect(seen).to.not.have.property('x-consumer-id');
  });

  it('does not let Connection name away the headers the gateway sets upstream', async () => {
    const { text } = await rawExchange(
      gateway.port,
      'GET /keyed/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: acme-key\r\n' +
        'Connection: close, x-forwarded-for, x-forwarded-proto, x-forwarded-host, x-request-id, x-consumer-id\r\n\r\n',
    );
    expect(text).to.match(/^HTTP\/1\.1 200 /);
    const seen = app.requests[0]!.headers;
    expect(seen['x-forwarded-for']).to.equal('127.0.0.1');
    expect(seen['x-forwarded-proto']).to.equal('http');
    expect(seen['x-forwarded-host']).to.equal('gw');
    expect(seen['x-request-id']).to.be.a('string').and.not.equal('');
    expect(seen['x-consumer-id']).to.equal('acme');
  });

  it('drops hop-by-hop fields and every field Connection names from the client', async () => {
    const { text } = await rawExchange(
      gateway.port,
      'GET /open HTTP/1.1\r\nHost: gw\r\nConnection: close, x-secret\r\nX-Secret: s\r\nKeep-Alive: timeout=99\r\nTE: trailers\r\n' +
        'Trailer: x-t\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n',
    );
    expect(text).to.match(/^HTTP\/1\.1 200 /);
    const seen = app.requests[0]!.headers;
    for (const name of ['x-secret', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection']) expect(seen, name).to.not.have.property(name);
    expect(seen['x-kept']).to.equal('yes');
  });

  it("keeps the gateway's own response headers when the upstream's Connection names them", async () => {
    const response = await send(`${gateway.url}/open`);
    expect(response.headers['x-frame-options']).to.equal('DENY');
    expect(response.headers['x-request-id']).to.be.a('string').and.not.equal('');
    expect(response.headers).to.not.have.property('keep-alive');
  });
});
