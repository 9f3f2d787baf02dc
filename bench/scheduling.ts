/**
 * `npm run bench:scheduling`: tollgate with one worker per core under both cluster scheduling
 * policies, in interleaved rounds, unpinned (the load generator shares the cores, as it would on a
 * real host). This is the measurement behind the `scheduling` default (docs/benchmarks.md).
 *
 * Env: BENCH_SECONDS (default 5), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 64), BENCH_WARMUP
 * (seconds of load before the first round, default 3).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseWarmUpSeconds, pickLoadGenerator, type LoadResult } from './load.ts';
import { median } from './stats.ts';
import { startTollgate } from './tollgate.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const WORKERS = availableParallelism();

const children: ChildProcess[] = [];
// SIGTERM, not SIGKILL: nginx's master and tollgate's primary then stop their own workers, which a
// killed parent would leave behind.
process.on('exit', () => children.forEach((child) => child.kill('SIGTERM')));

const load = await pickLoadGenerator();
const upstream = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
children.push(upstream);
const [{ port: upstreamPort }] = (await once(upstream, 'message')) as [{ port: number }];

const policies = ['round-robin', 'os'] as const;
const gateways = [];
for (const scheduling of policies) {
  const gateway = await startTollgate({ upstreamPort, workers: WORKERS, scheduling });
  children.push(gateway.child);
  gateways.push({ scheduling, url: `http://127.0.0.1:${gateway.port}/items` });
}
console.log(`load: ${load.name}, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${SECONDS}s, ${WORKERS} workers, no pinning`);

const scenarios = [
  { name: 'keep-alive', closeConnections: false },
  { name: 'new connection per request', closeConnections: true },
];
const results = new Map<string, LoadResult[]>();
const warmUpSeconds = parseWarmUpSeconds(process.env.BENCH_WARMUP, 'BENCH_WARMUP');
if (warmUpSeconds > 0) for (const gateway of gateways) await load.run({ url: gateway.url, connections: CONNECTIONS, seconds: warmUpSeconds });
for (let round = 1; round <= ROUNDS; round++) {
  for (const scenario of scenarios) {
    for (const gateway of gateways) {
      const result = await load.run({ url: gateway.url, connections: CONNECTIONS, seconds: SECONDS, closeConnections: scenario.closeConnections });
      const key = `${scenario.name} | ${gateway.scheduling}`;
      results.set(key, [...(results.get(key) ?? []), result]);
      console.log(`  round ${round} ${key.padEnd(40)} ${result.requestsPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms`);
    }
  }
}
console.log('\n| connections | scheduling | req/s | p50 ms | p99 ms |\n|---|---|--:|--:|--:|');
for (const [key, runs] of results) {
  const med = (pick: (r: LoadResult) => number) => median(runs.map(pick)).toFixed(2);
  console.log(`| ${key} | ${median(runs.map((r) => r.requestsPerSec)).toFixed(0)} | ${med((r) => r.p50Ms)} | ${med((r) => r.p99Ms)} |`);
}
process.exit(0);

