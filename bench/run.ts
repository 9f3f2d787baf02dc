/**
 * `npm run bench`: the upstream hit directly, nginx in front of it (where installed) and tollgate
 * (one worker: no plugins, then with the access log, auth and rate-limit plugins) in front of it,
 * measured in interleaved rounds in one run. Absolute numbers
 * drift on shared machines; the ratios and the CPU time per request are what to compare across runs.
 *
 * Env: BENCH_SECONDS (per round, default 5), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 64),
 * BENCH_LOAD=autocannon to use autocannon even where wrk is installed, BENCH_ONLY=a,b to measure only
 * the subjects whose names contain one of the given words (the upstream and bare tollgate always run,
 * as the baselines of the ratios), BENCH_FRESH=1 to start every Node subject afresh each round,
 * BENCH_WARMUP (seconds of load before a subject is first measured, and after each fresh start; default 3).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseWarmUpSeconds, pickLoadGenerator, type LoadResult } from './load.ts';
import { median } from './stats.ts';
import { startNginx } from './nginx.ts';
import { summariseProfiles } from './profile-summary.ts';
import { writeLatestRun } from './write-results.ts';
import { startTollgate } from './tollgate.ts';
import { BARE, FULL_CHAIN, pluginScenarios } from './scenarios.ts';
import { CLK_TCK, cpuTicks, forkHelper, largestMemory, pin, stopProcess, type Memory } from './processes.ts';
import { startRedis } from '../test/support/redis.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const WARM_UP_SECONDS = parseWarmUpSeconds(process.env.BENCH_WARMUP, 'BENCH_WARMUP');
const REPO = fileURLToPath(new URL('../', import.meta.url));
// With two cores or more: the proxy under test on core 0, upstream and load generator on the rest.
const PIN = availableParallelism() >= 2;
const PROXY_CPU = '0';
/** bench/floor-proxy.ts: what node:http and undici cost with nothing between them. */
const FLOOR = 'floor: node:http + undici alone';
const LOAD_CPUS = `1-${availableParallelism() - 1}`;
const ALL_CPUS = `0-${availableParallelism() - 1}`;

interface Subject {
  name: string;
  url: string;
  /** Replaces the subject's processes with new ones, warmed up (BENCH_FRESH). */
  restart?: () => Promise<void>;
  headers?: Record<string, string>;
  /** Pids whose CPU time counts as the proxy's; none for the upstream itself. */
  pids: number[];
  /** Pids whose RSS is reported (the largest): tollgate's workers, not its primary; else `pids`. */
  rssPids?: number[];
  /** The load generator and the upstream run on any core too (the subject is spread over all of them). */
  loadUnpinned?: boolean;
}

/**
 * Two processes of one Node subject can differ by several per cent for their whole life (what the
 * JIT inlined, where things landed in memory); with BENCH_FRESH=1 each round measures new ones, so
 * that this becomes round-to-round noise, which the medians absorb, instead of a bias of one subject.
 */
const FRESH = process.env.BENCH_FRESH === '1';
const children: ChildProcess[] = [];
// SIGTERM, not SIGKILL: nginx's master and tollgate's primary then stop their own workers, which a
// killed parent would leave behind.
process.on('exit', () => children.forEach((child) => child.kill('SIGTERM')));

/** BENCH_PROFILE=<words in a subject's name>: that tollgate runs with --cpu-prof, summarised at the end. */
const PROFILE = process.env.BENCH_PROFILE;
const PROFILE_DIR = join(REPO, '.tmp', 'bench-profile');
let profiled: { name: string; child: ChildProcess } | null = null;

/** Starts one tollgate subject (one worker pinned to the proxy's core unless the options say otherwise). */
async function tollgateSubject(name: string, options: Omit<Parameters<typeof startTollgate>[0], 'upstreamPort' | 'workers' | 'cpus'> & { workers?: number; pinned?: boolean }, headers?: Record<string, string>): Promise<void> {
  const profile = PROFILE !== undefined && profiled === null && name.includes(PROFILE);
  if (profile) {
    rmSync(PROFILE_DIR, { recursive: true, force: true });
    mkdirSync(PROFILE_DIR, { recursive: true });
  }
  const launch = () =>
    startTollgate({
      ...options,
      upstreamPort,
      workers: options.workers ?? 1,
      // Unpinned is every core, said explicitly: a child inherits this process's pinning to the load side.
      cpus: PIN ? (options.pinned === false ? ALL_CPUS : PROXY_CPU) : undefined,
      ...(profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] } : {}),
    });
  let gateway = await launch();
  children.push(gateway.child);
  if (profile) profiled = { name, child: gateway.child };
  const subject: Subject = { name, url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.pids, rssPids: gateway.workerPids, ...(options.pinned === false ? { loadUnpinned: true } : {}), ...(headers ? { headers } : {}) };
  // The profiled subject keeps its process: its profile covers every round.
  if (!profile) {
    subject.restart = async () => {
      await stopProcess(gateway.child);
      gateway = await launch();
      children.push(gateway.child);
      Object.assign(subject, { url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.pids, rssPids: gateway.workerPids });
      await warmUp(subject);
    };
  }
  subjects.push(subject);
}

// The bench process itself (and autocannon, when it is the load generator) stays off the proxy's core.
if (PIN) pin(process.pid, LOAD_CPUS);
const load = await pickLoadGenerator();
const { port: upstreamPort, pid: upstreamPid } = await startUpstream();
const upstreamUrl = `http://127.0.0.1:${upstreamPort}/items`;
const subjects: Subject[] = [{ name: 'upstream direct', url: upstreamUrl, pids: [] }];
const nginx = await startNginx(upstreamPort, PIN ? PROXY_CPU : undefined).catch((error: Error) => {
  console.error(`nginx: not measured (${error.message})`);
  return null;
});
if (nginx) {
  children.push(nginx.child);
  subjects.push({ name: 'nginx (1 worker)', url: `http://127.0.0.1:${nginx.port}/items`, pids: nginx.pids });
}
await tollgateSubject(BARE.name, BARE.options({ redisUrl: '', sinkPort: 0 }));
// Two workers, unpinned: both cores, shared with the upstream and the load generator, which are
// unpinned for this subject too. Left on one core, the upstream got a third of it next to a worker and
// wrk, and two workers measured half of one.
await tollgateSubject('tollgate (2 workers, unpinned)', { workers: 2, pinned: false });
// What a second worker adds, on equal terms: one worker unpinned too, sharing both cores the same way.
await tollgateSubject('tollgate (1 worker, unpinned)', { pinned: false });
// The floor of tollgate's stack (node:http and undici with nothing between), then the Node peers from
// bench/peers (npm install --prefix bench/peers), all on the proxy's core too.
for (const [name, script] of [[FLOOR, 'bench/floor-proxy.ts'], ['fast-gateway 5', 'bench/peers/fast-gateway.ts'], ['fastify 5 + @fastify/http-proxy', 'bench/peers/fastify-proxy.ts']] as const) {
  if (script.startsWith('bench/peers/') && !existsSync(join(REPO, 'bench/peers/node_modules'))) {
    console.error(`${name}: not measured (run: npm install --prefix bench/peers)`);
    continue;
  }
  let peer = await startPeer(script);
  const subject: Subject = { name, url: `http://127.0.0.1:${peer.port}/items`, pids: [peer.pid] };
  subject.restart = async () => {
    await stopProcess(peer.child);
    peer = await startPeer(script);
    Object.assign(subject, { url: `http://127.0.0.1:${peer.port}/items`, pids: [peer.pid] });
    await warmUp(subject);
  };
  subjects.push(subject);
}
// Redis (for the rate limit and the full chain) and the OTLP sink (for tracing) on the load side.
const redis = await startRedis().catch((error: Error) => {
  console.error(`subjects with Redis: not measured (${error.message})`);
  return null;
});
if (redis) {
  if (PIN) pin(redis.pid, LOAD_CPUS);
  process.on('exit', () => process.kill(redis.pid, 'SIGKILL'));
}
const { port: sinkPort } = await startChild('bench/otlp-sink.ts');
for (const scenario of await pluginScenarios()) {
  if (scenario.needs.includes('redis') && !redis) continue;
  await tollgateSubject(scenario.name, scenario.options({ redisUrl: redis?.url ?? '', sinkPort }), scenario.headers);
}

const only = process.env.BENCH_ONLY?.split(',').map((word) => word.trim()).filter(Boolean);
if (only?.length) {
  const kept = subjects.filter((subject) => subject.name === 'upstream direct' || subject.name === 'tollgate (1 worker)' || only.some((word) => subject.name.includes(word)));
  subjects.splice(0, subjects.length, ...kept);
}

console.log(
  `load: ${load.name}, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${SECONDS}s each after ${WARM_UP_SECONDS}s of warm-up${FRESH ? ', new Node processes every round' : ''}, ` +
    (PIN ? `proxy pinned to cpu ${PROXY_CPU}, upstream and load on cpu ${LOAD_CPUS}` : 'no pinning (one core)'),
);

/**
 * Where the load generator runs. For an unpinned subject it is every core, said explicitly: wrk
 * would otherwise inherit this process's pinning to the load side and crowd one core.
 */
function loadCpus(subject: Subject): string | undefined {
  if (!PIN) return undefined;
  return subject.loadUnpinned ? ALL_CPUS : LOAD_CPUS;
}

/** Load before a round is measured, so that the JIT has optimised the hot path (load.ts says how long that takes). */
async function warmUp(subject: Subject): Promise<void> {
  if (WARM_UP_SECONDS > 0) await load.run({ url: subject.url, connections: CONNECTIONS, seconds: WARM_UP_SECONDS, cpus: loadCpus(subject), headers: subject.headers });
}

for (const subject of subjects) await warmUp(subject);

const results = new Map<string, { load: LoadResult; cpuUsPerRequest: number | null; memory: Memory | null }[]>();
for (let round = 1; round <= ROUNDS; round++) {
  // Every other round runs backwards, so that no subject always follows the same one.
  for (const subject of round % 2 === 1 ? subjects : [...subjects].reverse()) {
    if (FRESH && round > 1) await subject.restart?.();
    if (PIN && subject.loadUnpinned) pin(upstreamPid, ALL_CPUS);
    const cpuBefore = cpuTicks(subject.pids);
    const result = await load.run({ url: subject.url, connections: CONNECTIONS, seconds: SECONDS, cpus: loadCpus(subject), headers: subject.headers });
    const cpuUs = subject.pids.length ? ((cpuTicks(subject.pids) - cpuBefore) / CLK_TCK) * 1e6 : null;
    if (PIN && subject.loadUnpinned) pin(upstreamPid, LOAD_CPUS);
    const entry = { load: result, cpuUsPerRequest: cpuUs === null ? null : cpuUs / result.requests, memory: subject.pids.length ? largestMemory(subject.rssPids ?? subject.pids) : null };
    results.set(subject.name, [...(results.get(subject.name) ?? []), entry]);
    console.log(
      `  round ${round} ${subject.name.padEnd(26)} ${fmt(result.requestsPerSec, 0).padStart(8)} req/s  p50 ${fmt(result.p50Ms, 2)} ms  p99 ${fmt(result.p99Ms, 2)} ms` +
        (entry.cpuUsPerRequest === null ? '' : `  ${fmt(entry.cpuUsPerRequest, 1)} µs CPU/req`) +
        (result.errors ? `  errors ${result.errors}` : ''),
    );
  }
}

/**
 * A ratio between two subjects: the median of their ratios round by round. The machine drifts
 * between rounds far more than within one, and a round measures both subjects close together.
 */
const pairedRatio = (name: string, baseline: string): number => {
  const baseRuns = results.get(baseline)!;
  return median(results.get(name)!.map((run, round) => run.load.requestsPerSec / baseRuns[round]!.load.requestsPerSec));
};
const table = [
  '| subject | req/s | p50 ms | p99 ms | vs direct | vs tollgate | CPU µs/req | RSS MiB | own MiB |',
  '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
];
for (const subject of subjects) {
  const runs = results.get(subject.name)!;
  const rps = median(runs.map((r) => r.load.requestsPerSec));
  const cpu = runs[0]!.cpuUsPerRequest === null ? '—' : fmt(median(runs.map((r) => r.cpuUsPerRequest!)), 1);
  table.push(
    `| ${subject.name} | ${fmt(rps, 0)} | ${fmt(median(runs.map((r) => r.load.p50Ms)), 2)} | ${fmt(median(runs.map((r) => r.load.p99Ms)), 2)} | ${fmt(pairedRatio(subject.name, 'upstream direct'), 2)} | ${subject.pids.length ? fmt(pairedRatio(subject.name, 'tollgate (1 worker)'), 2) : '—'} | ${cpu} | ${runs[0]!.memory === null ? '—' : fmt(Math.max(...runs.map((r) => r.memory!.rssMiB)), 0)} | ${runs[0]!.memory === null ? '—' : fmt(Math.max(...runs.map((r) => r.memory!.ownMiB)), 0)} |`,
  );
}
const ratios: string[] = [];
if (results.has(FLOOR)) ratios.push(`tollgate / its stack's floor (node:http + undici alone): ${fmt(pairedRatio('tollgate (1 worker)', FLOOR), 2)}`);
if (results.has('nginx (1 worker)')) ratios.push(`tollgate / nginx: ${fmt(pairedRatio('tollgate (1 worker)', 'nginx (1 worker)'), 2)}`);
if (results.has('fast-gateway 5')) {
  const versusPeer = (name: string): string => (results.has(name) ? fmt(pairedRatio(name, 'fast-gateway 5'), 2) : '—');
  ratios.push(`tollgate / fast-gateway: ${versusPeer('tollgate (1 worker)')}; full chain / fast-gateway: ${versusPeer(FULL_CHAIN)}; cache hit / fast-gateway: ${versusPeer('tollgate + cache hit')}`);
}
if (results.has('tollgate (2 workers, unpinned)')) {
  const unpinned = results.has('tollgate (1 worker, unpinned)') ? `; 2 workers / 1 worker, both unpinned: ${fmt(pairedRatio('tollgate (2 workers, unpinned)', 'tollgate (1 worker, unpinned)'), 2)}` : '';
  ratios.push(`2 workers / 1 worker: ${fmt(pairedRatio('tollgate (2 workers, unpinned)', 'tollgate (1 worker)'), 2)}${unpinned}`);
}
console.log(`\nmedians of ${ROUNDS} rounds (ratios: the median of round-by-round ratios of req/s, to the upstream hit directly and to tollgate without plugins):`);
console.log([...table, '', ...ratios].join('\n'));

// A full run is the project's record: it replaces the generated block of docs/benchmarks.md.
if (!only?.length && process.env.BENCH_WRITE !== '0') {
  writeLatestRun(join(REPO, 'docs/benchmarks.md'), {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    command: `${FRESH ? 'BENCH_FRESH=1 ' : ''}BENCH_SECONDS=${SECONDS} BENCH_ROUNDS=${ROUNDS} BENCH_CONNECTIONS=${CONNECTIONS} BENCH_WARMUP=${WARM_UP_SECONDS} npm run bench`,
    setup: `${load.name}, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${SECONDS} s after ${WARM_UP_SECONDS} s of warm-up (every other round in reverse order${FRESH ? '; new Node processes every round' : ''}), medians; ratios are medians of round-by-round ratios; ` +
      (PIN ? `proxy pinned to cpu ${PROXY_CPU}, upstream and load on cpu ${LOAD_CPUS}` : 'one core, no pinning'),
    table,
    ratios,
  });
  console.log('\nwritten to docs/benchmarks.md (BENCH_WRITE=0 to skip)');
}

if (profiled !== null) {
  const { name, child } = profiled as { name: string; child: ChildProcess };
  // SIGTERM drains and exits the workers, which is when --cpu-prof writes its files.
  child.kill('SIGTERM');
  if (child.exitCode === null) await once(child, 'exit');
  console.log(`\nprofile of "${name}" (${PROFILE_DIR}; open a .cpuprofile in Chrome DevTools for the call tree):`);
  console.log(summariseProfiles(PROFILE_DIR).join('\n'));
}
process.exit(0);

async function startUpstream(): Promise<{ port: number; pid: number }> {
  return startChild('bench/upstream.ts');
}

/** Forks a peer gateway in front of the bench upstream, on the proxy's core. */
async function startPeer(script: string): Promise<{ port: number; pid: number; child: ChildProcess }> {
  const peer = await forkHelper(join(REPO, script), PIN ? PROXY_CPU : undefined, [String(upstreamPort)]);
  children.push(peer.child);
  return peer;
}

/** Forks a helper server (upstream, OTLP sink) on the load side's cores; resolves with its port. */
async function startChild(script: string): Promise<{ port: number; pid: number }> {
  const { port, pid, child } = await forkHelper(join(REPO, script), PIN ? LOAD_CPUS : undefined);
  children.push(child);
  return { port, pid };
}

function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}
