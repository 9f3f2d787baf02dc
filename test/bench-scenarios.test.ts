import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../core/index.ts';
import { DEFAULT_WARM_UP_SECONDS, parseWarmUpSeconds } from '../bench/load.ts';
import { cpuTicks, forkHelper, largestMemory, stopProcess } from '../bench/processes.ts';
import { BARE, pluginScenarios } from '../bench/scenarios.ts';
import { writeBenchConfig } from '../bench/tollgate.ts';
import { REPO } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream } from './support/upstream.ts';

describe('bench scenarios', () => {
  it('gives every scenario its own command-line id and table name', async () => {
    const all = [BARE, ...(await pluginScenarios())];
    expect(new Set(all.map((scenario) => scenario.id)).size).to.equal(all.length);
    expect(new Set(all.map((scenario) => scenario.name)).size).to.equal(all.length);
  });

  it('writes a config the gateway accepts for every scenario', async () => {
    for (const scenario of [BARE, ...(await pluginScenarios())]) {
      const path = writeBenchConfig({ ...scenario.options({ redisUrl: 'redis://127.0.0.1:1', sinkPort: 1 }), upstreamPort: 1 });
      const loaded = await loadConfig({ path }).catch((error: Error) => expect.fail(`${scenario.id}: ${error.message}`));
      expect(loaded.config.routes, scenario.id).to.have.length(1);
    }
  });

  it('bench:ab refuses a scenario it does not know, naming the ones it does', () => {
    const run = spawnSync(process.execPath, [join(REPO, 'bench/ab.ts'), 'no-such-scenario'], { encoding: 'utf8' });
    expect(run.status).to.equal(2);
    expect(run.stderr).to.include('unknown scenario "no-such-scenario"').and.include('full-chain');
  });

  it('bench:ab refuses a warm-up that is not a whole number of seconds', () => {
    const run = spawnSync(process.execPath, [join(REPO, 'bench/ab.ts'), '--warmup', '1.5', 'bare'], { encoding: 'utf8' });
    expect(run.status).to.equal(2);
    expect(run.stderr).to.include('--warmup must be a whole number of seconds (0 for no warm-up), not "1.5"');
  });
});

describe('bench warm-up', () => {
  it('defaults to three seconds when unset', () => {
    expect(DEFAULT_WARM_UP_SECONDS).to.equal(3);
    expect(parseWarmUpSeconds(undefined, 'BENCH_WARMUP')).to.equal(3);
    expect(parseWarmUpSeconds('', 'BENCH_WARMUP')).to.equal(3);
  });

  it('takes whole seconds, 0 meaning none', () => {
    expect(parseWarmUpSeconds('0', 'BENCH_WARMUP')).to.equal(0);
    expect(parseWarmUpSeconds('10', 'BENCH_WARMUP')).to.equal(10);
  });

  it('names the setting when a value is not whole seconds', () => {
    for (const bad of ['-1', '2.5', 'soon']) {
      expect(() => parseWarmUpSeconds(bad, 'BENCH_WARMUP')).to.throw(`BENCH_WARMUP must be a whole number of seconds (0 for no warm-up), not "${bad}"`);
    }
  });
});

describe('bench process readings', () => {
  it('names a measured process that has exited instead of failing on /proc', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    expect(() => cpuTicks([gone])).to.throw(`process ${gone} is gone: it exited while it was being measured`);
    expect(() => largestMemory([gone])).to.throw(`process ${gone} is gone`);
  });
});

describe('bench floor proxy', () => {
  it("relays the upstream's status, headers and body, without hop-by-hop fields either way (a baseline that proxies for real)", async () => {
    const upstream = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ url: req.url, headers: req.headers });
        res.writeHead(203, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-upstream': 'yes', connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'dropped', 'keep-alive': 'timeout=99' });
        res.end(body);
      });
    });
    const floor = await forkHelper(join(REPO, 'bench/floor-proxy.ts'), undefined, [String(upstream.port)]);
    try {
      const res = await send(`http://127.0.0.1:${floor.port}/items?page=2`, { headers: { 'x-client': 'wrk', connection: 'keep-alive, x-hop', 'x-hop': 'dropped' } });
      expect(res.status).to.equal(203);
      expect(res.headers['x-upstream']).to.equal('yes');
      expect(res.headers).to.not.have.property('x-upstream-hop');
      expect(res.headers['keep-alive'] ?? '').to.not.include('timeout=99');
      const seen = res.json();
      expect(seen.url).to.equal('/items?page=2');
      expect(seen.headers['x-client']).to.equal('wrk');
      expect(seen.headers).to.not.have.property('x-hop');
    } finally {
      await stopProcess(floor.child);
      await upstream.close();
    }
  });
});
