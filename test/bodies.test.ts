import { expect } from 'chai';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { CORE, FIXTURE_PLUGINS, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

describe('plugins that ask for the body', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  const received: { body: string; headers: Record<string, unknown> }[] = [];
  let endlessClosed: Promise<void> = Promise.resolve();

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url?.startsWith('/stream/endless')) {
        // A body that outlasts the test's timeout (bounded: 12000 chunks, 60 s): only the gateway letting go stops it in time.
        res.writeHead(200, { 'content-type': 'text/plain' });
        let sent = 0;
        const timer = setInterval(() => (++sent > 12000 ? res.end() : res.write('tick\n')), 5);
        endlessClosed = new Promise((resolve) => res.once('close', () => resolve(clearInterval(timer))));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ body: Buffer.concat(chunks).toString(), headers: req.headers });
        const size = Number(new URL(req.url!, 'http://x').searchParams.get('size') ?? 0);
        const body = JSON.stringify({ path: req.url, padding: 'p'.repeat(size) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { bodyTools } from '${FIXTURE_PLUGINS}/body-tools.ts';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/inspect', upstream: 'app', plugins: [bodyTools({ inspectJson: true, limit: 1000 })] },
          { path: '/replace', upstream: 'app', plugins: [bodyTools({ replaceRequestWith: 'replaced body' })] },
          { path: '/stamp', upstream: 'app', plugins: [bodyTools({ stampResponse: true, responseLimit: 2000 })] },
          { path: '/stream/*', upstream: 'app', plugins: [bodyTools({ streamResponse: 'streamed by a plugin' })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('forwards a body a plugin has read, unchanged and with its length', async () => {
    const body = JSON.stringify({ order: 1, items: [1, 2] });
    const res = await send(`${gateway.url}/inspect`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(res.status).to.equal(200);
    const seen = received.at(-1)!;
    expect(seen.body).to.equal(body);
    expect(seen.headers['x-body-keys']).to.equal('order,items');
    expect(seen.headers['content-length']).to.equal(String(Buffer.byteLength(body)));
  });

  it('forwards a chunked body a plugin has read with a Content-Length', async () => {
    const res = await send(`${gateway.url}/inspect`, { method: 'POST', body: Readable.from(['{"a":', '1}']) });
    expect(res.status).to.equal(200);
    const seen = received.at(-1)!;
    expect(seen.body).to.equal('{"a":1}');
    expect(seen.headers['content-length']).to.equal('7');
    expect(seen.headers).not.to.have.property('transfer-encoding');
  });

  it('answers 400 when the body a plugin parses is not JSON, without calling the upstream', async () => {
    const before = received.length;
    const res = await send(`${gateway.url}/inspect`, { method: 'POST', body: '{nope' });
    expect(res.status).to.equal(400);
    expect(res.json().error).to.include({ code: 'TG_ERR_BAD_REQUEST', message: 'The request body is not valid JSON' });
    expect(received.length).to.equal(before);
  });

  it('answers 413 for a body over the limit, declared or streamed', async () => {
    const declared = await send(`${gateway.url}/inspect`, { method: 'POST', body: JSON.stringify({ a: 'x'.repeat(2000) }) });
    expect(declared.status).to.equal(413);
    expect(declared.json().error).to.deep.include({ code: 'TG_ERR_PAYLOAD_TOO_LARGE', details: { limit: 1000 } });
    const streamed = await send(`${gateway.url}/inspect`, { method: 'POST', body: Readable.from(['{"a":"', 'x'.repeat(600), 'x'.repeat(600), '"}']) });
    expect(streamed.status).to.equal(413);
  });

  it('sends a replacement request body with its own length', async () => {
    await send(`${gateway.url}/replace`, { method: 'POST', body: 'the original, which is longer' });
    const seen = received.at(-1)!;
    expect(seen.body).to.equal('replaced body');
    expect(seen.headers['content-length']).to.equal('13');
  });

  it('lets onResponse rewrite a buffered response body, with the length corrected', async () => {
    const res = await send(`${gateway.url}/stamp?size=10`);
    expect(res.json()).to.deep.equal({ path: '/stamp?size=10', padding: 'p'.repeat(10), gateway: true });
    expect(res.headers['content-length']).to.equal(String(Buffer.byteLength(res.text)));
  });

  it('answers 502 TG_ERR_RESPONSE_TOO_LARGE when the response is over the buffering limit', async () => {
    const res = await send(`${gateway.url}/stamp?size=5000`);
    expect(res.status).to.equal(502);
    expect(res.json().error.code).to.equal('TG_ERR_RESPONSE_TOO_LARGE');
  });

  it("stops receiving an upstream body a plugin replaced", async () => {
    const res = await send(`${gateway.url}/stream/endless`);
    expect(res.text).to.equal('streamed by a plugin');
    await endlessClosed;
  });

  it('keeps the upstream connection when a plugin replaces a small body (it has arrived whole, not cut off)', async () => {
    const sockets = new Map<number, Socket>();
    const track = (socket: Socket): void => void sockets.set(socket.remotePort ?? 0, socket);
    upstream.server.on('connection', track);
    try {
      const seen = upstream.requests.length;
      const res = await send(`${gateway.url}/stream/small?size=10`);
      expect(res.text).to.equal('streamed by a plugin');
      const asked = upstream.requests.slice(seen);
      expect(asked).to.have.length(1);
      // A connection the gateway cut would have closed before the answer reached the client; the
      // pause lets the upstream's side hear of it.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const socket = sockets.get(asked[0]!.remotePort);
      if (socket !== undefined) expect(socket.destroyed, 'the upstream connection is open').to.equal(false);
      for (const other of sockets.values()) expect(other.destroyed).to.equal(false);
    } finally {
      upstream.server.off('connection', track);
    }
  });

  it('sends a replacement stream chunked, dropping the upstream length', async () => {
    const res = await send(`${gateway.url}/stream/x?size=100`);
    expect(res.text).to.equal('streamed by a plugin');
    expect(res.headers).not.to.have.property('content-length');
    expect(res.headers['transfer-encoding']).to.equal('chunked');
  });
});
