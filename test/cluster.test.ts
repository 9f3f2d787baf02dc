import { expect } from 'chai';
import type { ServerResponse } from 'node:http';
import { respawnDelay } from '../core/cluster/respawn-backoff.ts';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE, FIXTURE_PLUGINS, PLUGINS, startGateway, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startLoad } from './support/load.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

function configFor(upstream: TestUpstream, extra = ''): string {
  return `
    import { defineConfig } from '${CORE}';
    import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
    export default defineConfig({
      listen: { port: 0, host: '127.0.0.1' },
      ${extra}
      upstreams: { app: { targets: ['${upstream.url}'] } },
      plugins: [probe({ label: 'p' })],
      routes: [{ path: '/*', upstream: 'app' }],
    });
  `;
}

/** An upstream that holds `/slow` requests until the test releases them. */
async function holdingUpstream() {
  const held: ServerResponse[] = [];
  const arrivals: (() => void)[] = [];
  const upstream = await startUpstream((req, res) => {
    req.resume();
    if (req.url === '/slow') {
      held.push(res);
      arrivals.shift()?.();
      return;
    }
    res.end('fast');
  });
  return {
    upstream,
    /** Resolves when the next /slow request reaches the upstream. */
    nextArrival: () => new Promise<void>((resolve) => arrivals.push(resolve)),
    release: () => held.splice(0).forEach((res) => res.end('slow done')),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Worker pids seen answering batches of concurrent requests (until two are seen, at most 5 batches). */
async function servingPids(gateway: GatewayProcess): Promise<Set<string>> {
  const pids = new Set<string>();
  for (let batch = 0; batch < 5 && pids.size < 2; batch++) {
    const responses = await Promise.all(Array.from({ length: 16 }, () => send(`${gateway.url}/x`)));
    for (const res of responses) pids.add(String(res.headers['x-worker-pid']));
  }
  return pids;
}

describe('cluster', () => {
  for (const scheduling of ['os', 'round-robin'] as const) {
    describe(`workers (scheduling: ${scheduling})`, () => {
      let upstream: TestUpstream;
      let gateway: GatewayProcess;

      before(async () => {
        upstream = await startUpstream();
        gateway = await startGateway(configFor(upstream, `scheduling: '${scheduling}',`), { workers: 2 });
      });
      after(async () => {
        await gateway?.stop();
        await upstream?.close();
      });

      it('starts the number of workers asked for and shares connections across them', async () => {
        expect(gateway.workerPids).to.have.length(2);
        expect([...(await servingPids(gateway))].sort()).to.deep.equal(gateway.workerPids.map(String).sort());
      });

      it('replaces a worker that is killed, logs why, and keeps serving', async () => {
        const victim = gateway.workerPids[0]!;
        const readyBefore = gateway.logs.filter((l) => l.msg === 'worker ready').length;
        process.kill(victim, 'SIGKILL');
        const died = await gateway.waitForLog((l) => l.workerPid === victim && typeof l.msg === 'string' && l.msg.includes('killed by SIGKILL'));
        expect(died.msg).to.match(/respawning in \d+ ms/);
        expect(died.level).to.equal('warn');
        const ready = await gateway.waitForLog((l) => l.msg === 'worker ready' && gateway.logs.filter((x) => x.msg === 'worker ready').indexOf(l) >= readyBefore);
        expect(ready.workerPid).to.be.a('number').and.not.equal(victim);
        expect(ready.worker).to.equal(died.worker);
        const pids = await servingPids(gateway);
        expect(pids).to.include(String(ready.workerPid));
        expect(pids).not.to.include(String(victim));
      });
    });
  }

  describe('graceful shutdown', () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`on ${signal} finishes in-flight requests, takes no new ones, then exits 0`, async () => {
        const { upstream, nextArrival, release } = await holdingUpstream();
        const gateway = await startGateway(configFor(upstream), { workers: 2 });
        try {
          const arrived = nextArrival();
          const inflight = send(`${gateway.url}/slow`);
          await arrived;
          gateway.child.kill(signal);
          await gateway.waitForLog((l) => l.msg === 'draining' && l.inflight === 1);
          await gateway.waitForLog((l) => l.msg === 'drained');
          // A connection that arrives while the workers close their listeners is refused or reset by
          // the primary, or (if a worker still took it) answered with Connection: close; never kept.
          const late = await send(`${gateway.url}/x`).catch((error: { code?: string }) => error);
          if ('status' in late) expect(late.headers.connection).to.equal('close');
          else expect(late.code).to.be.oneOf(['ECONNREFUSED', 'ECONNRESET']);
          release();
          const res = await inflight;
          expect(res.status).to.equal(200);
          expect(res.text).to.equal('slow done');
          expect(res.headers.connection).to.equal('close');
          expect(await gateway.exited).to.equal(0);
        } finally {
          release();
          await gateway.stop();
          await upstream.close();
        }
      });
    }

    it('under continuous load, answers every request it accepted with 200 and exits 0', async () => {
      const upstream = await startUpstream();
      const gateway = await startGateway(configFor(upstream), { workers: 2 });
      try {
        const load = startLoad(`${gateway.url}/x`, { clients: 8, maxRequests: 4000 });
        await load.untilOk(300);
        gateway.child.kill('SIGTERM');
        expect(await gateway.exited).to.equal(0);
        await load.stop();
        const outcomes = load.outcomes;
        // A request is either answered 200, or finds no listener (refused, or reset in the accept
        // queue of a closing socket): never an error status, never a request dropped mid-way.
        const kinds = new Set(outcomes);
        for (const kind of kinds) expect(['status 200', 'ECONNREFUSED', 'ECONNRESET']).to.include(kind);
        expect(outcomes.filter((o) => o === 'status 200').length).to.be.at.least(300);
      } finally {
        await gateway.stop();
        await upstream.close();
      }
    });

    it('cuts requests still running at the drain timeout and still exits 0', async () => {
      const { upstream, nextArrival, release } = await holdingUpstream();
      const gateway = await startGateway(configFor(upstream, `shutdown: { drainTimeout: '300ms' },`));
      try {
        const arrived = nextArrival();
        const inflight = send(`${gateway.url}/slow`).catch((error: unknown) => error);
        await arrived;
        gateway.child.kill('SIGTERM');
        await gateway.waitForLog((l) => l.msg === 'drain timeout reached; closing remaining connections');
        expect(await inflight).to.be.instanceOf(Error);
        expect(await gateway.exited).to.equal(0);
      } finally {
        release();
        await gateway.stop();
        await upstream.close();
      }
    });
  });

  describe('crashes and signals', () => {
    it('replaces a worker that dies of an uncaught exception and logs the exception as the reason', async () => {
      const upstream = await startUpstream();
      const config = configFor(upstream).replace("routes: [{ path: '/*', upstream: 'app' }]", "routes: [{ path: '/crash', upstream: 'app', plugins: [probe({ label: 'c', crashLater: true })] }, { path: '/*', upstream: 'app' }]");
      const gateway = await startGateway(config);
      try {
        await send(`${gateway.url}/crash`).catch(() => null);
        const died = await gateway.waitForLog((l) => l.workerPid === gateway.workerPids[0] && l.respawnInMs !== undefined);
        expect(died.reason).to.equal('TG_ERR_INTERNAL: probe c crashed its worker');
        expect(died.msg).to.contain('exited with code 1 (TG_ERR_INTERNAL: probe c crashed its worker)');
        await gateway.waitForLog((l) => l.msg === 'worker ready' && l.workerPid !== gateway.workerPids[0]);
        expect((await send(`${gateway.url}/x`)).status).to.equal(200);
      } finally {
        await gateway.stop();
        await upstream.close();
      }
    });

  });

  describe('reload on SIGHUP', () => {
    /** A config (and a plugin file beside it) whose version shows in every response. */
    function writeVersion(dir: string, version: number): string {
      writeFileSync(
        join(dir, 'stamp.ts'),
        `import { definePlugin } from '${CORE}';
         export const stamp = definePlugin({ name: 'stamp', version: '1.0.0', setup: () => ({
           onResponse(_ctx, res) { res.headers.set('x-plugin-version', 'code-${version}'); } }) });`,
      );
      const file = join(dir, 'gateway.config.ts');
      writeFileSync(
        file,
        `import { defineConfig } from '${CORE}';
         import { headers } from '${PLUGINS}';
         import { stamp } from './stamp.ts';
         export default defineConfig({
           listen: { port: 0, host: '127.0.0.1' },
           upstreams: { app: { targets: ['${upstream.url}'] } },
           plugins: [headers({ response: { set: { 'x-config-version': '${version}' } } }), stamp()],
           routes: [{ path: '/x', upstream: 'app' }${version > 1 ? `, { path: '/added-in-${version}', upstream: 'app' }` : ''}],
         });`,
      );
      return file;
    }

    let upstream: TestUpstream;
    before(async () => {
      upstream = await startUpstream();
    });
    after(async () => {
      await upstream?.close();
    });

    it('rolls the workers onto the new config and plugin code without failing a request under load', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tollgate-reload-'));
      const gateway = await startGatewayFrom(writeVersion(dir, 1), { workers: 2 });
      try {
        const load = startLoad(`${gateway.url}/x`, { clients: 8, maxRequests: 4000 });
        await load.untilOk(200);
        const before = load.ok();
        writeVersion(dir, 2);
        gateway.child.kill('SIGHUP');
        await gateway.waitForLog((l) => l.msg === 'reload complete', 20_000);
        // Keep the load on while the old workers drain and exit.
        await Promise.all(gateway.workerPids.map((pid) => gateway.waitForLog((l) => l.pid === pid && l.msg === 'drained')));
        await load.stop();
        const failed = load.outcomes.filter((o) => o !== 'status 200');
        const failures = gateway.logs.filter((l) => l.msg === 'request' && l.status >= 500).map((l) => `${l.pid} ${l.code} ${l.err}`);
        expect(failed, failures.join('\n')).to.deep.equal([]);
        expect(load.ok() - before).to.be.above(0);
        const res = await send(`${gateway.url}/x`);
        expect(res.headers['x-config-version']).to.equal('2');
        expect(res.headers['x-plugin-version']).to.equal('code-2');
        expect((await send(`${gateway.url}/added-in-2`)).status).to.equal(200);
        expect(gateway.logs.filter((l) => typeof l.msg === 'string' && l.msg.endsWith(' replaced'))).to.have.length(2);
      } finally {
        await gateway.stop();
      }
    });

    it('reloads by itself when started with --watch and the config file changes', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tollgate-reload-'));
      const gateway = await startGatewayFrom(writeVersion(dir, 1), { args: ['--watch'] });
      try {
        writeVersion(dir, 3);
        const done = await gateway.waitForLog((l) => l.msg === 'reload complete');
        expect(gateway.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('reload requested'))?.trigger).to.equal('config file changed');
        expect(done).to.have.property('workers');
        expect((await send(`${gateway.url}/x`)).headers['x-config-version']).to.equal('3');
        expect((await send(`${gateway.url}/added-in-3`)).status).to.equal(200);
      } finally {
        await gateway.stop();
      }
    });

    it('reloads with --watch when a Kubernetes ConfigMap volume swaps its ..data link to a new version', async () => {
      // A ConfigMap volume: the file is a link into `..data`, itself a link to a timestamped folder
      // that the kubelet replaces by renaming a new link over `..data`. The file itself never changes.
      const volume = mkdtempSync(join(tmpdir(), 'tollgate-configmap-'));
      const version = (n: number): void => {
        const folder = join(volume, `..2026_11_27_0${n}`);
        mkdirSync(folder);
        writeVersion(folder, n);
        symlinkSync(`..2026_11_27_0${n}`, join(volume, '..data_tmp'));
        renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
      };
      version(1);
      for (const name of ['gateway.config.ts', 'stamp.ts']) symlinkSync(`..data/${name}`, join(volume, name));
      const gateway = await startGatewayFrom(join(volume, 'gateway.config.ts'), { args: ['--watch'] });
      try {
        expect((await send(`${gateway.url}/x`)).headers['x-config-version']).to.equal('1');
        version(4);
        await gateway.waitForLog((l) => l.msg === 'reload complete');
        expect((await send(`${gateway.url}/x`)).headers['x-config-version']).to.equal('4');
      } finally {
        await gateway.stop();
      }
    });

    it('rejects a broken config, says why, and keeps serving the old one', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tollgate-reload-'));
      const file = writeVersion(dir, 1);
      const gateway = await startGatewayFrom(file);
      try {
        writeFileSync(file, readFileSync(file, 'utf8').replace("upstream: 'app' }]", "upstream: 'missing' }]"));
        gateway.child.kill('SIGHUP');
        const rejected = await gateway.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reload rejected'));
        expect(rejected.msg).to.contain('routes[0] (* /x) › upstream: no upstream named "missing"');
        const res = await send(`${gateway.url}/x`);
        expect(res.status).to.equal(200);
        expect(res.headers['x-config-version']).to.equal('1');
        expect(gateway.child.exitCode).to.equal(null);
      } finally {
        await gateway.stop();
      }
    });
  });

  describe('a worker killed under load', () => {
    it('fails at most the requests that were on that worker, and the others keep being served', async () => {
      const upstream = await startUpstream();
      const gateway = await startGateway(configFor(upstream), { workers: 2 });
      try {
        const CLIENTS = 8;
        const load = startLoad(`${gateway.url}/x`, { clients: CLIENTS, maxRequests: 3000 });
        await load.untilOk(200);
        const okBeforeKill = load.ok();
        process.kill(gateway.workerPids[0]!, 'SIGKILL');
        await load.untilOk(okBeforeKill + 300);
        await load.stop();
        const failed = load.outcomes.filter((o) => o !== 'status 200');
        // Each client has one request in flight at a time: only those on the killed worker can fail.
        expect(failed.length).to.be.at.most(CLIENTS);
        expect(load.ok() - okBeforeKill).to.be.at.least(300);
      } finally {
        await gateway.stop();
        await upstream.close();
      }
    });
  });

  describe('crash loops', () => {
    it('waits longer before each replacement of a worker that keeps dying young', async () => {
      const upstream = await startUpstream();
      const gateway = await startGateway(configFor(upstream));
      try {
        const delays: number[] = [];
        const seen = new Set(gateway.workerPids);
        let victim = gateway.workerPids[0]!;
        for (let death = 0; death < 3; death++) {
          process.kill(victim, 'SIGKILL');
          const died = await gateway.waitForLog((l) => l.workerPid === victim && l.respawnInMs !== undefined);
          delays.push(died.respawnInMs);
          const ready = await gateway.waitForLog((l) => l.msg === 'worker ready' && !seen.has(l.workerPid));
          seen.add(ready.workerPid);
          victim = ready.workerPid;
        }
        expect(delays).to.deep.equal([100, 200, 400]);
        expect((await send(`${gateway.url}/x`)).status).to.equal(200);
      } finally {
        await gateway.stop();
        await upstream.close();
      }
    });
  });

  describe('abrupt stops', () => {
    it('stops at once with exit code 130 on a second signal during a drain', async () => {
      const { upstream, nextArrival, release } = await holdingUpstream();
      const gateway = await startGateway(configFor(upstream));
      try {
        const arrived = nextArrival();
        const inflight = send(`${gateway.url}/slow`).catch((error: unknown) => error);
        await arrived;
        gateway.child.kill('SIGTERM');
        await gateway.waitForLog((l) => l.msg === 'draining');
        gateway.child.kill('SIGTERM');
        expect(await gateway.exited).to.equal(130);
        expect(await inflight).to.be.instanceOf(Error);
      } finally {
        release();
        await upstream.close();
      }
    });

    it('still serves and stops cleanly after whoever reads its log has gone away', async () => {
      const upstream = await startUpstream();
      const gateway = await startGateway(configFor(upstream), { workers: 2 });
      try {
        gateway.child.stdout!.destroy();
        for (let i = 0; i < 4; i++) expect((await send(`${gateway.url}/x`)).status).to.equal(200);
        gateway.child.kill('SIGTERM');
        expect(await gateway.exited).to.equal(0);
      } finally {
        await gateway.stop();
        await upstream.close();
      }
    });

    it('lets workers drain and exit by themselves when the primary is killed', async () => {
      const upstream = await startUpstream();
      const gateway = await startGateway(configFor(upstream), { workers: 2 });
      try {
        gateway.child.kill('SIGKILL');
        // Not our children: poll their liveness, bounded, instead of waiting on an exit event.
        for (let attempt = 0; attempt < 100 && gateway.workerPids.some(isAlive); attempt++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        expect(gateway.workerPids.filter(isAlive)).to.deep.equal([]);
      } finally {
        gateway.workerPids.filter(isAlive).forEach((pid) => process.kill(pid, 'SIGKILL'));
        await upstream.close();
      }
    });
  });

  describe('failed starts', () => {
    /** What startGateway rejected with, for a config built around a fresh upstream. */
    async function startFailure(config: (upstream: TestUpstream) => string, workers = 1): Promise<string> {
      const upstream = await startUpstream();
      try {
        return await startGateway(config(upstream), { workers }).then(
          () => 'started',
          (error: Error) => error.message,
        );
      } finally {
        await upstream.close();
      }
    }

    it('exits 1 with the plugin and the reason when a plugin fails to set up', async () => {
      const message = await startFailure((u) => configFor(u).replace("probe({ label: 'p' })", "probe({ label: 'p', throwIn: 'setup' })"));
      expect(message).to.contain('gateway exited (1) before it was ready');
      expect(message).to.contain('TG_ERR_PLUGIN_SETUP');
      expect(message).to.contain('plugins[0] "probe": setup failed: probe p refuses to start');
    });

    it('exits 1 naming the address when the port is taken', async () => {
      let port = 0;
      const message = await startFailure((u) => configFor(u).replace('listen: { port: 0,', `listen: { port: ${(port = u.port)},`));
      expect(message).to.contain(`TG_ERR_LISTEN: cannot listen on 127.0.0.1:${port}: the address is already in use`);
    });

    it('survives telling a worker that has just died to stop: every worker failing at once still exits 1 cleanly', async () => {
      // Four workers die on the taken port at nearly the same moment; the primary's drain messages to
      // the others then often fail with EPIPE, which must not crash it.
      for (let attempt = 0; attempt < 8; attempt++) {
        let port = 0;
        const message = await startFailure((u) => configFor(u).replace('listen: { port: 0,', `listen: { port: ${(port = u.port)},`), 4);
        expect(message).to.contain(`TG_ERR_LISTEN: cannot listen on 127.0.0.1:${port}`);
        expect(message).not.to.contain('EPIPE');
        expect(message).to.contain('gateway exited (1)');
      }
    });

    it('stops the workers still starting and exits 1 without waiting for the drain timeout', async () => {
      const slowAndFailing = "probe({ label: 'p', failOnWorker: 2, setupDelayMs: 1000 })";
      const message = await startFailure((u) => configFor(u).replace("probe({ label: 'p' })", slowAndFailing), 2);
      expect(message).to.contain('gateway exited (1) before it was ready');
      expect(message).to.contain('probe p refuses to start');
    });
  });

  describe('respawn backoff', () => {
    it('replaces a worker at once after a healthy run, then backs off exponentially up to 30 s', () => {
      expect([0, 1, 2, 3, 4, 5].map(respawnDelay)).to.deep.equal([0, 100, 200, 400, 800, 1600]);
      expect(respawnDelay(20)).to.equal(30_000);
    });
  });
});
