import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificate } from './support/certificates.ts';
import { CORE, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startRedis, startRedisCluster, startRedisSentinel, type TestRedis } from './support/redis.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';
import { waitFor } from './support/wait.ts';

describe('redis connection', () => {
  let upstream: TestUpstream;
  const running: GatewayProcess[] = [];
  const servers: TestRedis[] = [];
  let dir: string;

  before(async () => {
    upstream = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-tls-'));
  });
  after(async () => {
    await Promise.all(running.map((gateway) => gateway.stop()));
    await Promise.all(servers.map((redis) => redis.stop()));
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const source = (redis: string, adminPort: number) => `
    import { defineConfig } from '${CORE}';
    import { rateLimit } from '${PLUGINS}';
    export default defineConfig({
      listen: { port: 0, host: '127.0.0.1' },
      admin: { port: ${adminPort} },
      log: { accessLog: false },
      redis: ${redis},
      upstreams: { app: { targets: ['${upstream.url}'] } },
      routes: [{ path: '/limited', upstream: 'app', plugins: [rateLimit({ limit: 3, window: '10m', by: 'route', onRedisError: 'failClosed' })] }],
    });
  `;

  /** Starts a gateway on `redis` (config source) and returns it with its admin URL. */
  async function gatewayOn(redis: string): Promise<{ gateway: GatewayProcess; admin: string }> {
    const adminPort = await closedPort();
    const gateway = await startGateway(source(redis, adminPort));
    running.push(gateway);
    return { gateway, admin: `http://127.0.0.1:${adminPort}` };
  }

  /** The first reason /readyz gives, once it gives one that matches. */
  async function notReadyBecause(admin: string, match: RegExp): Promise<string> {
    let reason = '';
    await waitFor(async () => {
      const res = await send(`${admin}/readyz`);
      reason = res.status === 503 ? (res.json().reasons?.[0] ?? '') : '';
      return match.test(reason);
    }, `/readyz 503 with a reason like ${match}`);
    return reason;
  }

  const redisWarnings = (gateway: GatewayProcess) => gateway.logs.filter((line) => line.component === 'redis' && line.level === 'warn').map((line) => line.msg);

  describe('when it cannot connect', () => {
    it('names the Redis and says nothing listens there, in the log and in /readyz', async () => {
      const port = await closedPort();
      const { gateway, admin } = await gatewayOn(`{ url: 'redis://127.0.0.1:${port}', required: true }`);
      const reason = await notReadyBecause(admin, /ECONNREFUSED/);
      expect(reason).to.equal(`worker 1: redis unavailable: redis://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} (nothing listens there)`);
      await gateway.waitForLog((line) => /^redis unavailable/.test(line.msg ?? ''));
      expect(redisWarnings(gateway)[0]).to.include(`(redis://127.0.0.1:${port}): connect ECONNREFUSED`);
      // Failing closed, but answering: the failure is the request's, not the gateway's.
      expect((await send(`${gateway.url}/limited`)).status).to.equal(503);
    });

    it('says Redis wants a password, hides the password it was given, and connects with redis.password and an ACL user', async () => {
      const redis = await startRedis(['--requirepass', 's3cret-pass']);
      servers.push(redis);
      const without = await gatewayOn(`{ url: '${redis.url}', required: true }`);
      expect(await notReadyBecause(without.admin, /NOAUTH/)).to.include('Redis wants a password: set redis.password');
      const wrong = await gatewayOn(`{ url: 'redis://:not-it@127.0.0.1:${redis.port}', required: true }`);
      const reason = await notReadyBecause(wrong.admin, /WRONGPASS/);
      expect(reason).to.include(`redis://:***@127.0.0.1:${redis.port}`);
      expect(reason).not.to.include('not-it');
      expect(JSON.stringify(wrong.gateway.logs)).not.to.include('not-it');
      const right = await gatewayOn(`{ url: '${redis.url}', password: 's3cret-pass', required: true }`);
      await waitFor(async () => (await send(`${right.admin}/readyz`)).status === 200, '/readyz 200');
      // An ACL user of its own, as a shared Redis gives each application.
      await redis.cli('--no-auth-warning', '-a', 's3cret-pass', 'acl', 'setuser', 'gateway', 'on', '>gw-pass', '~*', '&*', '+@all');
      const user = await gatewayOn(`{ url: '${redis.url}', username: 'gateway', password: 'gw-pass', required: true }`);
      await waitFor(async () => (await send(`${user.admin}/readyz`)).status === 200, '/readyz 200 as an ACL user');
      expect((await send(`${user.gateway.url}/limited`)).status).to.equal(200);
    });

    it('says when the host name does not resolve, and when a plain Redis is asked for TLS', async () => {
      const unknown = await gatewayOn(`{ url: 'redis://no-such-host.invalid:6379', required: true }`);
      expect(await notReadyBecause(unknown.admin, /ENOTFOUND/)).to.include('(the host name does not resolve)');
      const plain = await startRedis();
      servers.push(plain);
      const tls = await gatewayOn(`{ url: 'rediss://127.0.0.1:${plain.port}', connectTimeout: '300ms', required: true }`);
      expect(await notReadyBecause(tls.admin, /ETIMEDOUT/)).to.include('with TLS on, check that the server speaks TLS on that port');
    });

    it('names the seed that refuses a cluster connection, and says when a seed is no cluster', async () => {
      const port = await closedPort();
      const refused = await gatewayOn(`{ cluster: { nodes: ['127.0.0.1:${port}'] }, required: true }`);
      expect(await notReadyBecause(refused.admin, /ECONNREFUSED/)).to.include(`cluster seeds 127.0.0.1:${port}: 127.0.0.1:${port}: connect ECONNREFUSED`);
      const standalone = await startRedis();
      servers.push(standalone);
      const notCluster = await gatewayOn(`{ cluster: { nodes: ['127.0.0.1:${standalone.port}'] }, required: true }`);
      expect(await notReadyBecause(notCluster.admin, /cluster support disabled/)).to.include('this Redis is not a cluster: give it as redis.url');
    });
  });

  describe('key prefix', () => {
    it('keeps two tenants on one Redis apart: their limits, their cached entries and their purges', async () => {
      const redis = await startRedis();
      servers.push(redis);
      const tagged = await startUpstream((req, res) => {
        req.resume();
        res.writeHead(200, { 'cache-control': 'max-age=60', 'surrogate-key': 'shared-tag', 'content-type': 'text/plain' }).end(`${Date.now()}`);
      });
      try {
        const tenants = await Promise.all(['tenant-a:', 'tenant-b:'].map(async (keyPrefix) => {
          const adminPort = await closedPort();
          const gateway = await startGateway(`
            import { defineConfig } from '${CORE}';
            import { cache, rateLimit } from '${PLUGINS}';
            export default defineConfig({
              listen: { port: 0, host: '127.0.0.1' },
              admin: { port: ${adminPort} },
              log: { accessLog: false },
              redis: { url: '${redis.url}', keyPrefix: '${keyPrefix}' },
              upstreams: { app: { targets: ['${upstream.url}'] }, tagged: { targets: ['${tagged.url}'] } },
              routes: [
                { name: 'limited', path: '/limited', upstream: 'app', plugins: [rateLimit({ limit: 3, window: '10m', by: 'route' })] },
                { name: 'cached', path: '/cached', upstream: 'tagged', plugins: [cache({ redis: true })] },
              ],
            });
          `);
          running.push(gateway);
          return { gateway, admin: `http://127.0.0.1:${adminPort}` };
        }));
        for (const { gateway } of tenants) {
          const statuses = [];
          for (let i = 0; i < 4; i++) statuses.push((await send(`${gateway.url}/limited`)).status);
          expect(statuses, 'each tenant has its own budget').to.deep.equal([200, 200, 200, 429]);
        }
        const [a, b] = tenants as [(typeof tenants)[number], (typeof tenants)[number]];
        const bodyB = (await send(`${b.gateway.url}/cached`)).text;
        await send(`${a.gateway.url}/cached`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const keys = (await redis.cli('--scan')).trim().split('\n');
        expect(keys.filter((key) => !key.startsWith('tenant-a:') && !key.startsWith('tenant-b:'))).to.deep.equal([]);
        expect(keys.some((key) => key.startsWith('tenant-a:rl:'))).to.equal(true);
        expect(keys.some((key) => key.startsWith('tenant-b:cache:'))).to.equal(true);
        // Tenant A purges the tag both use: B's copy stays.
        const purge = await send(`${a.admin}/cache/purge`, { method: 'POST', body: JSON.stringify({ tag: 'shared-tag' }) });
        expect(purge.status).to.equal(200);
        await new Promise((resolve) => setTimeout(resolve, 200));
        const again = await send(`${b.gateway.url}/cached`);
        expect(again.headers['cache-status']).to.match(/^tollgate; hit/);
        expect(again.text).to.equal(bodyB);
        expect((await send(`${a.gateway.url}/cached`)).headers['cache-status']).to.include('fwd=uri-miss');
      } finally {
        await tagged.close();
      }
    });
  });

  describe('over TLS', () => {
    let redis: TestRedis;
    let cert: string;

    before(async () => {
      ({ cert } = makeCertificate(dir, 'redis'));
      redis = await startRedis([], { tls: { cert, key: join(dir, 'redis.key') } });
      servers.push(redis);
    });

    it('trusts the CA given as redis.tls.ca and decides limits in that Redis', async () => {
      const { gateway, admin } = await gatewayOn(`{ url: '${redis.url}', tls: { ca: '${cert}' }, required: true }`);
      await waitFor(async () => (await send(`${admin}/readyz`)).status === 200, '/readyz 200');
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await send(`${gateway.url}/limited`)).status);
      expect(statuses).to.deep.equal([200, 200, 200, 429, 429]);
      expect(await redis.cli('--scan', '--pattern', 'tollgate:rl:*')).to.include('tollgate:rl:{');
    });

    it("says the server's certificate is not trusted when no CA is given", async () => {
      const { admin } = await gatewayOn(`{ url: '${redis.url}', required: true }`);
      expect(await notReadyBecause(admin, /certificate/)).to.include('give its CA as redis.tls.ca');
    });

    it('finds the master through sentinels over TLS and talks TLS to the master too', async () => {
      const sentinel = await startRedisSentinel(redis, 'tls-master', { tls: { cert, key: join(dir, 'redis.key') } });
      try {
        const { gateway, admin } = await gatewayOn(`{ sentinel: { sentinels: ['${sentinel.address}'], name: 'tls-master' }, tls: { ca: '${cert}' }, keyPrefix: 'via-sentinel:', required: true }`);
        await waitFor(async () => (await send(`${admin}/readyz`)).status === 200, '/readyz 200');
        const statuses = [];
        for (let i = 0; i < 4; i++) statuses.push((await send(`${gateway.url}/limited`)).status);
        expect(statuses).to.deep.equal([200, 200, 200, 429]);
        expect(await redis.cli('--scan', '--pattern', 'via-sentinel:rl:*')).to.include('via-sentinel:rl:{');
      } finally {
        await sentinel.stop();
      }
    });

    it('connects to a Redis Cluster that speaks only TLS, with its CA, and decides limits on the master of their slot', async () => {
      const cluster = await startRedisCluster(3, 0, { tls: { cert, key: join(dir, 'redis.key') } });
      try {
        const { gateway, admin } = await gatewayOn(`{ cluster: { nodes: ['${cluster.nodes[0]}'] }, tls: { ca: '${cert}' }, required: true }`);
        await waitFor(async () => (await send(`${admin}/readyz`)).status === 200, '/readyz 200');
        const statuses = [];
        for (let i = 0; i < 4; i++) statuses.push((await send(`${gateway.url}/limited`)).status);
        expect(statuses).to.deep.equal([200, 200, 200, 429]);
        // Learned from one seed, the bucket's master may be another node, reached over TLS too.
        const master = await cluster.masterFor('{* /limited|route}');
        expect(await cluster.cli(master, '--scan', '--pattern', 'tollgate:rl:*')).to.include('tollgate:rl:{* /limited|route}');
      } finally {
        await cluster.stop();
      }
    });

    it('refuses a config whose redis.tls.ca cannot be read', async () => {
      const result = await runCli(['check', '--config', writeConfig(source(`{ url: '${redis.url}', tls: { ca: './no-such-ca.pem' } }`, 0))]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/redis\.tls\.ca: cannot read \/.*no-such-ca\.pem \(ENOENT\)/);
    });
  });
});
