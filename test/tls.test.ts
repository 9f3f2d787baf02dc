import { expect } from 'chai';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';
import { makeCertificate } from './support/certificates.ts';

function https1(port: number, ca: Buffer, options: { path?: string; maxVersion?: 'TLSv1.1' } = {}): Promise<{ status: number; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: options.path ?? '/x', ca, agent: false, maxVersion: options.maxVersion }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, alpn: (res.socket as import('node:tls').TLSSocket).alpnProtocol ?? false }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One HTTP/2 request. With `keepSession` the client leaves its session open, as browsers do. */
function http2(port: number, ca: Buffer, method: string, body?: string, keepSession = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`https://127.0.0.1:${port}`, { ca });
    session.on('error', reject);
    const stream = session.request({ ':method': method, ':path': '/x' }, { endStream: body === undefined });
    let text = '';
    let status = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk) => (text += chunk));
    stream.on('end', () => {
      if (!keepSession) session.close();
      resolve({ status, body: text });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function peerCertificateName(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().subject.CN as string);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS termination', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir: string;
  let config: string;
  let ca: Buffer;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => res.end(JSON.stringify({ headers: req.headers, body })));
    });
    dir = mkdtempSync(join(tmpdir(), 'tollgate-tls-'));
    const first = makeCertificate(dir, 'first');
    ca = Buffer.concat([readFileSync(first.cert), readFileSync(makeCertificate(dir, 'second').cert)]);
    writeFileSync(join(dir, 'current.crt'), readFileSync(first.cert));
    writeFileSync(join(dir, 'current.key'), readFileSync(first.key));
    config = join(dir, 'gateway.config.ts');
    writeFileSync(
      config,
      `import { defineConfig } from '${CORE}';
       export default defineConfig({
         listen: { port: 0, host: '127.0.0.1' },
         tls: { cert: 'current.crt', key: 'current.key' },
         upstreams: { app: { targets: ['${upstream.url}'] } },
         routes: [{ path: '/x', upstream: 'app' }],
       });`,
    );
    gateway = await startGatewayFrom(config);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('serves HTTP/1.1 over TLS and tells the upstream the client used https', async () => {
    const res = await https1(gateway.port, ca);
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body).headers['x-forwarded-proto']).to.equal('https');
  });

  it('speaks HTTP/2 to clients that offer it, forwarding bodies that have no Content-Length', async () => {
    const get = await http2(gateway.port, ca, 'GET');
    expect(get.status).to.equal(200);
    const seen = JSON.parse(get.body).headers;
    expect(seen.host).to.equal(`127.0.0.1:${upstream.port}`);
    expect(Object.keys(seen).filter((name) => name.startsWith(':'))).to.deep.equal([]);
    const post = await http2(gateway.port, ca, 'POST', 'h2 body');
    expect(JSON.parse(post.body).body).to.equal('h2 body');
  });

  it('refuses TLS older than 1.2', async () => {
    const error = await https1(gateway.port, ca, { maxVersion: 'TLSv1.1' }).then(() => null, (e: Error) => e);
    expect(error).to.be.instanceOf(Error);
  });

  it('drains an HTTP/2 connection the client keeps open: the stream in flight completes, then the gateway exits 0', async () => {
    let release: () => void = () => {};
    let arrived: () => void = () => {};
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    const slow = await startUpstream((_req, res) => {
      arrived();
      release = () => res.end('slow done');
    });
    const slowConfig = join(dir, 'slow.config.ts');
    writeFileSync(slowConfig, readFileSync(config, 'utf8').replace(upstream.url, slow.url));
    const draining = await startGatewayFrom(slowConfig);
    try {
      // The client keeps its session open, as browsers do: the drain must end it for the worker to exit.
      const response = http2(draining.port, ca, 'GET', undefined, true);
      await arrival;
      draining.child.kill('SIGTERM');
      await draining.waitForLog((l) => l.msg === 'draining' && l.inflight === 1);
      release();
      expect(await response).to.deep.equal({ status: 200, body: 'slow done' });
      expect(await draining.exited).to.equal(0);
    } finally {
      release();
      await draining.stop();
      await slow.close();
    }
  });

  it('picks up a renewed certificate on reload, without a restart', async () => {
    expect(await peerCertificateName(gateway.port, ca)).to.equal('first');
    writeFileSync(join(dir, 'current.crt'), readFileSync(join(dir, 'second.crt')));
    writeFileSync(join(dir, 'current.key'), readFileSync(join(dir, 'second.key')));
    gateway.child.kill('SIGHUP');
    await gateway.waitForLog((l) => l.msg === 'reload complete');
    expect(await peerCertificateName(gateway.port, ca)).to.equal('second');
  });
});
