/**
 * `npm run bench:instances`: what running more instances on one shared Redis costs. One instance
 * (one worker) against two instances (one worker each), all on the same core, with a Redis rate
 * limit on the route, in interleaved rounds:
 *
 * - `hot`: one bucket every request shares (a limit nobody reaches, so deciding is measured, not 429s);
 * - `cold`: a bucket per tenant, 100,000 tenants picked at random, so nearly every request is the
 *   first of its bucket in a while and goes to Redis.
 *
 * It reports the gateways' CPU time per request (flat means an added instance costs nothing but its
 * own requests), Redis scripts (round trips) and Redis CPU time per gateway request (what bounds the instances
 * one Redis carries) and the two layouts' throughput. On one host both layouts share one core, so
 * this measures the cost of sharing, not the gain of more cores: docs/deploy.md has the reasoning.
 *
 * Env: BENCH_SECONDS (per round, default 4), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 64).
 * Needs wrk (Debian package) and taskset.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRedis } from '../test/support/redis.ts';
import { CLK_TCK, cpuTicks, pin } from './processes.ts';
import { median } from './stats.ts';
import { startTollgate, type TollgateUnderTest } from './tollgate.ts';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const REPO = fileURLToPath(new URL('../', import.meta.url));
if (availableParallelism() < 2) throw new Error('bench:instances needs two cores: the gateways on one, the load, upstream and Redis on the rest');
const GATEWAY_CPU = '0';
const LOAD_CPUS = `1-${availableParallelism() - 1}`;

await run('wrk', ['--version']).catch((error: { stdout?: string }) => {
  if (!error.stdout?.includes('wrk')) throw new Error('bench:instances needs wrk (apt-get install wrk)');
});

const children: ChildProcess[] = [];
const stopAll = (): void => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('exit', stopAll);

const upstream = fork(join(REPO, 'bench/upstream.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
children.push(upstream);
const [{ port: upstreamPort }] = (await once(upstream, 'message')) as [{ port: number }];
pin(upstream.pid!, LOAD_CPUS);
const redis = await startRedis();
pin(redis.pid, LOAD_CPUS);
// A bench that fails half-way must not leave its Redis behind.
process.on('exit', () => {
  try {
    process.kill(redis.pid, 'SIGKILL');
  } catch {
    // already stopped
  }
});

// A wrk script that sends each request as one of 100,000 tenants.
const tenantsScript = join(mkdtempSync(join(tmpdir(), 'tollgate-bench-')), 'tenants.lua');
writeFileSync(tenantsScript, 'math.randomseed(os.time())\nrequest = function()\n  wrk.headers["x-tenant"] = "t" .. math.random(1, 100000)\n  return wrk.format(nil)\nend\n');

const scenarios = [
  { name: 'hot', plugins: `[rateLimit({ limit: 1000000000, window: '1h', by: 'route' })]`, script: null },
  { name: 'cold', plugins: `[rateLimit({ limit: 1000000000, window: '1h', by: { header: 'x-tenant' } })]`, script: tenantsScript },
] as const;

interface Layout {
  scenario: (typeof scenarios)[number];
  instances: TollgateUnderTest[];
  samples: { rps: number; gatewayUs: number; redisScripts: number; redisUs: number }[];
}

const layouts: Layout[] = [];
for (const scenario of scenarios) {
  for (const count of [1, 2]) {
    const instances: TollgateUnderTest[] = [];
    for (let i = 0; i < count; i++) {
      const gateway = await startTollgate({ upstreamPort, workers: 1, cpus: GATEWAY_CPU, plugins: scenario.plugins, redisUrl: redis.url });
      children.push(gateway.child);
      instances.push(gateway);
    }
    layouts.push({ scenario, instances, samples: [] });
  }
}

/** Runs wrk against every instance at once, the connections split between them; total requests/s. */
async function load(layout: Layout, seconds: number): Promise<{ rps: number; requests: number }> {
  const perInstance = Math.max(1, Math.floor(CONNECTIONS / layout.instances.length));
  const results = await Promise.all(
    layout.instances.map(async (gateway) => {
      const args = ['-c', LOAD_CPUS, 'wrk', '-t1', `-c${perInstance}`, `-d${seconds}s`];
      if (layout.scenario.script) args.push('-s', layout.scenario.script);
      const { stdout } = await run('taskset', [...args, `http://127.0.0.1:${gateway.port}/items`]);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
      if (non2xx > 0) throw new Error(`${non2xx} responses were not 2xx: the bench measures decisions, not refusals`);
      return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]), requests: Number(/(\d+) requests in/.exec(stdout)![1]) };
    }),
  );
  return { rps: results.reduce((sum, r) => sum + r.rps, 0), requests: results.reduce((sum, r) => sum + r.requests, 0) };
}

/**
 * Scripts run (the rate limiter's only commands: the commands a script runs inside count in
 * Redis's own totals, round trips are what matters) and CPU time Redis has used.
 */
async function redisCounters(): Promise<{ scripts: number; cpuSeconds: number }> {
  const info = await redis.cli('info', 'all');
  const field = (pattern: string): number => Number(new RegExp(pattern, 'm').exec(info)?.[1] ?? 0);
  return {
    scripts: field('^cmdstat_evalsha:calls=(\\d+)') + field('^cmdstat_eval:calls=(\\d+)'),
    cpuSeconds: field('^used_cpu_user:([\\d.]+)') + field('^used_cpu_sys:([\\d.]+)'),
  };
}

for (const layout of layouts) await load(layout, 2); // warm-up: JIT, connections, scripts loaded
for (let round = 1; round <= ROUNDS; round++) {
  for (const layout of layouts) {
    const pids = layout.instances.flatMap((gateway) => gateway.pids);
    const ticks = cpuTicks(pids);
    const before = await redisCounters();
    const { rps, requests } = await load(layout, SECONDS);
    const after = await redisCounters();
    layout.samples.push({
      rps,
      gatewayUs: ((cpuTicks(pids) - ticks) / CLK_TCK / requests) * 1e6,
      redisScripts: (after.scripts - before.scripts) / requests,
      redisUs: ((after.cpuSeconds - before.cpuSeconds) / requests) * 1e6,
    });
  }
  console.error(`round ${round}/${ROUNDS} done`);
}

const lines = [
  `bench:instances, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${ROUNDS} rounds of ${SECONDS} s, ${CONNECTIONS} connections in all, gateways on core ${GATEWAY_CPU}, load/upstream/Redis on ${LOAD_CPUS}`,
  '',
  '| scenario | instances × workers | req/s (all) | gateway CPU µs/req | Redis scripts per 100 req | Redis CPU µs/req | req/s vs 1 instance |',
  '|---|---|--:|--:|--:|--:|--:|',
];
for (const scenario of scenarios) {
  const [one, two] = layouts.filter((layout) => layout.scenario === scenario).map((layout) => ({
    count: layout.instances.length,
    rps: median(layout.samples.map((s) => s.rps)),
    gatewayUs: median(layout.samples.map((s) => s.gatewayUs)),
    redisScripts: median(layout.samples.map((s) => s.redisScripts)),
    redisUs: median(layout.samples.map((s) => s.redisUs)),
  })) as [any, any];
  for (const row of [one, two]) {
    lines.push(`| ${scenario.name} | ${row.count} × 1 | ${row.rps.toFixed(0)} | ${row.gatewayUs.toFixed(1)} | ${(row.redisScripts * 100).toFixed(1)} | ${row.redisUs.toFixed(2)} | ${(row.rps / one.rps).toFixed(2)} |`);
  }
}
console.log(lines.join('\n'));
await Promise.all(layouts.flatMap((layout) => layout.instances.map(async (gateway) => {
  gateway.child.kill('SIGTERM');
  await once(gateway.child, 'exit');
})));
await redis.stop();
upstream.kill('SIGTERM');
