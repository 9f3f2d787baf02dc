import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { request as httpRequest } from 'node:http';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

const GiB = 1024 ** 3;
const CHUNK = Buffer.alloc(256 * 1024, 'x');
// Generous against Node's own footprint (~60-90 MiB), far below the 1 GiB a buffered body would cost.
const PEAK_RSS_LIMIT = 250 * 1024 ** 2;

/** `total` bytes, produced as they are read (the same chunk, reused). */
function generate(total: number): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const size = Math.min(left, CHUNK.length);
      left -= size;
      this.push(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size));
    },
  });
}

/** The worker's peak resident memory, from the kernel. */
function peakRss(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

describe('streaming bodies', function () {
  this.timeout(120_000);
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url?.startsWith('/download')) {
        const size = Number(new URL(req.url, 'http://x').searchParams.get('bytes'));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        generate(size).pipe(res);
        return;
      }
      let received = 0;
      req.on('data', (chunk: Buffer) => (received += chunk.length));
      req.on('end', () => res.end(JSON.stringify({ received })));
    });
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { files: { targets: ['${upstream.url}'] } },
        routes: [{ path: '/*', upstream: 'files' }],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('streams a 1 GiB upload to the upstream with flat memory', async () => {
    const result = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: gateway.port, path: '/upload', method: 'POST', agent: false, headers: { 'content-length': GiB } },
        (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      generate(GiB).pipe(req);
    });
    expect(JSON.parse(result)).to.deep.equal({ received: GiB });
    expect(peakRss(gateway.workerPids[0]!)).to.be.below(PEAK_RSS_LIMIT);
  });

  it('streams a 1 GiB download from the upstream with flat memory', async () => {
    const received = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gateway.port, path: `/download?bytes=${GiB}`, agent: false }, (res) => {
        let count = 0;
        res.on('data', (chunk: Buffer) => (count += chunk.length));
        res.on('end', () => resolve(count));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(received).to.equal(GiB);
    expect(peakRss(gateway.workerPids[0]!)).to.be.below(PEAK_RSS_LIMIT);
  });

  it('streams a chunked upload of unknown length', async () => {
    const result = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/upload', method: 'POST', agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      generate(10 * 1024 * 1024 + 7).pipe(req);
    });
    expect(JSON.parse(result)).to.deep.equal({ received: 10 * 1024 * 1024 + 7 });
  });
});
