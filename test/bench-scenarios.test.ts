import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../core/index.ts';
import { BARE, pluginScenarios } from '../bench/scenarios.ts';
import { writeBenchConfig } from '../bench/tollgate.ts';
import { REPO } from './support/gateway-process.ts';

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
});
