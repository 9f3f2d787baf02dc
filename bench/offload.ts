/**
 * `npm run bench:offload`: what moving request validation off the event loop buys, in one run.
 *
 * 1. Threshold: event-loop time per validation of a JSON body of each size, run inline vs handed to
 *    a pool thread (structured clone, postMessage and the answer are the event loop's share then).
 *    Below the size where the two cross, inline is cheaper: that is `offload.inlineBelow`'s default.
 * 2. Mixed load on one worker: small GETs at a fixed rate alongside large POSTs that the validate
 *    plugin checks against an OpenAPI document, once with validation forced inline and once
 *    offloaded (the default), in interleaved rounds. Reports the GETs' latency and the POSTs' rate.
 *
 * Env: BENCH_ROUNDS (default 3), BENCH_SECONDS (per round, default 6), BENCH_GET_RATE (GETs/s,
 * default 200), BENCH_POST_RATE (POSTs/s, default 20), BENCH_BODY_KB (default 2048).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { OffloadPool } from '../core/offload/offload-pool.ts';
import { planFromOpenApi } from '../plugins/validate/openapi-plan.ts';
import { sharePlan } from '../plugins/validate/plan.ts';
import validateRequest, { preparePlan, type ValidateInput } from '../plugins/validate/validate-task.ts';
import { median } from './stats.ts';
import { openLoop } from './open-loop.ts';
import { startTollgate } from './tollgate.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const GET_RATE = Number(process.env.BENCH_GET_RATE ?? 200);
const POST_RATE = Number(process.env.BENCH_POST_RATE ?? 20);
const BODY_KB = Number(process.env.BENCH_BODY_KB ?? 2048);
const DOC_PATH = fileURLToPath(new URL('../test/fixtures/openapi/orders.json', import.meta.url));
const doc = JSON.parse(readFileSync(DOC_PATH, 'utf8')) as unknown;

/** A valid createOrder body of about `bytes` bytes. */
function orderOf(bytes: number): Buffer {
  const items: { sku: string; qty: number }[] = [];
  let size = 60;
  while (size < bytes) {
    const item = { sku: `SKU-${items.length.toString().padStart(8, '0')}`, qty: 1 + (items.length % 9) };
    items.push(item);
    size += JSON.stringify(item).length + 1;
  }
  return Buffer.from(JSON.stringify({ customer: 'ops@example.com', items }));
}

// ---- 1. threshold ---------------------------------------------------------------------------
async function measureThreshold(): Promise<{ rows: string[]; threshold: number | null }> {
  const { plan } = planFromOpenApi(doc);
  const { key, shared } = sharePlan(plan);
  preparePlan(key, plan);
  const pool = new OffloadPool({ threads: 1, inlineBelow: 0, taskTimeout: 30_000, maxQueue: 64, niceIncrement: 10 }, 1);
  const task = await pool.task<typeof validateRequest>(new URL('../plugins/validate/validate-task.ts', import.meta.url));
  const rows: string[] = [];
  let threshold: number | null = null;
  for (const size of [256, 1024, 4096, 8192, 16_384, 32_768, 65_536, 262_144, 1_048_576]) {
    const body = orderOf(size);
    const input: ValidateInput = { plan: shared, planKey: key, operation: 'POST /orders', params: {}, query: '', headers: { 'x-tenant': 'acme' }, body, bodyMediaType: 'application/json' };
    const runs = Math.max(20, Math.min(2_000, Math.round(20_000_000 / size)));
    const perRun = async (mode: 'inline' | 'thread'): Promise<{ loopUs: number; wallUs: number }> => {
      for (let i = 0; i < 10; i++) await task.run(input, { mode }); // warm: compiled on the thread, JIT
      const elu = performance.eventLoopUtilization();
      const started = performance.now();
      for (let i = 0; i < runs; i++) await task.run(input, { mode });
      const wall = performance.now() - started;
      // Inline work never lets the loop go idle, so ELU cannot see it: all of its wall time is the loop's.
      const loopMs = mode === 'inline' ? wall : performance.eventLoopUtilization(elu).active;
      return { loopUs: (loopMs * 1000) / runs, wallUs: (wall * 1000) / runs };
    };
    const inline = await perRun('inline');
    const thread = await perRun('thread');
    if (threshold === null && thread.loopUs < inline.loopUs) threshold = body.byteLength;
    rows.push(`| ${(body.byteLength / 1024).toFixed(1)} KiB | ${inline.loopUs.toFixed(1)} | ${thread.loopUs.toFixed(1)} | ${thread.wallUs.toFixed(1)} | ${(inline.loopUs / thread.loopUs).toFixed(2)} |`);
  }
  await pool.close();
  return { rows, threshold };
}

// ---- 2. mixed load ---------------------------------------------------------------------------
interface RoundResult {
  getP50: number;
  getP99: number;
  getMax: number;
  postsPerSecond: number;
  postP50: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function mixedRound(port: number, postPort: number, body: Buffer): Promise<RoundResult> {
  const origin = `http://127.0.0.1:${postPort}`;
  const posts = new Pool(origin, { connections: 32 });
  const getLatencies: number[] = [];
  const postLatencies: number[] = [];
  let errors = 0;

  // POSTs on schedule too, at a rate the host can sustain either way: what is measured is how long
  // a GET waits behind them on the event loop, not how a saturated CPU queues everything.
  const posters = openLoop(POST_RATE, SECONDS, (sentAt) =>
    posts.request({ path: '/orders', method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant': 'acme' }, body }).then(async (res) => {
      await res.body.dump();
      if (res.statusCode !== 200) errors++;
      postLatencies.push(performance.now() - sentAt);
    }, () => {
      errors++;
    }),
  );

  // GETs from a process of their own, on schedule whether or not earlier ones were answered, so a
  // stalled event loop shows as latency instead of hiding as fewer requests.
  const prober = fork(fileURLToPath(new URL('./get-prober.ts', import.meta.url)), [String(port), String(GET_RATE), String(SECONDS)]);
  const [probed] = (await once(prober, 'message')) as [{ latencies: number[]; errors: number }];
  getLatencies.push(...probed.latencies);
  errors += probed.errors;
  await posters;
  await posts.close();
  getLatencies.sort((a, b) => a - b);
  postLatencies.sort((a, b) => a - b);
  return {
    getP50: percentile(getLatencies, 50),
    getP99: percentile(getLatencies, 99),
    getMax: getLatencies.at(-1) ?? Number.NaN,
    postsPerSecond: postLatencies.length / SECONDS,
    postP50: percentile(postLatencies, 50),
    errors,
  };
}

async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const child = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), ['0'], { stdio: 'inherit' });
  const [message] = (await once(child, 'message')) as [{ port: number }];
  return { port: message.port, child };
}

const children: ChildProcess[] = [];
// SIGTERM, not SIGKILL: tollgate's primary then stops its own workers.
process.on('exit', () => children.forEach((child) => child?.kill('SIGTERM')));
// With two cores or more: the gateway (event loop and offload threads) on core 0; this process, the
// GET prober and the upstream on the others, so that their work does not show as gateway latency.
const CORES = availableParallelism();
const PIN = CORES >= 2 && process.env.BENCH_PIN !== '0';
const GATEWAY_CPUS = PIN ? '0' : undefined;
if (PIN) await new Promise((resolve) => spawn('taskset', ['-a', '-pc', `1-${CORES - 1}`, String(process.pid)], { stdio: 'ignore' }).once('exit', resolve));

console.log(`offload bench: ${CORES} cores (${PIN ? 'gateway on core 0, the rest on the others' : 'nothing pinned'}), Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
const { rows, threshold } = await measureThreshold();
console.log('### Event-loop time per validation (µs), by JSON body size\n');
console.log('| body | inline | offloaded: event loop | offloaded: round trip | inline ÷ offloaded |');
console.log('|--:|--:|--:|--:|--:|');
for (const row of rows) console.log(row);
console.log(`\nOffloading costs the event loop less than validating inline from ${threshold === null ? '(no size measured)' : `${(threshold / 1024).toFixed(1)} KiB`} up.\n`);

// Two upstream processes: the GETs' own, so that its event loop is never busy receiving the POSTs'
// bodies, and what the GETs measure is the gateway.
const upstream = await startUpstream();
const bodies = await startUpstream();
children.push(upstream.child, bodies.child);
const routes = `[
  { path: '/items', methods: ['GET'], upstream: 'bench' },
  { path: '/orders', methods: ['POST'], upstream: 'bodies', plugins: [validate({ openapi: doc, bodyLimit: 64 * 1024 * 1024 })] },
]`;
const preamble = `import { readFileSync } from 'node:fs';\nconst doc = JSON.parse(readFileSync('${DOC_PATH}', 'utf8'));`;
// BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the gateways' processes and threads.
const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean);
const upstreams = `{ bench: { targets: ['http://127.0.0.1:${upstream.port}'] }, bodies: { targets: ['http://127.0.0.1:${bodies.port}'] } }`;
const streamed = `[
  { path: '/items', methods: ['GET'], upstream: 'bench' },
  { path: '/orders', methods: ['POST'], upstream: 'bodies' },
]`;
const modes = {
  'upstream direct (baseline)': { port: upstream.port, postPort: bodies.port, child: null },
  'no validation (POST streamed)': await startTollgate({ upstreamPort: upstream.port, workers: 1, routes: streamed, upstreams, cpus: GATEWAY_CPUS, nodeArgs }),
  inline: await startTollgate({ upstreamPort: upstream.port, workers: 1, routes, upstreams, preamble, cpus: GATEWAY_CPUS, nodeArgs, offload: `{ inlineBelow: ${Number.MAX_SAFE_INTEGER} }` }),
  offloaded: await startTollgate({ upstreamPort: upstream.port, workers: 1, routes, upstreams, preamble, cpus: GATEWAY_CPUS, nodeArgs, offload: process.env.BENCH_OFFLOAD }),
};
children.push(modes.inline.child, modes.offloaded.child, modes['no validation (POST streamed)'].child);
const baseline = 'upstream direct (baseline)';
const body = orderOf(BODY_KB * 1024);
const results = Object.fromEntries(Object.keys(modes).map((mode) => [mode, [] as RoundResult[]])) as Record<keyof typeof modes, RoundResult[]>;
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of Object.keys(modes) as (keyof typeof modes)[]) {
    const subject: { port: number; postPort?: number } = modes[mode];
    results[mode].push(await mixedRound(subject.port, subject.postPort ?? subject.port, body));
  }
}
const summary = (mode: keyof typeof modes): RoundResult => {
  const of = (pick: (r: RoundResult) => number): number => median(results[mode].map(pick));
  return { getP50: of((r) => r.getP50), getP99: of((r) => r.getP99), getMax: of((r) => r.getMax), postsPerSecond: of((r) => r.postsPerSecond), postP50: of((r) => r.postP50), errors: results[mode].reduce((sum, r) => sum + r.errors, 0) };
};
const direct = summary(baseline);
const unvalidated = summary('no validation (POST streamed)');
const inline = summary('inline');
const offloaded = summary('offloaded');
console.log(`### Mixed load on one worker: ${GET_RATE} GET/s with ${POST_RATE} POST/s of ${(body.byteLength / 1024 / 1024).toFixed(1)} MiB, validated (medians of ${ROUNDS} rounds of ${SECONDS} s)\n`);
console.log('| | GET p50 ms | GET p99 ms | GET max ms | POST/s | POST p50 ms | errors |');
console.log('|---|--:|--:|--:|--:|--:|--:|');
for (const [name, r] of [[baseline, direct], ['tollgate, no validation (POST streamed)', unvalidated], ['validation inline', inline], ['validation offloaded', offloaded]] as const) {
  console.log(`| ${name} | ${r.getP50.toFixed(2)} | ${r.getP99.toFixed(2)} | ${r.getMax.toFixed(1)} | ${r.postsPerSecond.toFixed(1)} | ${r.postP50.toFixed(1)} | ${r.errors} |`);
}
console.log(`\nGET p99, inline ÷ offloaded: ${(inline.getP99 / offloaded.getP99).toFixed(1)}x; POST rate, offloaded ÷ inline: ${(offloaded.postsPerSecond / inline.postsPerSecond).toFixed(2)}`);
// Stopped gently, so that profiles (BENCH_NODE_ARGS) are written.
for (const child of children) child?.kill('SIGTERM');
await Promise.all(children.map((child) => child && child.exitCode === null ? once(child, 'exit') : null));
process.exit(0);
