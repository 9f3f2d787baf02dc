import { expect } from 'chai';
import { connect } from 'node:net';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

/** Writes raw bytes, then resolves with everything the gateway sends back before closing. */
function raw(port: number, ...writes: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => writes.forEach((chunk) => socket.write(chunk)));
    let received = '';
    socket.on('data', (chunk) => (received += chunk));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

function errorCode(response: string): string {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)).error.code;
}

describe('malformed and slow requests', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        server: { headersTimeout: '500ms', maxHeaderSize: 2048 },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [{ path: '/*', upstream: 'app' }],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('answers a request Node cannot parse with 400 TG_ERR_BAD_REQUEST and closes', async () => {
    const response = await raw(gateway.port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    expect(response).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(response).to.contain('connection: close');
    expect(errorCode(response)).to.equal('TG_ERR_BAD_REQUEST');
  });

  it('answers headers over maxHeaderSize with 431 TG_ERR_HEADERS_TOO_LARGE', async () => {
    const response = await raw(gateway.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`);
    expect(response).to.match(/^HTTP\/1\.1 431 /);
    expect(errorCode(response)).to.equal('TG_ERR_HEADERS_TOO_LARGE');
  });

  it('answers a client that sends its headers too slowly with 408 TG_ERR_REQUEST_TIMEOUT', async () => {
    const response = await raw(gateway.port, 'GET / HTTP/1.1\r\nHost: x\r\n');
    expect(response).to.match(/^HTTP\/1\.1 408 /);
    expect(errorCode(response)).to.equal('TG_ERR_REQUEST_TIMEOUT');
    expect(upstream.requests).to.have.length(0);
  });
});
