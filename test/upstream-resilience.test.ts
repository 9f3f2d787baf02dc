import { expect } from 'chai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send, type TestResponse } from './support/http.ts';
import { closedPort, startUpstream } from './support/upstream.ts';

/** An upstream that names itself in every answer; `mode` decides what it does. */
async function named(name: string) {
  const state = { mode: 'ok' as 'ok' | '503' | 'slow' | 'hang' | 'dribble', hits: 0, healthy: true, checks: 0 };
  const upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/health') {
      state.checks++;
      req.resume();
      return void res.writeHead(state.healthy ? 200 : 500, { 'content-length': '0' }).end();
    }
    state.hits++;
    req.resume();
    const answer = (status: number): void => {
      res.writeHead(status, { 'x-served-by': name, 'content-length': String(name.length) });
      res.end(name);
    };
    if (state.mode === '503') return answer(503);
    if (state.mode === 'slow') return void setTimeout(() => answer(200), 300);
    if (state.mode === 'hang') return;
    if (state.mode === 'dribble') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('a little');
      return;
    }
    answer(200);
  });
  return { upstream, state };
}

const count = (responses: TestResponse[]): Record<string, number> =>
  responses.reduce<Record<string, number>>((acc, r) => {
    const key = String(r.headers['x-served-by'] ?? r.status);
    return { ...acc, [key]: (acc[key] ?? 0) + 1 };
  }, {});

describe('upstream resilience', () => {
  let a: Awaited<ReturnType<typeof named>>;
  let b: Awaited<ReturnType<typeof named>>;
  let refused = 0;
  let gateway: GatewayProcess;

  before(async () => {
    [a, b] = await Promise.all([named('a'), named('b')]);
    refused = await closedPort();
    const A = a.upstream.url;
    const B = b.upstream.url;
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: {
          withDead: { targets: ['http://127.0.0.1:${refused}', '${A}'], health: { failures: 100 } },
          weighted: { targets: [{ url: '${A}', weight: 3 }, '${B}'] },
          flaky: { targets: ['${A}', '${B}'], health: { failures: 2, ejectFor: '2s' }, retries: { attempts: 0 } },
          allDead: { targets: ['http://127.0.0.1:${refused}'], health: { failures: 1, ejectFor: '10s' } },
          retryStatus: { targets: ['${A}', '${B}'], retries: { statuses: [503], backoff: 0 }, health: { failures: 1000 } },
          retrySame: { targets: ['${A}'], retries: { statuses: [503], backoff: 0 }, health: { failures: 1000 } },
          budget: { targets: ['${B}'], retries: { attempts: 3, statuses: [503], backoff: 0, budget: 0.2 }, health: { failures: 1000 } },
          least: { targets: ['${A}', '${B}'], balance: 'least-outstanding' },
          sticky: { targets: ['${A}', '${B}'], balance: { hash: { header: 'x-user' } } },
          guarded: { targets: ['${A}'], limits: { maxConcurrent: 2 } },
          queued: { targets: ['${A}'], pool: { connections: 1 }, limits: { maxPending: 1 } },
          checked: { targets: ['${A}', '${B}'], health: { active: { path: '/health', interval: '200ms', healthyThreshold: 1, unhealthyThreshold: 1 } } },
        },
        routes: [
          { path: '/dead', upstream: 'withDead' },
          { path: '/weighted', upstream: 'weighted' },
          { path: '/flaky', upstream: 'flaky' },
          { path: '/all-dead', upstream: 'allDead' },
          { path: '/budget', upstream: 'budget' },
          { path: '/retry-status', upstream: 'retryStatus' },
          { path: '/retry-same', upstream: 'retrySame' },
          { path: '/least', upstream: 'least' },
          { path: '/sticky', upstream: 'sticky' },
          { path: '/guarded', upstream: 'guarded' },
          { path: '/checked', upstream: 'checked' },
          { path: '/queued', upstream: 'queued' },
          { path: '/deadline', upstream: 'guarded', timeouts: { total: '300ms' } },
          { path: '/quick-headers', upstream: 'guarded', timeouts: { headers: '200ms' } },
        ],
      });
    `, { workers: 2 });
  });
  after(async () => {
    await gateway?.stop();
    await Promise.all([a?.upstream.close(), b?.upstream.close()]);
  });

  beforeEach(() => {
    a.state.mode = 'ok';
    b.state.mode = 'ok';
    a.state.healthy = true;
  });

  it('retries a GET that found a target refusing connections on another target; never a POST', async () => {
    const gets = await Promise.all(Array.from({ length: 10 }, () => send(`${gateway.url}/dead`)));
    expect(gets.map((r) => r.status)).to.deep.equal(Array(10).fill(200));
    const posts = await Promise.all(Array.from({ length: 10 }, () => send(`${gateway.url}/dead`, { method: 'POST', body: 'x' })));
    // Round-robin sends about half of them to the dead target, and those fail: a POST is not retried.
    expect(posts.filter((r) => r.status === 502).length).to.be.above(0);
    for (const failed of posts.filter((r) => r.status === 502)) expect(failed.json().error.code).to.equal('TG_ERR_UPSTREAM_UNAVAILABLE');
  });

  it('spreads requests by weight (3:1 within 5 %)', async () => {
    const responses: TestResponse[] = [];
    for (let i = 0; i < 200; i++) responses.push(await send(`${gateway.url}/weighted`));
    const { a: toA = 0, b: toB = 0 } = count(responses);
    expect(toA + toB).to.equal(200);
    expect(toA / 200).to.be.within(0.7, 0.8);
  });

  it('leaves out a target that keeps answering 503, then tries it again after ejectFor', async () => {
    b.state.mode = '503';
    // Each of the two workers leaves b out once it has seen it fail twice. Which worker a connection
    // lands on is the kernel's choice, so send until both have (12 requests were not always enough).
    const ejections = (): number =>
      new Set(gateway.logs.filter((line) => /^upstream "flaky": .* failed 2 times in a row; left out for 2000 ms/.test(line.msg ?? '')).map((line) => line.pid)).size;
    for (let i = 0; i < 60 && ejections() < 2; i++) await send(`${gateway.url}/flaky`);
    expect(ejections(), 'workers that left b out').to.equal(2);
    const hitsWhileEjected = b.state.hits;
    const responses: TestResponse[] = [];
    for (let i = 0; i < 10; i++) responses.push(await send(`${gateway.url}/flaky`));
    expect(b.state.hits, 'b is not asked while it is left out').to.equal(hitsWhileEjected);
    expect(count(responses)).to.deep.equal({ a: 10 });
    b.state.mode = 'ok';
    // ejectFor is 2 s so that the 22 requests above fit inside it on a loaded machine (at 700 ms one
    // full suite run saw b asked again before the tenth).
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const after: TestResponse[] = [];
    for (let i = 0; i < 10; i++) after.push(await send(`${gateway.url}/flaky`));
    expect(count(after).b ?? 0, 'b is back').to.be.at.least(3);
    expect(gateway.logs.some((line) => /failed 2 times in a row; left out for 2000 ms/.test(line.msg ?? ''))).to.equal(true);
  });

  it('answers 503 at once when every target is left out', async () => {
    await send(`${gateway.url}/all-dead`);
    await send(`${gateway.url}/all-dead`);
    const res = await send(`${gateway.url}/all-dead`);
    expect(res.status).to.equal(503);
    expect(res.json().error.code).to.equal('TG_ERR_NO_HEALTHY_UPSTREAM');
  });

  it('retries a GET answered with a listed status on another target; the client sees only the second answer', async () => {
    a.state.mode = '503';
    const hitsBefore = a.state.hits;
    const responses: TestResponse[] = [];
    for (let i = 0; i < 10; i++) responses.push(await send(`${gateway.url}/retry-status`));
    expect(count(responses)).to.deep.equal({ b: 10 });
    expect(a.state.hits - hitsBefore, 'attempts that a answered with 503 first').to.be.above(0);
  });

  it('keeps the connection of an answer it retried open (the small body is read, not cut off)', async () => {
    a.state.mode = '503';
    const sockets = new Map<number, Socket>();
    const track = (socket: Socket): void => void sockets.set(socket.remotePort ?? 0, socket);
    a.upstream.server.on('connection', track);
    try {
      const seen = a.upstream.requests.length;
      const res = await send(`${gateway.url}/retry-same`);
      // One target: the retry goes back to it, and gets 503 again.
      expect(res.status).to.equal(503);
      const attempts = a.upstream.requests.slice(seen);
      expect(attempts).to.have.length(2);
      // A connection the gateway cut would have closed before its answer reached the client; the
      // pause lets the upstream's side hear of it.
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const attempt of attempts) {
        const socket = sockets.get(attempt.remotePort);
        if (socket !== undefined) expect(socket.destroyed, `the connection from port ${attempt.remotePort} is open`).to.equal(false);
      }
      expect(sockets.get(attempts[0]!.remotePort), 'the first attempt came on a new connection').to.not.equal(undefined);
    } finally {
      a.upstream.server.off('connection', track);
    }
  });

  it('caps retries with the budget during an outage, so they cannot multiply the load', async () => {
    b.state.mode = '503';
    const before = b.state.hits;
    for (let i = 0; i < 100; i++) expect((await send(`${gateway.url}/budget`)).status).to.equal(503);
    // Without a budget: 100 requests x 4 attempts. With it: per worker 10 + 20 % of its requests.
    expect(b.state.hits - before).to.be.within(100, 100 + 2 * 10 + 0.2 * 100 + 2);
  });

  it('sends more requests to the target that answers faster with least-outstanding', async () => {
    a.state.mode = 'slow';
    // Sixteen clients, each sending its next request when the last is answered: the slow target holds
    // its requests, the fast one frees its slot at once and takes the next. Counts are per worker, and
    // the kernel may hand one worker few of the connections: a worker with one request in flight at a
    // time sees a tie on every pick and alternates. Sixteen clients keep several in flight on both.
    const responses: TestResponse[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 4; i++) responses.push(await send(`${gateway.url}/least`));
      }),
    );
    const { a: toA = 0, b: toB = 0 } = count(responses);
    expect(toA + toB).to.equal(64);
    // Round robin would split them evenly (32 to 32). The first burst does split nearly evenly (the
    // fast target is busy too while all sixteen arrive at once); after it, the slow target gets few
    // (measured: 47-55 fast to 9-17 slow; one CI run on a loaded machine, 42 to 22).
    expect(toB).to.be.above(1.5 * toA);
  });

  it('keeps a key on one target across workers with hash balancing, and spreads the keys', async () => {
    const targets = new Map<string, Set<string>>();
    for (let user = 0; user < 20; user++) {
      for (let i = 0; i < 4; i++) {
        const res = await send(`${gateway.url}/sticky`, { headers: { 'x-user': `user-${user}` } });
        const seen = targets.get(`user-${user}`) ?? new Set<string>();
        seen.add(String(res.headers['x-served-by']));
        targets.set(`user-${user}`, seen);
      }
    }
    for (const seen of targets.values()) expect(seen.size).to.equal(1);
    const used = new Set([...targets.values()].map((seen) => [...seen][0]));
    expect(used).to.have.all.keys('a', 'b');
    // Both workers served sticky requests, so the mapping held across them.
    const workers = new Set(gateway.logs.filter((l) => l.msg === 'request' && l.path === '/sticky').map((l) => l.worker));
    expect(workers.size).to.equal(2);
  });

  it('answers 503 at once past maxConcurrent requests in flight', async () => {
    a.state.mode = 'slow';
    // One worker's view: send over one connection per request to the same worker is not controllable,
    // so the limit (2 per worker) is exceeded with 12 at once across both workers.
    const responses = await Promise.all(Array.from({ length: 12 }, () => send(`${gateway.url}/guarded`)));
    const overloaded = responses.filter((r) => r.status === 503);
    expect(overloaded.length).to.be.at.least(8);
    for (const r of overloaded) expect(r.json().error.code).to.equal('TG_ERR_UPSTREAM_OVERLOADED');
    expect(responses.filter((r) => r.status === 200).length).to.be.within(2, 4);
  });

  it('takes a target out of every worker while its active health check fails, checking once per host', async () => {
    const checksBefore = a.state.checks;
    const startedAt = Date.now();
    a.state.healthy = false;
    await gateway.waitForLog((line) => /health check: .* is unhealthy/.test(line.msg ?? ''));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the message reaches the workers
    const whileDown: TestResponse[] = [];
    for (let i = 0; i < 20; i++) whileDown.push(await send(`${gateway.url}/checked`));
    expect(count(whileDown)).to.deep.equal({ b: 20 });
    a.state.healthy = true;
    await gateway.waitForLog((line) => /health check: .* is healthy again/.test(line.msg ?? ''));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const afterwards: TestResponse[] = [];
    for (let i = 0; i < 20; i++) afterwards.push(await send(`${gateway.url}/checked`));
    expect(count(afterwards).a ?? 0).to.be.at.least(5);
    // One check per interval from the host (the primary), not one per worker.
    const intervals = (Date.now() - startedAt) / 200;
    expect(a.state.checks - checksBefore).to.be.at.most(Math.ceil(intervals) + 2);
  });

  it("answers 504 when the route's total timeout expires before the upstream answers", async () => {
    a.state.mode = 'hang';
    const res = await send(`${gateway.url}/deadline`);
    expect(res.status).to.equal(504);
    expect(res.json().error.code).to.equal('TG_ERR_UPSTREAM_TIMEOUT');
    const quick = await send(`${gateway.url}/quick-headers`);
    expect(quick.status).to.equal(504);
  });

  it("cuts a response still streaming when the route's total timeout expires", async () => {
    a.state.mode = 'dribble';
    const error = await send(`${gateway.url}/deadline`).then(
      (res) => `completed with ${res.status} and ${res.text.length} bytes`,
      (e: Error) => e.message,
    );
    expect(error).to.match(/aborted|socket hang up|ECONNRESET/);
    await gateway.waitForLog((line) => line.path === '/deadline' && line.code === 'TG_ERR_UPSTREAM_TIMEOUT' && line.status === 200);
  });

  it('answers 503 at once when maxPending requests already wait for a connection', async () => {
    a.state.mode = 'slow';
    // One connection per worker: per worker, one request in flight and at most one waiting (a request
    // waiting for the connection to open counts as waiting), the rest refused.
    const responses = await Promise.all(Array.from({ length: 12 }, () => send(`${gateway.url}/queued`)));
    const refused = responses.filter((r) => r.status === 503);
    expect(refused.length).to.be.at.least(8);
    for (const r of refused) expect(r.json().error.code).to.equal('TG_ERR_UPSTREAM_OVERLOADED');
    expect(responses.filter((r) => r.status === 200).length).to.be.within(1, 4);
  });
});
