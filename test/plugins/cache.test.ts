import { expect } from 'chai';
import { request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send, type TestResponse } from '../support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const TOKEN = 'cache-admin-token-0123456789';

/** An upstream whose answers the tests pick by path, counting how often each path is asked. */
function origin() {
  const hits = new Map<string, number>();
  // Requests in progress and the most at once, by path.
  const active = new Map<string, number>();
  const peaks = new Map<string, number>();
  let failing = false;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    const count = (hits.get(path) ?? 0) + 1;
    hits.set(path, count);
    active.set(path, (active.get(path) ?? 0) + 1);
    peaks.set(path, Math.max(peaks.get(path) ?? 0, active.get(path)!));
    res.once('close', () => active.set(path, active.get(path)! - 1));
    req.resume();
    const body = (text: string, headers: Record<string, string> = {}, status = 200): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    switch (path) {
      case '/fresh':
      case '/prefix/a':
      case '/prefix/b':
        return body(`${path} #${count}`, { 'cache-control': 'max-age=60' });
      case '/short':
        return body(`short #${count}`, { 'cache-control': 'max-age=1' });
      case '/no-store':
        return body(`#${count}`, { 'cache-control': 'no-store' });
      case '/private':
        return body(`#${count}`, { 'cache-control': 'private, max-age=60' });
      case '/cookie':
        return body(`#${count}`, { 'cache-control': 'max-age=60', 'set-cookie': 'session=1' });
      case '/silent':
        return body(`#${count}`);
      case '/vary':
        return body(`${req.headers['accept-language']} #${count}`, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
      case '/etag':
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=1' });
          return void res.end();
        }
        return body(`etag #${count}`, { etag: '"v1"', 'cache-control': 'max-age=1' });
      case '/swr':
        setTimeout(() => body(`swr #${count}`, { 'cache-control': 'max-age=1, stale-while-revalidate=30' }), 100);
        return;
      case '/flaky':
        if (failing) return body('broken', {}, 500);
        return body(`flaky #${count}`, { 'cache-control': 'max-age=1, stale-if-error=60' });
      case '/slow':
        setTimeout(() => body(`slow #${count}`, { 'cache-control': 'max-age=60' }), 300);
        return;
      case '/slow-private':
        setTimeout(() => body(`slow-private #${count}`, { 'cache-control': 'private' }), 300);
        return;
      case '/slow-flip':
        // Private at first, then storable for a second.
        setTimeout(() => body(`slow-flip #${count}`, { 'cache-control': count === 1 ? 'private' : 'max-age=1' }), 300);
        return;
      case '/slow-etag':
        // A second to live, then revalidated slowly: 304 for the ETag it gave.
        setTimeout(() => {
          if (req.headers['if-none-match'] === '"s1"') {
            res.writeHead(304, { etag: '"s1"', 'cache-control': 'max-age=1' });
            return void res.end();
          }
          body(`slow-etag #${count}`, { etag: '"s1"', 'cache-control': 'max-age=1' });
        }, 300);
        return;
      case '/slow-silent':
      case '/slow-personal':
        setTimeout(() => body(`${path.slice(1)} #${count}`), 300);
        return;
      case '/tagged':
        return body(`tagged #${count}`, { 'cache-control': 'max-age=60', 'surrogate-key': 'product-1 catalog' });
      case '/tagged-long':
        return body(`#${count}`, { 'cache-control': 'max-age=600', 'surrogate-key': 'catalog' });
      case '/tagged-short':
        return body(`#${count}`, { 'cache-control': 'max-age=10', 'surrogate-key': 'catalog' });
      case '/big':
        return body('x'.repeat(4096) + `#${count}`, { 'cache-control': 'max-age=60' });
      case '/dribble':
        // A body that takes a while, for a client that leaves half way.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20', 'cache-control': 'max-age=60' });
        res.write('first-half');
        setTimeout(() => res.end(`second#${String(count).padStart(3, '0')}`), 300);
        return;
      default:
        return body('not here', {}, 404);
    }
  };
  return { hits, peaks, handler, fail: (value: boolean) => (failing = value) };
}

describe('cache', () => {
  const upstreamState = origin();
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let admin = '';
  const hits = (path: string): number => upstreamState.hits.get(path) ?? 0;
  const get = (path: string, headers: Record<string, string> = {}): Promise<TestResponse> => send(`${gateway.url}${path}`, { headers });

  const start = async (workers: number): Promise<{ gateway: GatewayProcess; admin: string }> => {
    const adminPort = await closedPort();
    const started = await startGateway(
      `
      import { defineConfig } from '${CORE}';
      import { cache } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        admin: { port: ${adminPort}, token: '${TOKEN}' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/silent', name: 'silent-with-ttl', upstream: 'app', plugins: [cache({ ttl: '30s', key: { query: { exclude: ['utm_source'] } } })] },
          { path: '/slow-silent', upstream: 'app', plugins: [cache({ ttl: '30s' })] },
          { path: '/slow-personal', upstream: 'app', plugins: [cache({ ttl: '30s' })] },
          { path: '/big', upstream: 'app', plugins: [cache({ maxEntrySize: 1024 })] },
          { path: '/*', upstream: 'app', plugins: [cache({ key: { query: { exclude: ['utm_source'] } } })] },
        ],
      });
    `,
      { workers },
    );
    return { gateway: started, admin: `http://127.0.0.1:${adminPort}` };
  };

  // One worker, so that what one request stores the next one finds.
  before(async () => {
    upstream = await startUpstream(upstreamState.handler);
    ({ gateway, admin } = await start(1));
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  /** Requests a path until every worker has it (with two, connections land on either). */
  const warmEverywhere = async (path: string): Promise<void> => {
    for (let i = 0; i < 20; i++) await get(path);
  };

  it('serves a fresh response from the cache, with Age and Cache-Status, without asking the upstream', async () => {
    const first = await get('/fresh');
    expect(first.headers['cache-status']).to.match(/^tollgate; fwd=uri-miss; fwd-status=200; stored; ttl=(59|60)$/);
    await warmEverywhere('/fresh');
    const before = hits('/fresh');
    const hit = await get('/fresh');
    expect(hits('/fresh')).to.equal(before);
    expect(hit.text).to.equal('/fresh #1');
    expect(hit.headers['cache-status']).to.match(/^tollgate; hit; ttl=\d+$/);
    expect(Number(hit.headers.age)).to.be.within(0, 2);
    expect(hit.headers['content-length']).to.equal(String(hit.text.length));
  });

  it('asks the upstream again once the response is stale', async () => {
    await warmEverywhere('/short');
    const before = hits('/short');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const again = await get('/short');
    expect(hits('/short')).to.equal(before + 1);
    expect(again.headers['cache-status']).to.match(/fwd=stale; fwd-status=200; stored/);
    // The refreshed entry replaced the stale one: the next request is a hit again.
    expect((await get('/short')).headers['cache-status']).to.match(/^tollgate; hit/);
    expect(hits('/short')).to.equal(before + 1);
  });

  it('within stale-while-revalidate, answers from the stale entry at once and refreshes it once in the background', async () => {
    await get('/swr');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const stale = await Promise.all(Array.from({ length: 5 }, () => get('/swr')));
    for (const res of stale) {
      expect(res.text).to.equal('swr #1');
      expect(res.headers['cache-status']).to.match(/^tollgate; hit; fwd=stale; detail=stale-while-revalidate; ttl=-\d+$/);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hits('/swr'), 'one background refresh for five stale hits').to.equal(2);
    // The refreshed entry answers now (Date has one-second resolution, so it may already count as stale).
    const fresh = await get('/swr');
    expect(fresh.text).to.equal('swr #2');
    expect(fresh.headers['cache-status']).to.match(/^tollgate; hit/);
  });

  for (const [path, detail] of [['/no-store', 'no-store'], ['/private', 'private'], ['/cookie', 'set-cookie'], ['/nowhere', 'status']] as const) {
    it(`never stores a response that is ${detail === 'status' ? 'a 404 without freshness' : detail}`, async () => {
      const first = await get(path);
      await get(path);
      expect(hits(path)).to.equal(2);
      expect(first.headers['cache-status']).to.include(`detail=${detail === 'status' ? 'no-freshness' : detail}`);
    });
  }

  it('never stores nor serves a response to a request with Authorization', async () => {
    await warmEverywhere('/fresh');
    const before = hits('/fresh');
    const res = await get('/fresh', { authorization: 'Bearer x' });
    expect(hits('/fresh')).to.equal(before + 1);
    expect(res.headers['cache-status']).to.equal('tollgate; fwd=bypass');
  });

  it('stores the variants a response Varies on, each for the request headers it was made for', async () => {
    for (let i = 0; i < 10; i++) {
      expect((await get('/vary', { 'accept-language': 'fr' })).text).to.match(/^fr #/);
      expect((await get('/vary', { 'accept-language': 'de' })).text).to.match(/^de #/);
    }
    expect(hits('/vary')).to.equal(2);
  });

  it('revalidates a stale entry with its ETag and serves the stored body on 304', async () => {
    await warmEverywhere('/etag');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = upstream.requests.length;
    const res = await get('/etag');
    expect(res.status).to.equal(200);
    expect(res.text).to.equal('etag #1');
    expect(res.headers['cache-status']).to.match(/fwd=stale; fwd-status=304; stored/);
    expect(upstream.requests[before]!.headers['if-none-match']).to.equal('"v1"');
  });

  it("answers a client's matching If-None-Match with 304 from the cache", async () => {
    await warmEverywhere('/etag');
    const before = hits('/etag');
    const res = await get('/etag', { 'if-none-match': 'W/"v1"' });
    expect(res.status).to.equal(304);
    expect(res.text).to.equal('');
    expect(res.headers.etag).to.equal('"v1"');
    expect(hits('/etag')).to.equal(before);
  });

  it('serves the stale entry when the upstream fails within stale-if-error', async () => {
    await warmEverywhere('/flaky');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    upstreamState.fail(true);
    try {
      const res = await get('/flaky');
      expect(res.status).to.equal(200);
      expect(res.text).to.match(/^flaky #/);
      expect(res.headers['cache-status']).to.include('detail=stale-if-error');
    } finally {
      upstreamState.fail(false);
    }
  });

  it('sends one upstream request for many concurrent misses of one URL (per worker)', async () => {
    const responses = await Promise.all(Array.from({ length: 60 }, () => get('/slow')));
    expect(responses.every((r) => r.status === 200 && /^slow #\d$/.test(r.text))).to.equal(true);
    expect(hits('/slow')).to.equal(1);
  });

  it('revalidates a stale entry once for many concurrent requests, which all get the revalidated body', async () => {
    expect((await get('/slow-etag')).headers['cache-status']).to.include('stored');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = hits('/slow-etag');
    const responses = await Promise.all(Array.from({ length: 5 }, () => get('/slow-etag')));
    expect(responses.map((r) => [r.status, r.text])).to.deep.equal(Array.from({ length: 5 }, () => [200, 'slow-etag #1']));
    expect(hits('/slow-etag') - before, 'one conditional request upstream').to.equal(1);
    expect(responses.filter((r) => /fwd=stale; fwd-status=304/.test(r.headers['cache-status'] as string))).to.have.length(1);
    expect(responses.filter((r) => /^tollgate; hit; ttl=/.test(r.headers['cache-status'] as string))).to.have.length(4);
  });

  it('once a URL answered something no one may share, lets its concurrent misses go upstream together instead of queueing behind one another', async () => {
    const first = await get('/slow-private');
    expect(first.headers['cache-status']).to.include('detail=private');
    const responses = await Promise.all(Array.from({ length: 5 }, () => get('/slow-private')));
    expect(responses.every((r) => r.status === 200)).to.equal(true);
    // Coalesced, one would have gone first and four after it: at most four at once.
    expect(upstreamState.peaks.get('/slow-private')).to.equal(5);
    expect(hits('/slow-private')).to.equal(6);
  });

  it('coalesces a URL again once it answered something storable', async () => {
    expect((await get('/slow-flip')).headers['cache-status']).to.include('detail=private');
    expect((await get('/slow-flip')).headers['cache-status']).to.include('stored');
    // Purged, so that the next requests miss.
    const purged = await send(`${admin}/cache/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: `${gateway.url}/slow-flip` }) });
    expect(purged.status).to.equal(200);
    await Promise.all(Array.from({ length: 5 }, () => get('/slow-flip')));
    expect(upstreamState.peaks.get('/slow-flip')).to.equal(1);
  });

  it("does not stop coalescing a URL for what one request carried (its cookie), only for what the response said", async () => {
    // With a cookie, a response with no freshness of its own is not stored on the route's ttl.
    expect((await get('/slow-silent', { cookie: 'session=1' })).headers['cache-status']).to.include('detail=credentials');
    await Promise.all(Array.from({ length: 5 }, () => get('/slow-silent')));
    expect(upstreamState.peaks.get('/slow-silent')).to.equal(1);
    expect(hits('/slow-silent')).to.equal(2);
  });

  it('once a request with credentials got a response it could not share, lets such requests go upstream together; anonymous ones still coalesce', async () => {
    const session = { cookie: 'session=1' };
    expect((await get('/slow-personal', session)).headers['cache-status']).to.include('detail=credentials');
    const personal = await Promise.all(Array.from({ length: 5 }, () => get('/slow-personal', session)));
    expect(personal.every((r) => r.status === 200 && String(r.headers['cache-status']).includes('detail=credentials'))).to.equal(true);
    // Coalesced, one would have gone first and four after it: at most four at once.
    expect(upstreamState.peaks.get('/slow-personal')).to.equal(5);
    const anonymous = await Promise.all(Array.from({ length: 3 }, () => get('/slow-personal')));
    expect(anonymous.map((r) => r.text)).to.deep.equal(['slow-personal #7', 'slow-personal #7', 'slow-personal #7']);
    expect(hits('/slow-personal')).to.equal(7);
  });

  it('keys by the sorted query, without excluded parameters; HEAD is answered from GET', async () => {
    const first = await get('/fresh?b=2&a=1');
    const count = hits('/fresh');
    for (let i = 0; i < 6; i++) await get('/fresh?a=1&b=2&utm_source=mail');
    expect(hits('/fresh')).to.equal(count);
    const head = await send(`${gateway.url}/fresh?a=1&b=2`, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(first.status).to.equal(200);
  });

  it("stores a response without freshness for the route's ttl only", async () => {
    await warmEverywhere('/silent');
    expect(hits('/silent')).to.equal(1);
    expect((await get('/silent')).headers['cache-status']).to.match(/^tollgate; hit; ttl=\d+$/);
  });

  it('streams a body larger than maxEntrySize through without storing it', async () => {
    const first = await get('/big');
    const second = await get('/big');
    expect(second.text.length).to.equal(4096 + 2);
    expect(first.headers['cache-status']).to.include('detail=too-large');
    expect(hits('/big')).to.equal(2);
  });

  it('does not store a body the client abandoned half way', async () => {
    await new Promise<void>((resolve) => {
      const req = request(`${gateway.url}/dribble`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const full = await get('/dribble');
    expect(full.text).to.match(/^first-halfsecond#\d{3}$/);
    expect(full.headers['cache-status']).to.include('fwd=uri-miss');
  });

  it('revalidates on a request with no-cache, and answers only-if-cached misses with 504', async () => {
    await warmEverywhere('/fresh');
    const before = hits('/fresh');
    const res = await get('/fresh', { 'cache-control': 'no-cache' });
    expect(hits('/fresh')).to.equal(before + 1);
    expect(res.headers['cache-status']).to.match(/fwd=request/);
    const miss = await get('/never-cached', { 'cache-control': 'only-if-cached' });
    expect(miss.status).to.equal(504);
  });

  describe('purge from the admin listener', () => {
    let gateway: GatewayProcess;
    let admin = '';
    before(async () => {
      ({ gateway, admin } = await start(2));
    });
    after(async () => {
      await gateway?.stop();
    });
    const get = (path: string): Promise<TestResponse> => send(`${gateway.url}${path}`);
    const warmEverywhere = async (path: string): Promise<void> => {
      for (let i = 0; i < 20; i++) await get(path);
    };
    const purge = (body: unknown) =>
      send(`${admin}/cache/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

    it('by URL, in every worker', async () => {
      await warmEverywhere('/fresh');
      await warmEverywhere('/fresh?page=2');
      const res = await purge({ url: `${gateway.url}/fresh` });
      expect(res.status).to.equal(200);
      expect(res.json()).to.deep.include({ workers: 2 });
      expect(res.json().purged).to.be.at.least(1);
      const before = hits('/fresh');
      await warmEverywhere('/fresh');
      expect(hits('/fresh')).to.be.within(before + 1, before + 2);
      // Another URL (another query) is another entry, untouched.
      await warmEverywhere('/fresh?page=2');
      expect(hits('/fresh')).to.be.within(before + 1, before + 2);
    });

    it('by path prefix and by tag', async () => {
      await warmEverywhere('/prefix/a');
      await warmEverywhere('/prefix/b');
      await warmEverywhere('/tagged');
      expect((await purge({ prefix: '/prefix/' })).json().purged).to.be.at.least(2);
      expect((await purge({ tag: 'product-1' })).json().purged).to.be.at.least(1);
      const [a, t] = [hits('/prefix/a'), hits('/tagged')];
      await get('/prefix/a');
      await get('/tagged');
      expect(hits('/prefix/a') + hits('/tagged')).to.be.within(a + t + 1, a + t + 2);
    });

    it('refuses a malformed purge with 400 and requires the token', async () => {
      expect((await purge({ url: 'not a url' })).status).to.equal(400);
      expect((await purge({ url: 'http://x/', tag: 'y' })).status).to.equal(400);
      const anonymous = await send(`${admin}/cache/purge`, { method: 'POST', body: '{"tag":"x"}' });
      expect(anonymous.status).to.equal(401);
    });
  });

  describe('shared tier in Redis', () => {
    let redis: TestRedis;
    const gateways: { gateway: GatewayProcess; admin: string }[] = [];

    before(async () => {
      redis = await startRedis();
      for (let i = 0; i < 2; i++) {
        const adminPort = await closedPort();
        const gateway = await startGateway(`
          import { defineConfig } from '${CORE}';
          import { cache } from '${PLUGINS}';
          export default defineConfig({
            listen: { port: 0, host: '127.0.0.1' },
            admin: { port: ${adminPort}, token: '${TOKEN}' },
            redis: { url: '${redis.url}' },
            upstreams: { app: { targets: ['${upstream.url}'] } },
            routes: [{ path: '/*', upstream: 'app', plugins: [cache({ redis: true })] }],
          });
        `);
        gateways.push({ gateway, admin: `http://127.0.0.1:${adminPort}` });
      }
    });
    after(async () => {
      await Promise.all(gateways.map(({ gateway }) => gateway.stop()));
      await redis?.stop();
    });

    // Both gateways send the same Host, as instances behind one load balancer do.
    const via = (i: number, path: string) => send(`${gateways[i]!.gateway.url}${path}`, { headers: { host: 'shop.example.com' } });

    it('serves from one gateway what another stored, without asking the upstream again', async () => {
      const first = await via(0, '/prefix/a');
      expect(first.headers['cache-status']).to.include('stored');
      await new Promise((resolve) => setTimeout(resolve, 100)); // the write to Redis is asynchronous
      const before = hits('/prefix/a');
      const second = await via(1, '/prefix/a');
      expect(second.text).to.equal(first.text);
      expect(second.headers['cache-status']).to.match(/^tollgate; hit; ttl=\d+$/);
      expect(hits('/prefix/a')).to.equal(before);
    });

    it('purges by tag on every gateway, through Redis pub/sub', async () => {
      await via(0, '/tagged');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await via(1, '/tagged')).headers['cache-status']).to.match(/^tollgate; hit/);
      const res = await send(`${gateways[0]!.admin}/cache/purge`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ tag: 'product-1' }),
      });
      expect(res.status).to.equal(200);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = hits('/tagged');
      expect((await via(1, '/tagged')).headers['cache-status']).to.include('fwd=uri-miss');
      expect(hits('/tagged')).to.equal(before + 1);
    });

    it("lets a tag's set in Redis expire with the longest-lived entry it names", async () => {
      await via(0, '/tagged');
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const tag of ['product-1', 'catalog']) {
        const ttl = Number(await redis.cli('pttl', `tollgate:cache:tag:${tag}`));
        // max-age=60 and no stale windows: the entry, and so the set, live 60 s at most.
        expect(ttl, tag).to.be.within(50_000, 60_000);
      }
      // A longer-lived entry extends the set; a shorter one never shortens it.
      await redis.cli('pexpire', 'tollgate:cache:tag:catalog', '5000');
      await via(0, '/tagged-long');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(Number(await redis.cli('pttl', 'tollgate:cache:tag:catalog'))).to.be.above(500_000);
      await via(0, '/tagged-short');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(Number(await redis.cli('pttl', 'tollgate:cache:tag:catalog'))).to.be.above(500_000);
    });

    it('purges by URL and by path prefix on every gateway, including the copies in Redis', async () => {
      for (const path of ['/fresh?x=1', '/prefix/b']) {
        await via(0, path);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect((await via(1, path)).headers['cache-status'], path).to.match(/^tollgate; hit/);
      }
      const purge = (body: unknown) =>
        send(`${gateways[1]!.admin}/cache/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
      expect((await purge({ url: 'http://shop.example.com/fresh?x=1' })).status).to.equal(200);
      expect((await purge({ prefix: '/prefix/' })).status).to.equal(200);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const left = await redis.cli('--scan', '--pattern', 'tollgate:cache:*');
      expect(left).not.to.include('/prefix/b');
      expect(left).not.to.include('/fresh?x=1');
      for (const path of ['/fresh?x=1', '/prefix/b']) {
        expect((await via(0, path)).headers['cache-status'], path).to.include('fwd=uri-miss');
      }
    });

    it('keeps caching in memory, with no error, while Redis is down', async () => {
      await redis.kill();
      try {
        const first = await via(0, '/prefix/b');
        const second = await via(0, '/prefix/b');
        expect([first.status, second.status]).to.deep.equal([200, 200]);
        expect(second.headers['cache-status']).to.match(/^tollgate; hit/);
      } finally {
        await redis.restart();
      }
    });
  });
});
