import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CORE, FIXTURE_PLUGINS, REPO, startGatewayFrom, writeConfig } from './support/gateway-process.ts';
import { send } from './support/http.ts';

const run = promisify(execFile);
const STRIPPED_SOURCES = join(REPO, 'core/modules/stripped-sources.mjs');

// The config and a task module next to it, as a project lays them out: the plugin reports whether
// the worker, and the offload thread that runs the task, loaded Node's type stripper.
const reportConfig = `
  import { defineConfig, definePlugin, reply } from '${CORE}';
  import { moduleReport } from '${FIXTURE_PLUGINS}/module-report.ts';
  const threadReport = definePlugin({
    name: 'thread-report',
    version: '1.0.0',
    setup: async (_options, gw) => {
      const task = await gw.offload.task<() => boolean>(new URL('./stripper-loaded.ts', import.meta.url));
      return { onRequest: async () => reply.json(200, { typeStripper: await task.run(undefined as never, { mode: 'thread' }) }) };
    },
  });
  export default defineConfig({
    listen: { port: 0, host: '127.0.0.1' },
    upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
    routes: [
      { path: '/report', upstream: 'app', plugins: [moduleReport()] },
      { path: '/thread-report', upstream: 'app', plugins: [threadReport()] },
    ],
  });
`;

const stripperLoadedTask = `export default function stripperLoaded(): boolean {
  return (process as unknown as { moduleLoadList: string[] }).moduleLoadList.some((name) => name.includes('amaro'));
}
`;

/** Asks the worker and one of its offload threads whether they loaded Node's type stripper. */
async function workerLoadedTypeStripper(cacheDir: string): Promise<{ typeStripper: boolean; threadTypeStripper: boolean; warnings: string[] }> {
  const config = writeConfig(reportConfig);
  writeFileSync(join(dirname(config), 'stripper-loaded.ts'), stripperLoadedTask);
  const gateway = await startGatewayFrom(config, { env: { TOLLGATE_CACHE_DIR: cacheDir } });
  try {
    const res = await send(`${gateway.url}/report`);
    expect(res.status).to.equal(200);
    const thread = await send(`${gateway.url}/thread-report`);
    expect(thread.status).to.equal(200);
    const warnings = gateway.logs.filter((line) => line.level === 'warn').map((line) => String(line.msg));
    return { typeStripper: (res.json() as { typeStripper: boolean }).typeStripper, threadTypeStripper: (thread.json() as { typeStripper: boolean }).typeStripper, warnings };
  } finally {
    await gateway.stop();
  }
}

/** Runs `script` as an ES module in a fresh node and returns what it prints. */
async function freshNode(script: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return stdout.trim();
}

describe('stripped sources for workers', function () {
  this.timeout(60_000);

  it('a worker and its offload threads never load Node’s TypeScript stripper: the primary strips their modules', async () => {
    const cold = mkdtempSync(join(tmpdir(), 'tollgate-cache-'));
    const result = await workerLoadedTypeStripper(cold);
    expect(result.typeStripper).to.equal(false);
    expect(result.threadTypeStripper).to.equal(false);
    expect(result.warnings).to.deep.equal([]);
    expect(readdirSync(cold).length).to.be.greaterThan(50);
  });

  it('refuses a cache directory other users can write to, says so, and the workers strip for themselves', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'tollgate-cache-'));
    chmodSync(shared, 0o777);
    const result = await workerLoadedTypeStripper(shared);
    expect(result.typeStripper).to.equal(true);
    expect(result.threadTypeStripper).to.equal(true);
    expect(result.warnings.join('\n')).to.match(/writable by other users.*TOLLGATE_CACHE_DIR/);
    expect(readdirSync(shared)).to.deep.equal([]);
  });

  it('refuses a cache directory whose parent others could swap it in, unless the parent is sticky like /tmp', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'tollgate-parent-'));
    chmodSync(parent, 0o777);
    const open = (dir: string) => freshNode(`import { openStrippedSources } from ${JSON.stringify(STRIPPED_SOURCES)}; console.log(JSON.stringify(openStrippedSources(${JSON.stringify(dir)})));`);
    expect(JSON.parse(await open(join(parent, 'cache')))).to.deep.equal({ error: `${parent} is writable by other users` });
    chmodSync(parent, 0o1777);
    expect(JSON.parse(await open(join(parent, 'cache')))).to.deep.equal({ dir: join(parent, 'cache') });
  });

  it('strips the ES modules of a folder, not those in node_modules, build output or hidden folders, up to its limit', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'tollgate-cache-'));
    const project = mkdtempSync(join(tmpdir(), 'tollgate-project-'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
    for (const folder of ['tasks', 'node_modules/dep', 'dist', '.git']) mkdirSync(join(project, folder), { recursive: true });
    for (const file of ['a.ts', 'tasks/b.ts', 'tasks/c.mts', 'node_modules/dep/d.ts', 'dist/e.ts', '.git/f.ts', 'types.d.ts']) {
      writeFileSync(join(project, file), `export const name: string = ${JSON.stringify(file)};\n`);
    }
    const store = (limit: number) =>
      freshNode(`import { storeModulesUnder } from ${JSON.stringify(STRIPPED_SOURCES)}; console.log(storeModulesUnder(${JSON.stringify(cache)}, ${JSON.stringify(project)}, ${limit}));`);
    expect(await store(2)).to.equal('2');
    expect(await store(100)).to.equal('1');
    expect(await store(100), 'all cached already').to.equal('0');
    expect(readdirSync(cache)).to.have.length(3);
  });

  it('prunes copies not written for a week, and keeps the others', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'tollgate-cache-'));
    writeFileSync(join(cache, 'old.mjs'), '');
    writeFileSync(join(cache, 'new.mjs'), '');
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
    utimesSync(join(cache, 'old.mjs'), eightDaysAgo, eightDaysAgo);
    await freshNode(`import { pruneStrippedSources } from ${JSON.stringify(STRIPPED_SOURCES)}; pruneStrippedSources(${JSON.stringify(cache)});`);
    expect(readdirSync(cache)).to.deep.equal(['new.mjs']);
  });

  it('serves a module from its stripped copy while the source is unchanged, and the source once it is edited', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'tollgate-cache-'));
    const project = mkdtempSync(join(tmpdir(), 'tollgate-project-'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
    const module = join(project, 'answer.ts');
    writeFileSync(module, 'export const answer: number = 1;\n');
    await freshNode(`import { storeModulesUnder } from ${JSON.stringify(STRIPPED_SOURCES)}; storeModulesUnder(${JSON.stringify(cache)}, ${JSON.stringify(project)});`);
    const [entry] = readdirSync(cache);
    // The copy is what a worker runs: tampering with it shows it is the one loaded.
    writeFileSync(join(cache, entry!), 'export const answer = "from the stripped copy";\n');
    const load = `import { loadStrippedModules } from ${JSON.stringify(STRIPPED_SOURCES)}; loadStrippedModules(${JSON.stringify(cache)}); const { answer } = await import(${JSON.stringify(module)}); console.log(JSON.stringify(answer));`;
    expect(await freshNode(load)).to.equal('"from the stripped copy"');
    writeFileSync(module, 'export const answer: number = 2;\n');
    expect(await freshNode(load)).to.equal('2');
  });
});
