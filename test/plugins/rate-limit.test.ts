import { expect } from 'chai';
import { CORE, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from '../support/gateway-process.ts';
import { send, type TestResponse } from '../support/http.ts';
import { startRedis, startRedisCluster, startRedisSentinel, type TestRedis, type TestRedisCluster, type TestSentinel } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';

/** Sends `total` requests, `concurrency` at a time, spread round-robin over `urls`. */
async function sendMany(urls: string[], total: number, concurrency: number, headers: Record<string, string> = {}): Promise<TestResponse[]> {
  const results: TestResponse[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      results.push(await send(urls[i % urls.length]!, { headers }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

const statuses = (responses: TestResponse[]): Record<number, number> =>
  responses.reduce<Record<number, number>>((counts, r) => ({ ...counts, [r.status]: (counts[r.status] ?? 0) + 1 }), {});

const config = (upstream: TestUpstream, plugins: string, extra = '') => `
  import { defineConfig } from '${CORE}';
  import { rateLimit, keyAuth } from '${PLUGINS}';
  export default defineConfig({
    listen: { port: 0, host: '127.0.0.1' },
    log: { accessLog: false },
    ${extra}
    upstreams: { app: { targets: ['${upstream.url}'] } },
    routes: [${plugins}],
  });
`;

describe('rate-limit', () => {
  let upstream: TestUpstream;

  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  describe('config', () => {
    it('refuses windows that are not whole seconds, and a limit without a window, naming the option', async () => {
      const check = (plugin: string) => runCli(['check', '--config', writeConfig(config(upstream, `{ path: '/', upstream: 'app', plugins: [${plugin}] },`))]);
      const fraction = await check(`rateLimit({ limit: 5, window: '1500ms' })`);
      expect(fraction.code).to.equal(1);
      expect(fraction.stderr).to.include('options.window: a window is a whole number of seconds');
      const both = await check(`rateLimit({ limit: 5, window: '1s', limits: [{ limit: 1, window: '1s' }] })`);
      expect(both.stderr).to.include('give either limit and window, or limits: [...]');
    });

    it('refuses a redis section that is not exactly one of url, cluster or sentinel, or whose url is not redis://', async () => {
      const check = (redis: string) => runCli(['check', '--config', writeConfig(config(upstream, `{ path: '/', upstream: 'app' },`, `redis: ${redis},`))]);
      expect((await check(`{ url: 'http://127.0.0.1:6379' }`)).stderr).to.include('redis.url: expected a redis:// or rediss:// URL');
      expect((await check(`{ url: 'redis://127.0.0.1:6379', cluster: { nodes: ['127.0.0.1:7000'] } }`)).stderr).to.include(
        'give exactly one of redis.url, redis.cluster or redis.sentinel',
      );
      expect((await check(`{ cluster: { nodes: ['localhost'] } }`)).stderr).to.include('redis.cluster.nodes[0]: expected host:port');
    });

    it("refuses to start with store: 'redis' when the config has no redis", async () => {
      const error = await startGateway(config(upstream, `{ path: '/', upstream: 'app', plugins: [rateLimit({ limit: 5, window: '1s', store: 'redis' })] },`)).catch((e: Error) => e);
      expect(String(error)).to.include("store 'redis' needs the gateway config's redis section");
    });
  });

  describe('host store (no Redis)', () => {
    let gateway: GatewayProcess;

    before(async () => {
      gateway = await startGateway(
        config(
          upstream,
          `
          { path: '/exact', upstream: 'app', plugins: [rateLimit({ limit: 20, window: '10m', by: 'route' })] },
          { path: '/roll', upstream: 'app', plugins: [rateLimit({ limit: 2, window: '1s', by: 'route', legacyHeaders: true })] },
          { path: '/multi', upstream: 'app', plugins: [rateLimit({ by: 'route', limits: [
            { limit: 3, window: '1s', name: 'per-second' }, { limit: 4, window: '1h', name: 'hourly' } ] })] },
          { path: '/by-ip', upstream: 'app', plugins: [rateLimit({ limit: 1, window: '10m' })] },
          { path: '/by-header', upstream: 'app', plugins: [rateLimit({ limit: 1, window: '10m', by: { header: 'x-tenant' } })] },
          { path: '/by-consumer', upstream: 'app', plugins: [
            keyAuth({ consumers: { a: { keyHashes: ['${hashKey('key-a')}'] }, b: { keyHashes: ['${hashKey('key-b')}'] } } }),
            rateLimit({ limit: 1, window: '10m', by: 'consumer' }) ] },
          { path: '/exempt', upstream: 'app', plugins: [rateLimit({ limit: 1, window: '10m',
            by: (ctx) => ctx.request.headers['x-internal'] === 'yes' ? undefined : 'everyone' })] },
        `,
          // Trusted so that the tests can play several clients from one loopback address.
          `trustProxy: ['127.0.0.1'],`,
        ),
        { workers: 2 },
      );
    });
    after(async () => {
      await gateway?.stop();
    });

    it('lets exactly `limit` requests through across two workers, however many clients race for them', async () => {
      const responses = await sendMany([`${gateway.url}/exact`], 60, 20);
      expect(statuses(responses)).to.deep.equal({ 200: 20, 429: 40 });
    });

    it('returns 429 with Retry-After, a JSON error body and the RateLimit headers once the limit is spent', async () => {
      const res = await send(`${gateway.url}/exact`);
      expect(res.status).to.equal(429);
      expect(Number(res.headers['retry-after'])).to.be.within(1, 30);
      expect(res.json().error).to.include({ code: 'TG_ERR_RATE_LIMITED', message: 'Too many requests' });
      expect(res.headers['ratelimit-policy']).to.equal('"20-per-10m";q=20;w=600');
      expect(res.headers['ratelimit']).to.match(/^"20-per-10m";r=0;t=\d+$/);
    });

    it('counts down RateLimit and legacy X-RateLimit headers on allowed responses, and lets requests through again as the window rolls', async () => {
      const first = await send(`${gateway.url}/roll`);
      const second = await send(`${gateway.url}/roll`);
      const third = await send(`${gateway.url}/roll`);
      expect([first.status, second.status, third.status]).to.deep.equal([200, 200, 429]);
      expect(first.headers['ratelimit']).to.equal('"2-per-1s";r=1;t=1');
      expect(second.headers['ratelimit']).to.equal('"2-per-1s";r=0;t=1');
      expect(second.headers).to.include({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' });
      expect(third.headers['retry-after']).to.equal('1');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect((await send(`${gateway.url}/roll`)).status).to.equal(200);
    });

    it('applies several limits at once and reports each of them', async () => {
      const responses: TestResponse[] = [];
      for (let i = 0; i < 4; i++) responses.push(await send(`${gateway.url}/multi`));
      expect(responses.map((r) => r.status)).to.deep.equal([200, 200, 200, 429]);
      expect(responses[0]!.headers['ratelimit-policy']).to.equal('"per-second";q=3;w=1, "hourly";q=4;w=3600');
      expect(responses[2]!.headers['ratelimit']).to.match(/^"per-second";r=0;t=1, "hourly";r=1;t=\d+$/);
      // The per-second limit refills; the hourly one has one request left, then denies on its own.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect((await send(`${gateway.url}/multi`)).status).to.equal(200);
      const hourly = await send(`${gateway.url}/multi`);
      expect(hourly.status).to.equal(429);
      expect(hourly.headers['ratelimit']).to.match(/^"per-second";r=\d;t=\d, "hourly";r=0;t=\d+$/);
      expect(Number(hourly.headers['retry-after'])).to.be.above(100);
    });

    it('keys by client IP from the trusted X-Forwarded-For chain, IPv6 grouped by /64', async () => {
      const from = (ip: string) => send(`${gateway.url}/by-ip`, { headers: { 'x-forwarded-for': ip } });
      expect((await from('192.0.2.1')).status).to.equal(200);
      expect((await from('192.0.2.1')).status).to.equal(429);
      expect((await from('192.0.2.2')).status).to.equal(200);
      expect((await from('::ffff:192.0.2.2')).status, 'IPv4-mapped is the same client').to.equal(429);
      expect((await from('2001:db8:1:2::1')).status).to.equal(200);
      expect((await from('2001:db8:1:2:ffff::9')).status, 'same /64').to.equal(429);
      expect((await from('2001:db8:1:3::1')).status, 'another /64').to.equal(200);
    });

    it('keys by a header, falling back to the client IP without it', async () => {
      const tenant = (value?: string) => send(`${gateway.url}/by-header`, { headers: value ? { 'x-tenant': value, 'x-forwarded-for': '198.51.100.7' } : { 'x-forwarded-for': '198.51.100.7' } });
      expect((await tenant('acme')).status).to.equal(200);
      expect((await tenant('acme')).status).to.equal(429);
      expect((await tenant('globex')).status).to.equal(200);
      expect((await tenant()).status).to.equal(200);
      expect((await tenant()).status).to.equal(429);
    });

    it('keys by consumer: each authenticated consumer has a budget of its own', async () => {
      const as = (key: string) => send(`${gateway.url}/by-consumer`, { headers: { 'x-api-key': key } });
      expect((await as('key-a')).status).to.equal(200);
      expect((await as('key-a')).status).to.equal(429);
      expect((await as('key-b')).status).to.equal(200);
    });

    it('leaves a request unlimited when the key function returns undefined', async () => {
      expect((await send(`${gateway.url}/exempt`)).status).to.equal(200);
      expect((await send(`${gateway.url}/exempt`)).status).to.equal(429);
      for (let i = 0; i < 3; i++) {
        const res = await send(`${gateway.url}/exempt`, { headers: { 'x-internal': 'yes' } });
        expect(res.status).to.equal(200);
        expect(res.headers).not.to.have.property('ratelimit');
      }
    });
  });

  describe('redis store', () => {
    let redis: TestRedis;
    const gateways: GatewayProcess[] = [];

    const routes = `
      { path: '/open', upstream: 'app', plugins: [rateLimit({ limit: 30, window: '10m', by: 'route' })] },
      { path: '/closed', upstream: 'app', plugins: [rateLimit({ limit: 30, window: '10m', by: 'route', onRedisError: 'failClosed' })] },
      { path: '/fallback', upstream: 'app', plugins: [rateLimit({ limit: 5, window: '10m', by: 'route' })] },
      { path: '/plenty', upstream: 'app', plugins: [rateLimit({ limit: 100000, window: '1h' })] },
      { path: '/busy', upstream: 'app', plugins: [rateLimit({ limit: 300, window: '1h', by: 'route' })] },
    `;

    before(async () => {
      redis = await startRedis();
      const redisConfig = `redis: { url: '${redis.url}', commandTimeout: '200ms' },`;
      gateways.push(await startGateway(config(upstream, routes, redisConfig), { workers: 2 }));
      gateways.push(await startGateway(config(upstream, routes, redisConfig), { workers: 2 }));
    });
    after(async () => {
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('lets exactly `limit` requests through across two gateways of two workers each', async () => {
      const responses = await sendMany(gateways.map((g) => `${g.url}/open`), 90, 24);
      expect(statuses(responses)).to.deep.equal({ 200: 30, 429: 60 });
      expect(await redis.cli('--scan', '--pattern', 'tollgate:rl:*')).to.include('tollgate:rl:{');
      for (const gateway of gateways) expect(gateway.logs.filter((line) => /cannot decide/.test(line.msg ?? ''))).to.deep.equal([]);
    });

    it('serves a busy bucket from per-worker reserves, yet never more than `limit`, and gives back what it does not use', async () => {
      const urls = gateways.map((g) => `${g.url}/busy`);
      await redis.cli('config', 'resetstat');
      const first = await sendMany(urls, 450, 24);
      const allowedFirst = first.filter((r) => r.status === 200).length;
      expect(allowedFirst).to.be.at.most(300);
      // Reserves a worker did not use go back to Redis within 100 ms, to be taken by anyone.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = await sendMany(urls, 100, 8);
      expect(allowedFirst + second.filter((r) => r.status === 200).length).to.equal(300);
      const scriptCalls = /cmdstat_evalsha:calls=(\d+)/.exec(await redis.cli('info', 'commandstats'))?.[1];
      expect(Number(scriptCalls), 'Redis decided far fewer times than there were requests').to.be.below(550 / 2);
    });

    it('loses no request when Redis is killed mid-load: with failOpen every request is still answered from host limits', async () => {
      const urls = gateways.map((g) => `${g.url}/plenty`);
      const before = upstream.requests.length;
      const since = gateways.map((g) => g.logs.length);
      const load = sendMany(urls, 300, 8);
      try {
        while (upstream.requests.length - before < 60) await new Promise((resolve) => setTimeout(resolve, 2));
        await redis.kill();
        expect(statuses(await load)).to.deep.equal({ 200: 300 });
        await Promise.all(gateways.map((g, i) => waitForLogAfter(g, since[i]!, (msg) => /using host-wide limits \(failOpen\)/.test(msg))));
      } finally {
        await redis.restart();
      }
      await Promise.all(gateways.map((g, i) => waitForLogAfter(g, since[i]!, (msg) => msg.startsWith('redis is back'), 2)));
    });

    it('with failOpen, keeps serving within host-wide limits while Redis is down, then shares limits again once it is back', async () => {
      const since = gateways.map((g) => g.logs.length);
      await redis.kill();
      try {
        // Each gateway now enforces the limit for its own host: 5 each, not a free-for-all.
        for (const gateway of gateways) {
          const responses = await sendMany([`${gateway.url}/fallback`], 12, 4);
          expect(statuses(responses)).to.deep.equal({ 200: 5, 429: 7 });
        }
        await Promise.all(gateways.map((g, i) => waitForLogAfter(g, since[i]!, (msg) => /using host-wide limits \(failOpen\)/.test(msg))));
      } finally {
        await redis.restart();
      }
      await Promise.all(gateways.map((g, i) => waitForLogAfter(g, since[i]!, (msg) => msg.startsWith('redis is back'), 2)));
      // One budget again for both gateways (Redis restarted empty): the count goes down across them.
      const remaining: string[] = [];
      for (const gateway of [...gateways, ...gateways]) {
        const res = await send(`${gateway.url}/fallback`);
        remaining.push(/r=(\d+)/.exec(String(res.headers['ratelimit']))?.[1] ?? `status ${res.status}`);
      }
      expect(remaining).to.deep.equal(['4', '3', '2', '1']);
    });

    it('with failClosed, answers 503 while Redis is down and recovers by itself when it returns', async () => {
      await redis.kill();
      try {
        const res = await send(`${gateways[0]!.url}/closed`);
        expect(res.status).to.equal(503);
        expect(res.json().error.code).to.equal('TG_ERR_REDIS_UNAVAILABLE');
      } finally {
        await redis.restart();
      }
      await waitFor(async () => (await send(`${gateways[0]!.url}/closed`)).status === 200);
    });

    it('answers within the command timeout while Redis is frozen, instead of hanging', async () => {
      redis.freeze();
      try {
        const responses = await sendMany(gateways.map((g) => `${g.url}/open`), 8, 4);
        expect(responses.every((r) => r.status === 200 || r.status === 429)).to.equal(true);
      } finally {
        redis.thaw();
      }
    });
  });

  describe('redis sentinel store', () => {
    let master: TestRedis;
    let sentinel: TestSentinel;
    let gateway: GatewayProcess;

    before(async () => {
      master = await startRedis();
      sentinel = await startRedisSentinel(master, 'limits');
      gateway = await startGateway(
        config(upstream, `{ path: '/s', upstream: 'app', plugins: [rateLimit({ limit: 10, window: '10m', by: 'route' })] },`, `redis: { sentinel: { sentinels: ['${sentinel.address}'], name: 'limits' } },`),
        { workers: 2 },
      );
    });
    after(async () => {
      await gateway?.stop();
      await sentinel?.stop();
      await master?.stop();
    });

    it('finds the master through the sentinel and holds the limit exactly there', async () => {
      expect(statuses(await sendMany([`${gateway.url}/s`], 30, 10))).to.deep.equal({ 200: 10, 429: 20 });
      expect(await master.cli('--scan', '--pattern', 'tollgate:rl:*')).to.include('tollgate:rl:{');
      expect(gateway.logs.filter((line) => /cannot decide/.test(line.msg ?? ''))).to.deep.equal([]);
    });
  });

  describe('redis cluster store', () => {
    let cluster: TestRedisCluster;
    let gateway: GatewayProcess;

    before(async () => {
      cluster = await startRedisCluster(3);
      gateway = await startGateway(
        config(
          upstream,
          `{ path: '/tenant', upstream: 'app', plugins: [rateLimit({ limits: [{ limit: 3, window: '10m' }, { limit: 100, window: '1h' }], by: { header: 'x-tenant' } })] },`,
          `redis: { cluster: { nodes: ${JSON.stringify(cluster.nodes)} } },`,
        ),
        { workers: 2 },
      );
    });
    after(async () => {
      await gateway?.stop();
      await cluster?.stop();
    });

    it('holds every limit exactly with buckets spread over the slots of three masters', async () => {
      const tenants = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
      const perTenant = await Promise.all(tenants.map((tenant) => sendMany([`${gateway.url}/tenant`], 8, 4, { 'x-tenant': tenant })));
      for (const responses of perTenant) expect(statuses(responses)).to.deep.equal({ 200: 3, 429: 5 });
      const keysPerNode = await Promise.all(cluster.ports.map(async (port) => Number(await cluster.cli(port, 'dbsize'))));
      expect(keysPerNode.filter((count) => count > 0).length, `keys per node: ${keysPerNode}`).to.be.at.least(2);
      expect(keysPerNode.reduce((a, b) => a + b)).to.equal(tenants.length * 2);
      expect(gateway.logs.filter((line) => /cannot decide/.test(line.msg ?? ''))).to.deep.equal([]);
    });
  });
});

/** Waits for `count` log lines that match and were written after `since` lines (earlier ones don't count). */
function waitForLogAfter(gateway: GatewayProcess, since: number, match: (msg: string) => boolean, count = 1): Promise<void> {
  return waitFor(() => gateway.logs.slice(since).filter((line) => match(line.msg ?? '')).length >= count, 'log line');
}
