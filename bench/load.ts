import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import autocannon from 'autocannon';

const run = promisify(execFile);

export interface LoadResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Completed requests (for CPU time per request). */
  requests: number;
  errors: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  seconds: number;
  /** CPU list for taskset, e.g. '1'. */
  cpus?: string | undefined;
  /** Open a new connection for every request (`Connection: close`). */
  closeConnections?: boolean;
  /** Request headers (credentials, say). */
  headers?: Record<string, string> | undefined;
}

/**
 * Seconds of load a gateway gets before it is measured. A new Node process needs about three under
 * this load before V8 has optimised its hot path: measured one second at a time after a fresh start
 * (wrk, 64 connections, one pinned worker), bare tollgate went 10.5k, 15-19k, 17-23k, then a steady
 * 22-24k requests/s with a p99 of 4-5 ms (the first seconds: 40-220 ms), and fast-gateway took as
 * long. One second of warm-up left JIT compilation inside the measured window, in both the
 * throughput and the tail.
 */
export const DEFAULT_WARM_UP_SECONDS = 3;

/** A warm-up setting (BENCH_WARMUP, --warmup): whole seconds, 0 for none. */
export function parseWarmUpSeconds(text: string | undefined, setting: string): number {
  if (text === undefined || text === '') return DEFAULT_WARM_UP_SECONDS;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${setting} must be a whole number of seconds (0 for no warm-up), not "${text}"`);
  return value;
}

export type LoadGenerator = { name: string; run(options: LoadOptions): Promise<LoadResult> };

/**
 * wrk where installed (a C load generator needs far less CPU than the proxy it measures), else
 * autocannon; BENCH_LOAD=autocannon forces the latter.
 */
export async function pickLoadGenerator(): Promise<LoadGenerator> {
  if (process.env.BENCH_LOAD === 'autocannon') return { name: 'autocannon', run: runAutocannon };
  try {
    await run('wrk', ['--version']).catch((error: { stdout?: string }) => {
      if (!error.stdout?.includes('wrk')) throw error;
    });
    return { name: 'wrk', run: runWrk };
  } catch {
    return { name: 'autocannon', run: runAutocannon };
  }
}

async function runWrk(options: LoadOptions): Promise<LoadResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', options.url];
  if (options.closeConnections) args.unshift('-H', 'Connection: close');
  for (const [name, value] of Object.entries(options.headers ?? {})) args.unshift('-H', `${name}: ${value}`);
  const { stdout } = options.cpus ? await run('taskset', ['-c', options.cpus, 'wrk', ...args]) : await run('wrk', args);
  const number = (pattern: RegExp): number => Number(pattern.exec(stdout)?.[1] ?? NaN);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = number(/Non-2xx or 3xx responses: (\d+)/);
  return {
    requestsPerSec: number(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: latencyMs(/50%\s+([\d.]+)(us|ms|s)\b/.exec(stdout)),
    p99Ms: latencyMs(/99%\s+([\d.]+)(us|ms|s)\b/.exec(stdout)),
    requests: number(/(\d+) requests in/),
    errors: (errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0) + (Number.isNaN(non2xx) ? 0 : non2xx),
  };
}

function latencyMs(match: RegExpExecArray | null): number {
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

async function runAutocannon(options: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    headers: { ...options.headers, ...(options.closeConnections ? { connection: 'close' } : {}) },
  });
  return {
    requestsPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors + result.non2xx,
  };
}
