import { expect } from 'chai';
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { hashKey } from '../plugins/key-auth/key-hash.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';
import { rawExchange, statuses } from './security/raw-http.ts';

/** A WebSocket echo server on loopback that remembers the upgrade requests it accepted. */
async function echoServer(): Promise<{ url: string; upgrades: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const upgrades: IncomingHttpHeaders[] = [];
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  server.on('connection', (socket, req) => {
    upgrades.push(req.headers);
    socket.on('message', (data, binary) => socket.send(data, { binary }));
  });
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
    close: () => new Promise((resolve) => {
      for (const client of server.clients) client.terminate();
      server.close(() => resolve());
    }),
  };
}

/** Opens a WebSocket; resolves with it once open, or with the HTTP status the upgrade was refused with. */
function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => resolve(socket));
    socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    socket.once('error', reject);
  });
}

async function echo(socket: WebSocket, text: string): Promise<string> {
  socket.send(text);
  const [data] = await once(socket, 'message');
  return String(data);
}

describe('websocket', () => {
  let upstream: Awaited<ReturnType<typeof echoServer>>;
  let gateway: GatewayProcess;
  let ws = '';

  before(async () => {
    upstream = await echoServer();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { keyAuth, rateLimit } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        shutdown: { drainTimeout: '1s' },
        upstreams: { chat: { targets: ['${upstream.url}'] }, gone: { targets: ['http://127.0.0.1:${await closedPort()}'] } },
        routes: [
          { path: '/chat', upstream: 'chat', plugins: [keyAuth({ consumers: { alice: { keyHashes: ['${hashKey('alice-key')}'] } } })] },
          { path: '/limited', upstream: 'chat', plugins: [rateLimit({ limit: 2, window: '10m', by: 'route' })] },
          { path: '/open', upstream: 'chat' },
          { path: '/gone', upstream: 'gone' },
        ],
      });
    `);
    ws = gateway.url.replace('http:', 'ws:');
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('proxies a WebSocket through the route, with the consumer and forwarding headers upstream', async () => {
    const socket = await open(`${ws}/chat`, { 'x-api-key': 'alice-key' });
    expect(socket).to.be.instanceOf(WebSocket);
    expect(await echo(socket as WebSocket, 'hello')).to.equal('hello');
    expect(await echo(socket as WebSocket, 'x'.repeat(100_000))).to.have.length(100_000);
    const seen = upstream.upgrades.at(-1)!;
    expect(seen['x-consumer-id']).to.equal('alice');
    expect(seen['x-forwarded-for']).to.equal('127.0.0.1');
    expect(seen).not.to.have.property('x-api-key');
    (socket as WebSocket).close();
  });

  it('refuses an upgrade the route\'s auth refuses, with its status', async () => {
    const before = upstream.upgrades.length;
    expect(await open(`${ws}/chat`)).to.equal(401);
    expect(await open(`${ws}/chat`, { 'x-api-key': 'wrong' })).to.equal(401);
    expect(upstream.upgrades.length).to.equal(before);
  });

  it('applies the edge checks to upgrades too: path spellings, Host, underscore headers', async () => {
    const before = upstream.upgrades.length;
    expect(await open(`${ws}/x/..;/chat`)).to.equal(400);
    expect(await open(`${ws}/%63hat`, { 'x-api-key': 'wrong' })).to.equal(401);
    expect(await open(`${ws}/chat`, { host: 'a.example@b.example' })).to.equal(400);
    expect(upstream.upgrades.length).to.equal(before);
    const socket = await open(`${ws}/%63hat`, { 'x-api-key': 'alice-key', x_consumer_id: 'root' });
    expect(socket).to.be.instanceOf(WebSocket);
    (socket as WebSocket).close();
    expect(upstream.upgrades.at(-1)).to.not.have.property('x_consumer_id');
  });

  it('counts upgrades against the route\'s rate limit', async () => {
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await open(`${ws}/limited`));
    expect(results.slice(0, 2).every((r) => r instanceof WebSocket)).to.equal(true);
    expect(results[2]).to.equal(429);
    for (const r of results) if (r instanceof WebSocket) r.close();
  });

  it('logs one access line per upgrade: when its tunnel closes (101) and when it is refused, with the code', async () => {
    const socket = (await open(`${ws}/open`)) as WebSocket;
    expect(await echo(socket, 'logged')).to.equal('logged');
    socket.close();
    const tunnel = await gateway.waitForLog((line) => line.msg === 'request' && line.websocket === true && line.path === '/open');
    expect(tunnel).to.include({ method: 'GET', route: '* /open', status: 101, upstream: upstream.url, code: null });
    expect(tunnel.upstreamMs).to.be.a('number');
    expect(await open(`${ws}/chat`)).to.equal(401);
    const refused = await gateway.waitForLog((line) => line.msg === 'request' && line.websocket === true && line.path === '/chat' && line.status === 401);
    expect(refused.code).to.equal('TG_ERR_UNAUTHORIZED');
  });

  it('answers 404 for an upgrade no route matches, and 502 when the upstream cannot be reached', async () => {
    expect(await open(`${ws}/nowhere`)).to.equal(404);
    expect(await open(`${ws}/gone`)).to.equal(502);
  });

  it('lets an open WebSocket go on while the worker drains, then cuts it at the drain timeout and exits 0', async () => {
    const socket = (await open(`${ws}/open`)) as WebSocket;
    const closed = once(socket, 'close');
    const exited = gateway.stop('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await echo(socket, 'still here')).to.equal('still here');
    await closed;
    expect(await exited).to.equal(0);
  });
});

describe('websocket: an upgrade the upstream refuses', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    // An upstream that speaks no WebSocket: it answers every request, upgrade or not, and keeps the
    // connection open for more.
    upstream = await startUpstream((req, res) => {
      if (req.url === '/silent') return; // takes the upgrade and never answers
      res.writeHead(req.headers.upgrade ? 426 : 200, { 'content-type': 'text/plain', upgrade: 'websocket' }).end(req.headers.upgrade ? 'upgrade required' : 'secret');
    });
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { keyAuth } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/admin', upstream: 'app', plugins: [keyAuth({ consumers: { alice: { keyHashes: ['${hashKey('alice-key')}'] } } })] },
          { path: '/ws', upstream: 'app' },
          { path: '/silent', upstream: 'app', timeouts: { headers: '300ms' } },
        ],
      });
    `);
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('relays the refusal and closes: what the client sends after it never reaches the upstream past the route\'s plugins', async () => {
    // WebSocket smuggling: were the connection a tunnel from here on, this GET would reach /admin
    // without the key its route demands.
    const { text, timedOut } = await rawExchange(gateway.port, [
      'GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      'GET /admin HTTP/1.1\r\nHost: gw\r\n\r\n',
    ]);
    expect(timedOut).to.equal(false);
    expect(statuses(text)).to.deep.equal([426]);
    expect(text).to.match(/\r\nconnection: close\r\n/i).and.to.include('upgrade required').and.not.to.include('secret');
    expect(upstream.requests.map((request) => request.url)).to.deep.equal(['/ws']);
  });

  it("answers 504 when the upstream takes the upgrade and never answers, within the route's headers timeout", async () => {
    const { text, timedOut } = await rawExchange(gateway.port, 'GET /silent HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    expect(timedOut).to.equal(false);
    expect(statuses(text)).to.deep.equal([504]);
    expect(text).to.include('TG_ERR_UPSTREAM_TIMEOUT');
  });
});
