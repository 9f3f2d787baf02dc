import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE, runCli, startGateway, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';
import { startRedis, type TestRedis } from './support/redis.ts';
import { waitFor } from './support/wait.ts';

const TOKEN = 'admin-token-for-tests-0123456789';

describe('admin listener', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let file: string;
  let admin: string;

  before(async () => {
    upstream = await startUpstream();
    const adminPort = await closedPort();
    file = join(mkdtempSync(join(tmpdir(), 'tollgate-admin-')), 'gateway.config.ts');
    writeFileSync(
      file,
      `import { defineConfig } from '${CORE}';
       export default defineConfig({
         listen: { port: 0, host: '127.0.0.1' },
         admin: { port: ${adminPort}, token: '${TOKEN}' },
         upstreams: { app: { targets: ['${upstream.url}'] } },
         routes: [{ path: '/x', upstream: 'app' }],
       });`,
    );
    gateway = await startGatewayFrom(file, { workers: 2 });
    admin = `http://127.0.0.1:${adminPort}`;
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  const authorized = { authorization: `Bearer ${TOKEN}` };

  it('answers the probes without a token', async () => {
    expect((await send(`${admin}/healthz`)).json()).to.deep.equal({ status: 'ok' });
    const ready = await send(`${admin}/readyz`);
    expect(ready.status).to.equal(200);
    expect(ready.json()).to.deep.equal({ ready: true });
  });

  it('keeps /status and /reload behind the token', async () => {
    for (const [method, path] of [['GET', '/status'], ['POST', '/reload']]) {
      const res = await send(`${admin}${path}`, { method, headers: { authorization: 'Bearer wrong-token-wrong-token!!' } });
      expect(res.status, path).to.equal(401);
    }
  });

  it('shows the running workers in /status', async () => {
    const status = (await send(`${admin}/status`, { headers: authorized })).json();
    expect(status).to.include({ config: file, state: 'serving', pid: gateway.child.pid });
    expect(status.workers.map((w: { pid: number }) => w.pid).sort()).to.deep.equal([...gateway.workerPids].sort());
    expect(status.workers.every((w: { ready: boolean }) => w.ready)).to.equal(true);
  });

  it('is never served on the public port', async () => {
    const res = await send(`${gateway.url}/healthz`);
    expect(res.status).to.equal(404);
    expect(res.json().error.code).to.equal('TG_ERR_ROUTE_NOT_FOUND');
  });

  it('reloads through tollgate reload, replacing every worker', async () => {
    const { code, stdout, stderr } = await runCli(['reload', '--config', file]);
    expect(code, stderr).to.equal(0);
    expect(stdout).to.equal('reloaded\n');
    const status = (await send(`${admin}/status`, { headers: authorized })).json();
    expect(status.reloads).to.equal(1);
    for (const worker of status.workers) expect(gateway.workerPids).not.to.include(worker.pid);
    expect((await send(`${gateway.url}/x`)).status).to.equal(200);
  });

  it('answers 422 with the problems for a reload of a broken config, and keeps serving', async () => {
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, good.replace("path: '/x'", "path: 'x'"));
    try {
      const res = await send(`${admin}/reload`, { method: 'POST', headers: authorized });
      expect(res.status).to.equal(422);
      expect(res.json().result).to.equal('rejected');
      expect(res.json().problem).to.contain('routes[0] (* x) › path: a route path starts with "/"');
      expect((await send(`${gateway.url}/x`)).status).to.equal(200);
    } finally {
      writeFileSync(file, good);
    }
  });
});

describe('admin listener with a required Redis', () => {
  let upstream: TestUpstream;
  let redis: TestRedis;
  let gateway: GatewayProcess;
  let admin: string;

  before(async () => {
    upstream = await startUpstream();
    redis = await startRedis();
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    gateway = await startGateway(
      `import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        admin: { port: ${adminPort} },
        redis: { url: '${redis.url}', required: true },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [{ path: '/', upstream: 'app' }],
      });`,
      { workers: 2 },
    );
  });
  after(async () => {
    await gateway?.stop();
    await redis?.stop();
    await upstream?.close();
  });

  const until = (status: number): Promise<void> => waitFor(async () => (await send(`${admin}/readyz`)).status === status, `/readyz ${status}`);
  const redisStates = async (): Promise<string[]> => (await send(`${admin}/status`)).json().workers.map((w: { redis: string }) => w.redis);

  it('answers /readyz 503 while the workers cannot reach Redis, and 200 once they can again', async () => {
    await until(200);
    expect(await redisStates()).to.deep.equal(['up', 'up']);
    await redis.kill();
    try {
      await until(503);
      // 503 as soon as one worker has noticed; the other notices a moment later.
      await waitFor(async () => (await redisStates()).every((state) => state === 'down'), 'both workers see Redis down');
      // /status says why, per worker: the connection lost, then the reconnects refused.
      const problems = (await send(`${admin}/status`)).json().workers.map((w: { redisProblem?: string }) => w.redisProblem);
      for (const problem of problems) expect(problem).to.match(new RegExp(`^${redis.url}: (the connection was lost|connect ECONNREFUSED)`));
      // The gateway itself keeps serving: readiness is for the load balancer's choice.
      expect((await send(`${gateway.url}/`)).status).to.equal(200);
    } finally {
      await redis.restart();
    }
    await until(200);
  });
});
