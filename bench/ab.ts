/**
 * `npm run bench:ab -- [--against REV] [--rounds N] [--seconds S] [--warmup S] SCENARIO...`: what a
 * change does to the cost of a request. Each scenario (bench/scenarios.ts; `bare`, `full-chain`, ...)
 * runs as two one-worker gateways pinned to the proxy's core, one from the checkout as it is and one
 * from REV (default HEAD, so an uncommitted change is compared with the last commit), in interleaved
 * rounds with new processes every round, each measured after `--warmup` seconds of load (default 3).
 * A change of a few per cent is below what separate bench runs can see on a shared machine; side by
 * side, a few seconds apart, it shows.
 *
 * REV's files are exported (`git archive`) into .tmp/ab/<commit> and run with this checkout's
 * node_modules, so a revision with other dependencies is not comparable this way.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedis } from '../test/support/redis.ts';
import { parseWarmUpSeconds, pickLoadGenerator } from './load.ts';
import { CLK_TCK, cpuTicks, forkHelper, largestMemory, pin, stopProcess } from './processes.ts';
import { BARE, pluginScenarios, type ScenarioServices } from './scenarios.ts';
import { median } from './stats.ts';
import type { startTollgate as StartTollgate } from './tollgate.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONNECTIONS = 64;
const PIN = availableParallelism() >= 2;
const PROXY_CPU = '0';
const LOAD_CPUS = `1-${availableParallelism() - 1}`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { against: { type: 'string', default: 'HEAD' }, rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '3' }, warmup: { type: 'string' } },
});
const ROUNDS = positiveInteger('rounds', values.rounds);
const SECONDS = positiveInteger('seconds', values.seconds);
const WARM_UP_SECONDS = (() => {
  try {
    return parseWarmUpSeconds(values.warmup, '--warmup');
  } catch (error) {
    return fail((error as Error).message);
  }
})();
const all = [BARE, ...(await pluginScenarios())];
const chosen = positionals.map((id) => all.find((scenario) => scenario.id === id) ?? fail(`unknown scenario "${id}"; one of: ${all.map((s) => s.id).join(', ')}`));
if (chosen.length === 0) fail(`name at least one scenario: ${all.map((s) => s.id).join(', ')}`);

const commit = gitOutput(['rev-parse', '--verify', `${values.against}^{commit}`]) || fail(`"${values.against}" is not a commit`);
const before = exportRevision(commit);

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGTERM')));
if (PIN) pin(process.pid, LOAD_CPUS);
const load = await pickLoadGenerator();
const upstreamPort = await startHelper('bench/upstream.ts');
const services: ScenarioServices = { redisUrl: '', sinkPort: 0 };
if (chosen.some((scenario) => scenario.needs.includes('redis'))) {
  const redis = await startRedis();
  if (PIN) pin(redis.pid, LOAD_CPUS);
  process.on('exit', () => process.kill(redis.pid, 'SIGKILL'));
  services.redisUrl = redis.url;
}
if (chosen.some((scenario) => scenario.needs.includes('sink'))) services.sinkPort = await startHelper('bench/otlp-sink.ts');

const startBefore = ((await import(join(before, 'bench/tollgate.ts'))) as { startTollgate: typeof StartTollgate }).startTollgate;
const startAfter = ((await import('./tollgate.ts')) as { startTollgate: typeof StartTollgate }).startTollgate;

console.log(`${load.name}, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${SECONDS} s after ${WARM_UP_SECONDS} s of warm-up, new processes every round` + (PIN ? `, proxy pinned to cpu ${PROXY_CPU}` : ''));
console.log(`before: ${commit.slice(0, 10)} (${values.against}); after: this checkout${gitOutput(['status', '--porcelain', '--untracked-files=no']) ? ' (with uncommitted changes)' : ''}\n`);
const table = ['| scenario | CPU µs/req before | after | after / before | req/s before | after | after / before | p99 ms before | after | worker RSS MiB before | after |', '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|'];
for (const scenario of chosen) {
  const sides = [startBefore, startAfter].map((start) => ({ start, cpu: [] as number[], rps: [] as number[], p99: [] as number[], rss: [] as number[] }));
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round the other side goes first, so that neither always follows the other.
    for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
      const gateway = await side.start({ ...scenario.options(services), upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined });
      children.push(gateway.child);
      const url = `http://127.0.0.1:${gateway.port}/items`;
      if (WARM_UP_SECONDS > 0) await load.run({ url, connections: CONNECTIONS, seconds: WARM_UP_SECONDS, cpus: PIN ? LOAD_CPUS : undefined, headers: scenario.headers });
      const ticks = cpuTicks(gateway.pids);
      const result = await load.run({ url, connections: CONNECTIONS, seconds: SECONDS, cpus: PIN ? LOAD_CPUS : undefined, headers: scenario.headers });
      if (result.errors > 0) fail(`${scenario.id}: ${result.errors} failed requests; a failing gateway is not measured`);
      side.cpu.push((((cpuTicks(gateway.pids) - ticks) / CLK_TCK) * 1e6) / result.requests);
      side.rps.push(result.requestsPerSec);
      side.p99.push(result.p99Ms);
      side.rss.push(largestMemory(gateway.workerPids).rssMiB);
      await stopProcess(gateway.child);
    }
  }
  const [b, a] = sides as [(typeof sides)[0], (typeof sides)[0]];
  const paired = (of: (side: typeof b, round: number) => number): number => median(b.cpu.map((_, round) => of(a, round) / of(b, round)));
  const row = `| ${scenario.id} | ${median(b.cpu).toFixed(1)} | ${median(a.cpu).toFixed(1)} | ${paired((side, r) => side.cpu[r]!).toFixed(3)} | ${median(b.rps).toFixed(0)} | ${median(a.rps).toFixed(0)} | ${paired((side, r) => side.rps[r]!).toFixed(3)} | ${median(b.p99).toFixed(2)} | ${median(a.p99).toFixed(2)} | ${median(b.rss).toFixed(0)} | ${median(a.rss).toFixed(0)} |`;
  table.push(row);
  console.log(`${scenario.id}: CPU µs/req before [${b.cpu.map((v) => v.toFixed(1)).join(' ')}], after [${a.cpu.map((v) => v.toFixed(1)).join(' ')}]`);
}
console.log(`\n${table.join('\n')}\n\n(ratios are medians of round-by-round ratios)`);
process.exit(0);

/** REV's files, exported once per commit into .tmp/ab/, with this checkout's node_modules. */
function exportRevision(sha: string): string {
  const dir = join(REPO, '.tmp', 'ab', sha);
  if (!existsSync(join(dir, 'bench/tollgate.ts'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync('sh', ['-c', `git archive --format=tar ${sha} | tar -x -C "${dir}"`], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  }
  return dir;
}

async function startHelper(script: string): Promise<number> {
  const { port, child } = await forkHelper(join(REPO, script), PIN ? LOAD_CPUS : undefined);
  children.push(child);
  return port;
}

function gitOutput(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  return Number.isInteger(value) && value > 0 ? value : fail(`--${name} must be a positive whole number, not "${text}"`);
}

function fail(message: string): never {
  console.error(`bench:ab: ${message}`);
  process.exit(2);
}
