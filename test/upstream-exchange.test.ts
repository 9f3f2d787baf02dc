import { expect } from 'chai';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { Pool } from 'undici';
import type { HeaderRecord } from '../core/http/header-map.ts';
import { HOLD_WITHOUT_PAUSE, UpstreamExchange } from '../core/upstream/upstream-exchange.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

interface UpstreamHead {
  status: number;
  headers: HeaderRecord;
}

/** Dispatches a GET through `pool`; resolves with the head and the exchange holding the body. */
async function exchangeFor(pool: Pool, path: string, onFinish: () => void): Promise<{ head: UpstreamHead; exchange: UpstreamExchange }> {
  let exchange!: UpstreamExchange;
  const head = await new Promise<UpstreamHead>((resolve, reject) => {
    exchange = new UpstreamExchange({
      exchangeHead: (_exchange, status, headers) => resolve({ status, headers }),
      exchangeFailed: (_exchange, error) => reject(error),
      exchangeFinished: onFinish,
    });
    pool.dispatch({ method: 'GET', path, headers: {} }, exchange);
  });
  return { head, exchange };
}

async function collect(exchange: UpstreamExchange): Promise<Buffer> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  exchange.pipeTo(sink, (error) => sink.destroy(error));
  await once(sink, 'end');
  return Buffer.concat(chunks);
}

describe('upstream exchange', () => {
  const big = Buffer.alloc(8 * 1024 * 1024, 'b');
  let upstream: TestUpstream;
  let pool: Pool;
  let bigWritten: Promise<boolean>;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === '/small') {
        res.writeHead(200, { 'content-length': '5' });
        res.end('small');
        return;
      }
      res.writeHead(200, { 'content-length': String(big.length) });
      // Resolves true once the whole body left the server: only possible if the gateway kept reading.
      bigWritten = new Promise((resolve) => {
        res.once('finish', () => resolve(true));
        res.once('close', () => resolve(res.writableFinished));
      });
      res.end(big);
    });
    pool = new Pool(upstream.url, { connections: 1 });
  });

  after(async () => {
    await pool.destroy();
    await upstream.close();
  });

  it('receives a small body whole before anyone claims it, so its connection is free again', async () => {
    let finished = false;
    const { head, exchange } = await exchangeFor(pool, '/small', () => (finished = true));
    expect(head.status).to.equal(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(finished, 'the exchange finished before its body was claimed').to.equal(true);
    expect((await collect(exchange)).toString()).to.equal('small');
  });

  it('keeps the connection of a small body that is discarded unread (a retried 503, say)', async () => {
    const first = await exchangeFor(pool, '/small', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    first.exchange.discard();
    const second = await exchangeFor(pool, '/small', () => {});
    expect((await collect(second.exchange)).toString()).to.equal('small');
    const [a, b] = upstream.requests.slice(-2);
    expect(b!.remotePort, 'the second request came on the first one\'s connection').to.equal(a!.remotePort);
  });

  it('holds the upstream of a large unclaimed body back, and delivers all of the body when claimed', async () => {
    let finished = false;
    const { exchange } = await exchangeFor(pool, '/big', () => (finished = true));
    const early = await Promise.race([bigWritten, new Promise((resolve) => setTimeout(() => resolve('still writing'), 300))]);
    expect(early, 'the upstream is held back while nobody claims the body').to.equal('still writing');
    expect(finished).to.equal(false);
    expect(HOLD_WITHOUT_PAUSE).to.be.below(big.length);
    const body = await collect(exchange);
    expect(body.length).to.equal(big.length);
    expect(body.equals(big)).to.equal(true);
    expect(await bigWritten).to.equal(true);
    expect(finished).to.equal(true);
  });
});
