/**
 * `node bench/request-slot.ts`: what a plugin's private per-request state costs, kept in a request
 * slot (`gw.requestSlot()`) against a WeakMap keyed by the context, garbage collection included.
 * Contexts are made and dropped as a worker does, with 64 in flight (wrk -c64), in one process;
 * the baseline is the same loop keeping no state. Reports ns per request and the ratios.
 */
import { kSlots, RequestSlot, type RequestContext } from '../core/context.ts';

const IN_FLIGHT = 64;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** As many fields as a RequestContext, so that objects die young at the same size. */
class Context {
  id = '';
  request = null;
  route = null;
  params = null;
  upstreamRequest = null;
  consumer = null;
  response = null;
  error = null;
  startedAt = 0;
  upstreamTarget = null;
  upstreamStatus = null;
  upstreamHeadersMs = null;
  span = null;
  [kSlots]: unknown[] | null = null;
}

type Keeper = { set(ctx: Context, value: { at: number }): void; get(ctx: Context): { at: number } | undefined };
const slot = new RequestSlot<{ at: number }>(0);
const keepers: Record<string, Keeper | null> = {
  'no state (baseline)': null,
  'request slot': { set: (ctx, value) => slot.set(ctx as unknown as RequestContext, value), get: (ctx) => slot.get(ctx as unknown as RequestContext) },
  'WeakMap keyed by ctx': new WeakMap<Context, { at: number }>(),
};

function run(keeper: Keeper | null, requests: number): number {
  const live: (Context | undefined)[] = new Array(IN_FLIGHT);
  let sum = 0;
  for (let i = 0; i < requests; i++) {
    const ctx = new Context();
    keeper?.set(ctx, { at: i });
    const done = live[i % IN_FLIGHT];
    if (done !== undefined && keeper !== null) sum += keeper.get(done)!.at;
    live[i % IN_FLIGHT] = ctx;
  }
  return sum;
}

const ns: Record<string, number[]> = {};
for (const keeper of Object.values(keepers)) run(keeper, 500_000);
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, keeper] of Object.entries(keepers)) {
    const started = process.hrtime.bigint();
    run(keeper, REQUESTS);
    (ns[name] ??= []).push(Number(process.hrtime.bigint() - started) / REQUESTS);
  }
}
const median = (values: number[]): number => values.slice().sort((a, b) => a - b)[values.length >> 1]!;
const base = median(ns['no state (baseline)']!);
console.log(`${REQUESTS} requests x ${ROUNDS} rounds, ${IN_FLIGHT} in flight; medians`);
console.log('| state kept in | ns/request | over the baseline |');
console.log('|---|--:|--:|');
for (const name of Object.keys(keepers)) console.log(`| ${name} | ${median(ns[name]!).toFixed(1)} | ${(median(ns[name]!) - base).toFixed(1)} ns |`);
