import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));

export interface TollgateUnderTest {
  child: ChildProcess;
  port: number;
  /** The primary and the workers: the proxy's CPU time. */
  pids: number[];
  /** The workers alone: their memory is the per-core cost (the primary's is paid once per host). */
  workerPids: number[];
}

/** A bench gateway: the config it runs (one route, GET /items, no plugins unless given) and how it starts. */
export interface BenchGatewayOptions {
  upstreamPort: number;
  workers: number;
  scheduling?: 'round-robin' | 'os';
  /** taskset CPU list for the whole process tree. */
  cpus?: string | undefined;
  /** One log line per request, as the default config has it (off by default here). */
  accessLog?: boolean;
  /** TypeScript source of the route's `plugins` array, e.g. `[keyAuth({ ... })]`; bundled plugins are in scope. */
  plugins?: string;
  /** The config's `redis.url`. */
  redisUrl?: string;
  /** TypeScript source of the config's `telemetry`. */
  telemetry?: string;
  /** TypeScript source of the config's `offload`. */
  offload?: string;
  /** TypeScript source of the whole `routes` array, instead of the one GET /items route. */
  routes?: string;
  /** TypeScript source of the config's `upstreams`, instead of the one `bench` upstream. */
  upstreams?: string;
  /** TypeScript source put before the config (imports, constants). */
  preamble?: string;
  /** Flags for node itself (`--cpu-prof`, `--trace-gc`); cluster workers inherit them. */
  nodeArgs?: string[];
}

/** Starts `tollgate start` with a one-route, no-plugin config in front of the bench upstream. */
export async function startTollgate(options: BenchGatewayOptions): Promise<TollgateUnderTest> {
  const config = writeBenchConfig(options);
  const command = [process.execPath, ...(options.nodeArgs ?? []), join(REPO, 'core/cli/tollgate.ts'), 'start', '--config', config, '--workers', String(options.workers)];
  const [file, ...args] = options.cpus ? ['taskset', '-c', options.cpus, ...command] : command;
  const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    // Keep reading (and dropping) the gateway's log after it is ready: a full pipe would block it.
    child.stdout!.on('data', (chunk: Buffer) => {
      if (output === null) return;
      output += chunk;
      const ready = output.split('\n').map(parseLine).find((line) => line?.msg?.startsWith('tollgate ready'));
      if (ready) {
        output = null!;
        // The primary counts too: it decides host-wide rate limits for the workers.
        resolve({ child, port: ready.port, pids: [child.pid!, ...ready.workers], workerPids: ready.workers });
      }
    });
    child.once('exit', (code) => reject(new Error(`tollgate exited (${code}) before it was ready:\n${output}`)));
  });
}

/** Writes the gateway.config.ts a bench gateway runs, in a new temporary directory; returns its path. */
export function writeBenchConfig(options: Omit<BenchGatewayOptions, 'workers' | 'cpus' | 'nodeArgs'>): string {
  const config = join(mkdtempSync(join(tmpdir(), 'tollgate-bench-')), 'gateway.config.ts');
  writeFileSync(
    config,
    `import { defineConfig } from '${join(REPO, 'core/index.ts')}';
import * as bundled from '${join(REPO, 'plugins/index.ts')}';
const { keyAuth, jwtAuth, rateLimit, cache, validate } = bundled;
${options.preamble ?? ''}
export default defineConfig({
  listen: { port: 0, host: '127.0.0.1' },
  ${options.scheduling ? `scheduling: '${options.scheduling}',` : ''}
  log: { accessLog: ${options.accessLog ?? false} },
  ${options.redisUrl ? `redis: { url: '${options.redisUrl}' },` : ''}
  ${options.telemetry ? `telemetry: ${options.telemetry},` : ''}
  ${options.offload ? `offload: ${options.offload},` : ''}
  upstreams: ${options.upstreams ?? `{ bench: { targets: ['http://127.0.0.1:${options.upstreamPort}'] } }`},
  routes: ${options.routes ?? `[{ path: '/items', methods: ['GET'], upstream: 'bench', plugins: ${options.plugins ?? '[]'} }]`},
});
`,
  );
  return config;
}

function parseLine(text: string): { msg?: string; port: number; workers: number[] } | null {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
