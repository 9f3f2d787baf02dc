import { expect } from 'chai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send, type TestResponse } from '../support/http.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';

const TOKEN = 'scale-admin-token-0123456789';
const INSTANCES = 3;

/**
 * Several gateways as a user runs them past one host: separate process trees on separate ports,
 * sharing nothing but a Redis Cluster (three masters, each with a replica), with a round-robin
 * client in front as a load balancer would be.
 */
describe('many instances on one Redis Cluster', function () {
  this.timeout(120_000);

  let cluster: TestRedisCluster;
  let upstream: TestUpstream;
  /** Upstream answers by path; each answer carries how often that path was asked. */
  const asked = new Map<string, number>();
  const instances: { gateway: GatewayProcess; admin: string }[] = [];
  let turn = 0;

  /** The next instance in turn, as a round-robin load balancer picks it. */
  const roundRobin = (path: string, headers: Record<string, string> = {}): Promise<TestResponse> =>
    via(turn++ % INSTANCES, path, headers);
  const via = (i: number, path: string, headers: Record<string, string> = {}): Promise<TestResponse> =>
    send(`${instances[i]!.gateway.url}${path}`, { headers: { host: 'shop.example.com', ...headers } });

  /** Asks one instance's admin listener to purge, as an operator would. */
  const purgeVia = (i: number, target: Record<string, string>): Promise<TestResponse> =>
    send(`${instances[i]!.admin}/cache/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(target) });

  before(async () => {
    cluster = await startRedisCluster(3, 1);
    upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0]!;
      const count = (asked.get(path) ?? 0) + 1;
      asked.set(path, count);
      req.resume();
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (path.startsWith('/cached/')) headers['cache-control'] = 'max-age=300';
      if (path.startsWith('/cached/product-')) headers['surrogate-key'] = path.slice('/cached/'.length);
      res.writeHead(200, headers).end(`${path} #${count}`);
    });
    for (let i = 0; i < INSTANCES; i++) {
      const adminPort = await closedPort();
      const gateway = await startGateway(
        `
        import { defineConfig } from '${CORE}';
        import { cache, rateLimit } from '${PLUGINS}';
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          admin: { port: ${adminPort}, token: '${TOKEN}' },
          log: { accessLog: false },
          redis: { cluster: { nodes: ${JSON.stringify(cluster.nodes.slice(0, 2))} }, required: true },
          upstreams: { app: { targets: ['${upstream.url}'] } },
          routes: [
            { name: 'limited', path: '/limited', upstream: 'app', plugins: [rateLimit({ limit: 60, window: '10m', by: 'route' })] },
            { name: 'tenants', path: '/tenants', upstream: 'app', plugins: [rateLimit({ limit: 5, window: '10m', by: { header: 'x-tenant' } })] },
            { name: 'open', path: '/open', upstream: 'app', plugins: [rateLimit({ limit: 100000, window: '1h', by: 'route', onRedisError: 'failOpen' })] },
            { name: 'closed', path: '/closed', upstream: 'app', plugins: [rateLimit({ limit: 100000, window: '1h', by: 'route', onRedisError: 'failClosed' })] },
            { name: 'cached', path: '/cached/*', upstream: 'app', plugins: [cache({ redis: true })] },
          ],
        });
        `,
        // One instance with two workers: a request may meet another worker as well as another host.
        { workers: i === 0 ? 2 : 1 },
      );
      instances.push({ gateway, admin: `http://127.0.0.1:${adminPort}` });
    }
  });
  after(async () => {
    await Promise.all(instances.map(({ gateway }) => gateway.stop()));
    await upstream?.close();
    await cluster?.stop();
  });

  it('admits exactly the limit over all instances, whichever instance each request reaches', async () => {
    const responses = await inParallel(180, 9, () => roundRobin('/limited'));
    expect(count(responses)).to.deep.equal({ 200: 60, 429: 120 });
  });

  it('holds per-tenant limits exactly with the buckets spread over every master', async () => {
    const tenants = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
    const masters = new Set(await Promise.all(tenants.map((tenant) => cluster.masterFor(`{tenants|h:${tenant}}`))));
    expect(masters.size, 'the tenants land on every master').to.equal(3);
    const perTenant = await Promise.all(tenants.map((tenant) => inParallel(9, 3, () => roundRobin('/tenants', { 'x-tenant': tenant }))));
    for (const responses of perTenant) expect(count(responses)).to.deep.equal({ 200: 5, 429: 4 });
  });

  it('serves on every instance what one instance stored, asking the upstream once', async () => {
    const first = await via(0, '/cached/a');
    expect(first.headers['cache-status']).to.include('stored');
    await settle(); // the write to Redis is asynchronous
    for (const i of [1, 2]) {
      const res = await via(i, '/cached/a');
      expect(res.text, `instance ${i}`).to.equal('/cached/a #1');
      expect(res.headers['cache-status'], `instance ${i}`).to.match(/^tollgate; hit/);
    }
    expect(asked.get('/cached/a')).to.equal(1);
  });

  /** Stores `/cached/<tag>` on every instance, purges its tag through instance `purger`, and checks every instance dropped it. */
  const expectTagPurgedEverywhere = async (tag: string, purger: number): Promise<void> => {
    const path = `/cached/${tag}`;
    await via(0, path);
    await settle();
    // Every instance now holds its own memory copy of version #1.
    for (let i = 0; i < INSTANCES; i++) expect((await via(i, path)).text).to.equal(`${path} #1`);
    expect((await purgeVia(purger, { tag })).status).to.equal(200);
    await settle();
    // Had any instance kept its copy, it would still answer #1.
    for (let i = 0; i < INSTANCES; i++) expect((await via(i, path)).text, `instance ${i}`).to.equal(`${path} #2`);
    expect(asked.get(path)).to.equal(2);
  };

  it('purges a tag from every instance, memory and Redis, when one instance is asked', async () => {
    await expectTagPurgedEverywhere('product-7', 2);
  });

  it('purges a path prefix from every instance, scanning every master of the cluster', async () => {
    const paths = Array.from({ length: 8 }, (_, i) => `/cached/section/${i}`);
    for (const path of paths) await via(0, path);
    await settle();
    // The URLs' entries live on more than one master: the purge has to scan them all.
    const tagged = (path: string) => `{GET http://shop.example.com${path}}`;
    expect(new Set(await Promise.all(paths.map((path) => cluster.masterFor(tagged(path))))).size).to.be.at.least(2);
    for (let i = 1; i < INSTANCES; i++) for (const path of paths) expect((await via(i, path)).text).to.equal(`${path} #1`);
    expect((await purgeVia(1, { prefix: '/cached/section/' })).status).to.equal(200);
    await settle();
    for (let i = 0; i < INSTANCES; i++) {
      for (const path of paths) expect((await via(i, path)).text, `instance ${i} ${path}`).to.match(/ #2$/);
    }
  });

  it('survives the failover of a master under load: failOpen keeps serving, failClosed answers 503 only while it lasts', async () => {
    const victim = await cluster.masterFor('{closed|route}');
    expect(await cluster.masterFor('{open|route}'), 'both routes on one master').to.be.a('number');
    const pids = instances.map(({ gateway }) => gateway.workerPids.join());
    const open = startRoundRobinLoad(roundRobin, '/open', 20_000);
    const closed = startRoundRobinLoad(roundRobin, '/closed', 20_000);
    await Promise.all([open.untilOk(100), closed.untilOk(100)]);
    await cluster.kill(victim);
    await cluster.waitHealthy({ without: victim, timeoutMs: 30_000 });
    // Decisions come from the promoted replica again: a run of successes after the failover.
    await Promise.all([open.untilOkInARow(50), closed.untilOkInARow(50)]);
    await Promise.all([open.stop(), closed.stop()]);

    expect(await cluster.masterFor('{closed|route}')).not.to.equal(victim);
    expect(new Set(open.outcomes), 'failOpen: host-wide limits while Redis cannot decide').to.deep.equal(new Set(['200']));
    expect(closed.outcomes.filter((outcome) => outcome !== '200' && outcome !== '503 TG_ERR_REDIS_UNAVAILABLE'), 'failClosed').to.deep.equal([]);
    expect(closed.outcomes.slice(-50).filter((outcome) => outcome !== '200'), `decisions are back (${closed.outcomes.length} requests)`).to.deep.equal([]);
    // No instance lost a worker over it.
    expect(instances.map(({ gateway }) => gateway.workerPids.join())).to.deep.equal(pids);
    for (const { gateway } of instances) expect(gateway.child.exitCode).to.equal(null);

    // The old master comes back empty and rejoins as a replica; limits stay exact.
    await cluster.restart(victim);
    await cluster.waitHealthy({ timeoutMs: 30_000 });
    expect(count(await inParallel(9, 3, () => roundRobin('/tenants', { 'x-tenant': 'after-failover' })))).to.deep.equal({ 200: 5, 429: 4 });
    for (const { admin } of instances) {
      const ready = await send(`${admin}/readyz`);
      expect(ready.status).to.equal(200);
    }
    // The shared cache and its purges work on the changed cluster too.
    await expectTagPurgedEverywhere('product-9', 0);
  });

  it('stays ready when a master fails over that none of its requests needed', async () => {
    const used = await cluster.masterFor('{open|route}');
    const masters = new Set(await Promise.all(Array.from({ length: 64 }, (_, i) => cluster.masterFor(`{probe-${i}}`))));
    const victim = [...masters].find((port) => port !== used)!;
    const since = instances.map(({ gateway }) => gateway.logs.length);
    await cluster.kill(victim);
    try {
      await cluster.waitHealthy({ without: victim, timeoutMs: 30_000 });
      // Requests on the master that is still there: Redis never failed them.
      expect(count(await inParallel(30, 3, () => roundRobin('/open')))).to.deep.equal({ 200: 30 });
      for (const { admin } of instances) {
        const ready = await send(`${admin}/readyz`);
        expect(ready.status, ready.text).to.equal(200);
      }
      const outages = instances.flatMap(({ gateway }, i) => gateway.logs.slice(since[i]).filter((line) => /^redis unavailable/.test(line.msg ?? '')));
      expect(outages.map((line) => line.msg)).to.deep.equal([]);
    } finally {
      await cluster.restart(victim);
      await cluster.waitHealthy({ timeoutMs: 30_000 });
    }
  });
});

/** Lets asynchronous writes to Redis and purge messages land. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 200));

async function inParallel(total: number, concurrency: number, request: () => Promise<TestResponse>): Promise<TestResponse[]> {
  const results: TestResponse[] = [];
  let started = 0;
  const client = async (): Promise<void> => {
    while (started < total) {
      started++;
      results.push(await request());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return results;
}

const count = (responses: TestResponse[]): Record<number, number> =>
  responses.reduce<Record<number, number>>((counts, r) => ({ ...counts, [r.status]: (counts[r.status] ?? 0) + 1 }), {});

/** Four clients sending to `path` round-robin until stopped or `maxRequests` were sent. */
function startRoundRobinLoad(roundRobin: (path: string) => Promise<TestResponse>, path: string, maxRequests: number) {
  const outcomes: string[] = [];
  let stopped = false;
  let waiters: { done: () => boolean; resolve: () => void }[] = [];
  const okInARow = (): number => {
    let n = 0;
    while (n < outcomes.length && outcomes[outcomes.length - 1 - n] === '200') n++;
    return n;
  };
  const client = async (): Promise<void> => {
    while (!stopped && outcomes.length < maxRequests) {
      const outcome = await roundRobin(path).then(
        (res) => (res.status === 200 ? '200' : `${res.status} ${res.json<{ error?: { code?: string } }>().error?.code ?? res.text}`),
        (error: NodeJS.ErrnoException) => error.code ?? error.message,
      );
      outcomes.push(outcome);
      waiters = waiters.filter((waiter) => !(waiter.done() && (waiter.resolve(), true)));
      // A refused client waits a little before it tries again, as a real one would: a failover of
      // several seconds must not use up the load's bounded count in fast 503s.
      if (outcome !== '200') await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Out of requests: whoever still waits will not be satisfied.
    for (const waiter of waiters) waiter.resolve();
  };
  const clients = Array.from({ length: 4 }, client);
  const until = (done: () => boolean): Promise<void> => (done() ? Promise.resolve() : new Promise((resolve) => waiters.push({ done, resolve })));
  return {
    outcomes,
    untilOk: (n: number) => until(() => outcomes.filter((o) => o === '200').length >= n),
    untilOkInARow: (n: number) => until(() => okInARow() >= n),
    async stop() {
      stopped = true;
      await Promise.all(clients);
    },
  };
}
