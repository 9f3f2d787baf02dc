/**
 * `npm run bench`: the upstream hit directly, nginx in front of it (where installed) and tollgate
 * (one worker: no plugins, then with the access log, auth and rate-limit plugins) in front of it,
 * measured in interleaved rounds in one run. Absolute numbers
 * drift on shared machines; the ratios and the CPU time per request are what to compare across runs.
 *
 * Env: BENCH_SECONDS (per round, default 5), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 64),
 * BENCH_LOAD=autocannon to use autocannon even where wrk is installed, BENCH_ONLY=a,b to measure only
 * the subjects whose names contain one of the given words (the upstream and bare tollgate always run,
 * as the baselines of the ratios).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pickLoadGenerator, type LoadResult } from './load.ts';
import { median } from './stats.ts';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { hashKey } from '../plugins/key-auth/key-hash.ts';
import { startNginx } from './nginx.ts';
import { startTollgate } from './tollgate.ts';
import { startRedis } from '../test/support/redis.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const REPO = fileURLToPath(new URL('../', import.meta.url));
// With two cores or more: the proxy under test on core 0, upstream and load generator on the rest.
const PIN = availableParallelism() >= 2;
const PROXY_CPU = '0';
const LOAD_CPUS = `1-${availableParallelism() - 1}`;
const CLK_TCK = 100;

interface Subject {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** Pids whose CPU time counts as the proxy's; none for the upstream itself. */
  pids: number[];
}

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

// The bench process itself (and autocannon, when it is the load generator) stays off the proxy's core.
if (PIN) await new Promise((resolve) => spawn('taskset', ['-a', '-pc', LOAD_CPUS, String(process.pid)], { stdio: 'ignore' }).once('exit', resolve));
const load = await pickLoadGenerator();
const upstreamPort = await startUpstream();
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
const tollgate = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined });
children.push(tollgate.child);
subjects.push({ name: 'tollgate (1 worker)', url: `http://127.0.0.1:${tollgate.port}/items`, pids: tollgate.workerPids });
// Two workers, unpinned: both cores, shared with the upstream and the load generator.
const twoWorkers = await startTollgate({ upstreamPort, workers: 2 });
children.push(twoWorkers.child);
subjects.push({ name: 'tollgate (2 workers, unpinned)', url: `http://127.0.0.1:${twoWorkers.port}/items`, pids: twoWorkers.workerPids });
// The Node peers, from bench/peers (npm install --prefix bench/peers), on the proxy's core too.
for (const [name, script] of [['fast-gateway 5', 'fast-gateway.ts'], ['fastify 5 + @fastify/http-proxy', 'fastify-proxy.ts']] as const) {
  if (!existsSync(join(REPO, 'bench/peers/node_modules'))) {
    console.error(`${name}: not measured (run: npm install --prefix bench/peers)`);
    continue;
  }
  const peer = await startPeer(join('bench/peers', script));
  subjects.push({ name, url: `http://127.0.0.1:${peer.port}/items`, pids: [peer.pid] });
}
const logged = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, accessLog: true });
children.push(logged.child);
subjects.push({ name: 'tollgate + access log', url: `http://127.0.0.1:${logged.port}/items`, pids: logged.workerPids });
for (const scenario of await authScenarios()) {
  const gateway = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, plugins: scenario.plugins });
  children.push(gateway.child);
  subjects.push({ name: scenario.name, url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.workerPids, headers: scenario.headers });
}

// A limit no client reaches, so the cost of deciding is measured, not the cost of a 429.
// One hot bucket (every request from one client) is served from reserves; 10k buckets each seen
// every few hundred ms are the worst case: one store decision per request.
const unreachable = `[rateLimit({ limit: 1000000000, window: '1h', by: 'ip' })]`;
const manyKeys = `[rateLimit({ limit: 1000000000, window: '1h', by: (() => { let n = 0; return () => String(n++ % 10000); })() })]`;
const limitScenarios = [
  { name: 'tollgate + rateLimit host', plugins: unreachable },
  { name: 'rateLimit host, 10k keys', plugins: manyKeys },
];
for (const scenario of limitScenarios) {
  const gateway = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, plugins: scenario.plugins });
  children.push(gateway.child);
  subjects.push({ name: scenario.name, url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.workerPids });
}
const redis = await startRedis().catch((error: Error) => {
  console.error(`rateLimit redis: not measured (${error.message})`);
  return null;
});
if (redis) {
  if (PIN) spawn('taskset', ['-pc', LOAD_CPUS, String(redis.pid)], { stdio: 'ignore' });
  process.on('exit', () => process.kill(redis.pid, 'SIGKILL'));
  for (const [name, plugins] of [['tollgate + rateLimit redis', unreachable], ['rateLimit redis, 10k keys', manyKeys]] as const) {
    const gateway = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, plugins, redisUrl: redis.url });
    children.push(gateway.child);
    subjects.push({ name, url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.workerPids });
  }
}

// Every request a cache hit (the bench upstream sends no freshness, so the route's ttl applies).
const cached = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, plugins: `[cache({ ttl: '1h' })]` });
children.push(cached.child);
subjects.push({ name: 'tollgate + cache hit', url: `http://127.0.0.1:${cached.port}/items`, pids: cached.workerPids });

// Tracing, exporting to a local OTLP sink (on the load side's core), at 100 % and 0 % sampling.
const sinkPort = await startChild('bench/otlp-sink.ts');
for (const [name, ratio, protocol] of [['tracing 100 %', 1, 'http/protobuf'], ['tracing 100 %, json', 1, 'http/json'], ['tracing 0 %', 0, 'http/protobuf']] as const) {
  const telemetry = `{ otlp: { endpoint: 'http://127.0.0.1:${sinkPort}', protocol: '${protocol}' }, tracing: { sampleRatio: ${ratio} } }`;
  const gateway = await startTollgate({ upstreamPort, workers: 1, cpus: PIN ? PROXY_CPU : undefined, telemetry });
  children.push(gateway.child);
  subjects.push({ name, url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.workerPids });
}

// The full chain: keyAuth, a Redis rate limit no client reaches, tracing at 10 % to the sink, and a
// cache that misses every time (bodies over maxEntrySize stream through uncached).
if (redis) {
  const gateway = await startTollgate({
    upstreamPort,
    workers: 1,
    cpus: PIN ? PROXY_CPU : undefined,
    redisUrl: redis.url,
    telemetry: `{ otlp: { endpoint: 'http://127.0.0.1:${sinkPort}' }, tracing: { sampleRatio: 0.1 } }`,
    plugins: `[keyAuth({ consumers: { bench: { keyHashes: ['${hashKey('bench-key')}'] } } }), rateLimit({ limit: 1000000000, window: '1h', by: 'consumer' }), cache({ ttl: '1h', maxEntrySize: 1 })]`,
  });
  children.push(gateway.child);
  subjects.push({ name: 'full chain (auth, redis limit, 10 % traces, cache miss)', url: `http://127.0.0.1:${gateway.port}/items`, pids: gateway.workerPids, headers: { 'x-api-key': 'bench-key' } });
}

const only = process.env.BENCH_ONLY?.split(',').map((word) => word.trim()).filter(Boolean);
if (only?.length) {
  const kept = subjects.filter((subject) => subject.name === 'upstream direct' || subject.name === 'tollgate (1 worker)' || only.some((word) => subject.name.includes(word)));
  subjects.splice(0, subjects.length, ...kept);
}

console.log(
  `load: ${load.name}, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${SECONDS}s each, ` +
    (PIN ? `proxy pinned to cpu ${PROXY_CPU}, upstream and load on cpu ${LOAD_CPUS}` : 'no pinning (one core)'),
);

for (const subject of subjects) {
  await load.run({ url: subject.url, connections: CONNECTIONS, seconds: 1, cpus: PIN ? LOAD_CPUS : undefined, headers: subject.headers });
}

const results = new Map<string, { load: LoadResult; cpuUsPerRequest: number | null; rssMiB: number | null }[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const subject of subjects) {
    const cpuBefore = cpuTicks(subject.pids);
    const result = await load.run({ url: subject.url, connections: CONNECTIONS, seconds: SECONDS, cpus: PIN ? LOAD_CPUS : undefined, headers: subject.headers });
    const cpuUs = subject.pids.length ? ((cpuTicks(subject.pids) - cpuBefore) / CLK_TCK) * 1e6 : null;
    const entry = { load: result, cpuUsPerRequest: cpuUs === null ? null : cpuUs / result.requests, rssMiB: subject.pids.length ? largestRssMiB(subject.pids) : null };
    results.set(subject.name, [...(results.get(subject.name) ?? []), entry]);
    console.log(
      `  round ${round} ${subject.name.padEnd(26)} ${fmt(result.requestsPerSec, 0).padStart(8)} req/s  p50 ${fmt(result.p50Ms, 2)} ms  p99 ${fmt(result.p99Ms, 2)} ms` +
        (entry.cpuUsPerRequest === null ? '' : `  ${fmt(entry.cpuUsPerRequest, 1)} µs CPU/req`) +
        (result.errors ? `  errors ${result.errors}` : ''),
    );
  }
}

const direct = median(results.get('upstream direct')!.map((r) => r.load.requestsPerSec));
const bare = median(results.get('tollgate (1 worker)')!.map((r) => r.load.requestsPerSec));
console.log(`\nmedians of ${ROUNDS} rounds (ratios: req/s relative to the upstream hit directly, and to tollgate without plugins):`);
console.log('| subject | req/s | p50 ms | p99 ms | vs direct | vs tollgate | CPU µs/req | RSS MiB |');
console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
for (const subject of subjects) {
  const runs = results.get(subject.name)!;
  const rps = median(runs.map((r) => r.load.requestsPerSec));
  const cpu = runs[0]!.cpuUsPerRequest === null ? '—' : fmt(median(runs.map((r) => r.cpuUsPerRequest!)), 1);
  console.log(
    `| ${subject.name} | ${fmt(rps, 0)} | ${fmt(median(runs.map((r) => r.load.p50Ms)), 2)} | ${fmt(median(runs.map((r) => r.load.p99Ms)), 2)} | ${fmt(rps / direct, 2)} | ${subject.pids.length ? fmt(rps / bare, 2) : '—'} | ${cpu} | ${runs[0]!.rssMiB === null ? '—' : fmt(Math.max(...runs.map((r) => r.rssMiB!)), 0)} |`,
  );
}
const rpsOf = (name: string): number => median(results.get(name)!.map((r) => r.load.requestsPerSec));
console.log('');
if (results.has('nginx (1 worker)')) console.log(`tollgate / nginx: ${fmt(bare / rpsOf('nginx (1 worker)'), 2)}`);
if (results.has('fast-gateway 5')) {
  const peer = rpsOf('fast-gateway 5');
  const full = results.has('full chain (auth, redis limit, 10 % traces, cache miss)') ? rpsOf('full chain (auth, redis limit, 10 % traces, cache miss)') : Number.NaN;
  const hit = results.has('tollgate + cache hit') ? rpsOf('tollgate + cache hit') : Number.NaN;
  console.log(`tollgate / fast-gateway: ${fmt(bare / peer, 2)}; full chain / fast-gateway: ${fmt(full / peer, 2)}; cache hit / fast-gateway: ${fmt(hit / peer, 2)}`);
}
if (results.has('tollgate (2 workers, unpinned)')) console.log(`2 workers / 1 worker: ${fmt(rpsOf('tollgate (2 workers, unpinned)') / bare, 2)}`);
process.exit(0);

/** keyAuth and jwtAuth (RS256, ES256) on the bench route, with the credentials wrk sends. */
async function authScenarios(): Promise<{ name: string; plugins: string; headers: Record<string, string> }[]> {
  const scenarios: { name: string; plugins: string; headers: Record<string, string> }[] = [{ name: 'tollgate + keyAuth', plugins: `[keyAuth({ consumers: { bench: { keyHashes: ['${hashKey('bench-key')}'] } } })]`, headers: { 'x-api-key': 'bench-key' } }];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    // One token, repeated: the case the verified-token cache is for.
    const token = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg }).setExpirationTime('1h').sign(privateKey);
    scenarios.push({
      name: `tollgate + jwtAuth ${alg}`,
      plugins: `[jwtAuth({ algorithms: ['${alg}'], publicKey: ${JSON.stringify(await exportSPKI(publicKey))} })]`,
      headers: { authorization: `Bearer ${token}` },
    });
  }
  return scenarios;
}

async function startUpstream(): Promise<number> {
  return startChild('bench/upstream.ts');
}

/** Forks a peer gateway in front of the bench upstream, on the proxy's core. */
async function startPeer(script: string): Promise<{ port: number; pid: number }> {
  const child = fork(join(REPO, script), [String(upstreamPort)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const [message] = (await once(child, 'message')) as [{ port: number }];
  if (PIN) await new Promise((resolve) => spawn('taskset', ['-a', '-pc', PROXY_CPU, String(child.pid)], { stdio: 'ignore' }).once('exit', resolve));
  return { port: message.port, pid: child.pid! };
}

/** Resident memory of the largest of `pids`, in MiB (the worker, for a gateway). */
function largestRssMiB(pids: number[]): number {
  let largest = 0;
  for (const pid of pids) {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    largest = Math.max(largest, Number(match?.[1] ?? 0) / 1024);
  }
  return largest;
}

/** Forks a helper server (upstream, OTLP sink) on the load side's cores; resolves with its port. */
async function startChild(script: string): Promise<number> {
  const child = fork(join(REPO, script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const [message] = (await once(child, 'message')) as [{ port: number }];
  if (PIN) spawn('taskset', ['-pc', LOAD_CPUS, String(child.pid)], { stdio: 'ignore' });
  return message.port;
}

function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    total += Number(fields[11]) + Number(fields[12]);
  }
  return total;
}


function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}
