import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { WebSocket, WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { makeCertificate } from './support/certificates.ts';

describe('HTTPS upstreams', () => {
  let server: Http2SecureServer;
  let gateway: GatewayProcess;
  const versions: string[] = [];

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-upstream-tls-'));
    const { cert, key } = makeCertificate(dir, 'upstream');
    // An upstream that speaks HTTP/2 and HTTP/1.1, and says which one each request came over.
    server = createSecureServer({ cert: readFileSync(cert), key: readFileSync(key), allowHTTP1: true }, (req, res) => {
      versions.push(req.httpVersion);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`over ${req.httpVersion}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: {
          h2: { targets: ['${origin}'], pool: { http2: true }, tls: { ca: '${cert}' } },
          h1: { targets: ['${origin}'], tls: { ca: '${cert}' } },
          untrusted: { targets: ['${origin}'], retries: { attempts: 0 } },
        },
        routes: [
          { path: '/h2', upstream: 'h2' },
          { path: '/h1', upstream: 'h1' },
          { path: '/untrusted', upstream: 'untrusted' },
        ],
      });
    `);
  });
  after(async () => {
    await gateway?.stop();
    server?.close();
  });

  it('speaks HTTP/2 to a target that offers it, when the upstream allows it', async () => {
    const res = await send(`${gateway.url}/h2`);
    expect(res.status).to.equal(200);
    expect(res.text).to.equal('over 2.0');
  });

  it('speaks HTTP/1.1 over TLS by default, verifying the target against the configured CA', async () => {
    const res = await send(`${gateway.url}/h1`);
    expect(res.text).to.equal('over 1.1');
  });

  it('refuses a target whose certificate it cannot verify, with 502', async () => {
    const before = versions.length;
    const res = await send(`${gateway.url}/untrusted`);
    expect(res.status).to.equal(502);
    expect(versions.length, 'no request reached the upstream').to.equal(before);
  });
});

describe('WebSockets to HTTPS upstreams', () => {
  let server: HttpsServer;
  let gateway: GatewayProcess;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-upstream-wss-'));
    const { cert, key } = makeCertificate(dir, 'upstream');
    server = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) });
    new WebSocketServer({ server }).on('connection', (socket) => socket.on('message', (data) => socket.send(`echo ${String(data)}`)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { trusted: { targets: ['${origin}'], tls: { ca: '${cert}' } }, untrusted: { targets: ['${origin}'] } },
        routes: [{ path: '/trusted', upstream: 'trusted' }, { path: '/untrusted', upstream: 'untrusted' }],
      });
    `);
  });
  after(async () => {
    await gateway?.stop();
    server?.close();
  });

  it("verifies the target with the upstream's tls.ca, as its pools do, and refuses one it cannot verify with 502", async () => {
    const ws = gateway.url.replace('http:', 'ws:');
    const socket = new WebSocket(`${ws}/trusted`);
    await once(socket, 'open');
    socket.send('hi');
    const [data] = await once(socket, 'message');
    expect(String(data)).to.equal('echo hi');
    socket.close();
    const refused = new WebSocket(`${ws}/untrusted`);
    const [, res] = (await once(refused, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).to.equal(502);
  });
});
