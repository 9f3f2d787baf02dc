import { expect } from 'chai';
import { connect } from 'node:net';
import { CORE, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { errorCodeOf, firstStatus, rawExchange } from './raw-http.ts';

/** Sends `head`, then `chunk` every `everyMs` until the gateway answers or closes; reports what happened. */
function trickle(port: number, head: string, chunk: string, everyMs: number, maxChunks: number): Promise<{ text: string; chunksSent: number; closedByGateway: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    let chunksSent = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (chunksSent === maxChunks || socket.destroyed) {
          clearInterval(timer);
          if (!socket.destroyed) socket.destroy();
          resolve({ text, chunksSent, closedByGateway: false });
          return;
        }
        chunksSent++;
        socket.write(chunk);
      }, everyMs);
    });
    socket.on('data', (data: Buffer) => (text += data.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ text, chunksSent, closedByGateway: chunksSent < maxChunks });
    });
  });
}

describe('security: limits on what a client may send', () => {
  let app: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    app = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        server: { headersTimeout: '1s', requestTimeout: '2s', maxHeaderSize: 4096, maxHeaderCount: 20, maxUrlLength: 256, maxBodySize: 64 * 1024 },
        upstreams: { app: { targets: ['${app.url}'] } },
        routes: [
          { path: '/small/*', upstream: 'app', maxBodySize: 1024 },
          { path: '/*', upstream: 'app' },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await app?.close();
  });

  beforeEach(() => {
    app.requests.length = 0;
  });

  it('answers 431 past maxHeaderCount header fields (Node would drop the rest silently), forwarding nothing', async () => {
    const fields = Array.from({ length: 20 }, (_, i) => `X-F${i}: v\r\n`).join('');
    const { text } = await rawExchange(gateway.port, `GET /x HTTP/1.1\r\nHost: gw\r\n${fields}\r\n`);
    expect(firstStatus(text)).to.equal(431);
    expect(errorCodeOf(text)).to.equal('TG_ERR_HEADERS_TOO_LARGE');
    expect(text.toLowerCase()).to.contain('connection: close');
    expect(app.requests).to.deep.equal([]);
  });

  it('forwards a request at exactly maxHeaderCount fields with all of them', async () => {
    const fields = Array.from({ length: 18 }, (_, i) => `X-F${i}: v\r\n`).join('');
    const { text } = await rawExchange(gateway.port, `GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n${fields}\r\n`);
    expect(firstStatus(text)).to.equal(200);
    expect(app.requests[0]!.headers['x-f17']).to.equal('v');
  });

  it('answers 431 past maxHeaderSize bytes of head', async () => {
    const { text } = await rawExchange(gateway.port, `GET /x HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`);
    expect(firstStatus(text)).to.equal(431);
    expect(app.requests).to.deep.equal([]);
  });

  it('answers 414 past maxUrlLength', async () => {
    const { text } = await rawExchange(gateway.port, `GET /x?q=${'a'.repeat(300)} HTTP/1.1\r\nHost: gw\r\n\r\n`);
    expect(firstStatus(text)).to.equal(414);
    expect(errorCodeOf(text)).to.equal('TG_ERR_URI_TOO_LONG');
    expect(app.requests).to.deep.equal([]);
  });

  it("answers 413 for a declared Content-Length over the route's maxBodySize before reading the body", async () => {
    // The body is never sent: the answer must not wait for it.
    const { text, timedOut } = await rawExchange(gateway.port, 'POST /small/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 2048\r\n\r\n', 5_000);
    expect(timedOut).to.equal(false);
    expect(firstStatus(text)).to.equal(413);
    expect(errorCodeOf(text)).to.equal('TG_ERR_PAYLOAD_TOO_LARGE');
    expect(text.toLowerCase()).to.contain('connection: close');
    expect(app.requests).to.deep.equal([]);
  });

  it('answers 413 to a chunked body as it passes the limit, while the client is still sending', async () => {
    const result = await trickle(gateway.port, 'POST /small/upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n', `200\r\n${'x'.repeat(512)}\r\n`, 20, 200);
    expect(firstStatus(result.text), result.text).to.equal(413);
    expect(result.closedByGateway).to.equal(true);
    // 1 KiB is passed by the third 512-byte chunk; the client had 200 to send.
    expect(result.chunksSent).to.be.below(200);
  });

  it('applies the server-wide maxBodySize to routes without their own', async () => {
    const { text } = await rawExchange(gateway.port, `POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\n`);
    expect(firstStatus(text)).to.equal(413);
  });

  it('forwards a body within the limit', async () => {
    const { text } = await rawExchange(gateway.port, `POST /small/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n${'x'.repeat(1024)}`);
    expect(firstStatus(text)).to.equal(200);
  });

  it('closes a connection whose headers trickle in past headersTimeout (slowloris) with 408', async () => {
    const result = await trickle(gateway.port, 'GET /x HTTP/1.1\r\nHost: gw\r\n', 'X-A: b\r\n', 200, 50);
    expect(result.closedByGateway).to.equal(true);
    expect(firstStatus(result.text)).to.equal(408);
    expect(app.requests).to.deep.equal([]);
  });

  it('closes a connection whose body trickles in past requestTimeout with 408, though its head was already forwarded', async () => {
    const result = await trickle(gateway.port, 'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n', 'x', 200, 50);
    expect(result.closedByGateway).to.equal(true);
    expect(firstStatus(result.text)).to.equal(408);
    expect(errorCodeOf(result.text)).to.equal('TG_ERR_REQUEST_TIMEOUT');
  });
});
