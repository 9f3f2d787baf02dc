/**
 * The one-worker tollgate configurations the benchmarks measure: `npm run bench` runs them all next
 * to the peers, `npm run bench:ab` runs the ones it is given against an earlier revision. Each one
 * is pinned to the proxy's core like the bare gateway, so its cost reads against that.
 */
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { hashKey } from '../plugins/key-auth/key-hash.ts';
import type { BenchGatewayOptions } from './tollgate.ts';

export type ScenarioOptions = Omit<BenchGatewayOptions, 'upstreamPort' | 'workers' | 'cpus'>;

/** The helper servers a scenario runs against; a scenario reads only what its `needs` names. */
export interface ScenarioServices {
  redisUrl: string;
  /** Port of the local OTLP receiver (bench/otlp-sink.ts). */
  sinkPort: number;
}

export interface Scenario {
  /** Its name on the command line (`npm run bench:ab -- full-chain`). */
  id: string;
  /** Its name in the tables. */
  name: string;
  needs: readonly ('redis' | 'sink')[];
  options(services: ScenarioServices): ScenarioOptions;
  /** What every request sends (credentials). */
  headers?: Record<string, string>;
}

export const BARE: Scenario = { id: 'bare', name: 'tollgate (1 worker)', needs: [], options: () => ({}) };

const KEY_AUTH = `keyAuth({ consumers: { bench: { keyHashes: ['${hashKey('bench-key')}'] } } })`;
const API_KEY = { 'x-api-key': 'bench-key' };
// A limit no client reaches, so the cost of deciding is measured, not the cost of a 429.
// One hot bucket (every request from one client) is served from reserves; 10k buckets each seen
// every few hundred ms are the worst case: one store decision per request.
const UNREACHABLE_LIMIT = `rateLimit({ limit: 1000000000, window: '1h', by: 'ip' })`;
const MANY_KEYS_LIMIT = `rateLimit({ limit: 1000000000, window: '1h', by: (() => { let n = 0; return () => String(n++ % 10000); })() })`;

const tracing = (sinkPort: number, sampleRatio: number, protocol = 'http/protobuf'): string =>
  `{ otlp: { endpoint: 'http://127.0.0.1:${sinkPort}', protocol: '${protocol}' }, tracing: { sampleRatio: ${sampleRatio} } }`;

/** Every scenario with plugins or options, in the order the bench's table lists them. */
export async function pluginScenarios(): Promise<Scenario[]> {
  return [
    { id: 'access-log', name: 'tollgate + access log', needs: [], options: () => ({ accessLog: true }) },
    { id: 'key-auth', name: 'tollgate + keyAuth', needs: [], options: () => ({ plugins: `[${KEY_AUTH}]` }), headers: API_KEY },
    ...(await jwtScenarios()),
    { id: 'rate-limit-host', name: 'tollgate + rateLimit host', needs: [], options: () => ({ plugins: `[${UNREACHABLE_LIMIT}]` }) },
    { id: 'rate-limit-host-10k', name: 'rateLimit host, 10k keys', needs: [], options: () => ({ plugins: `[${MANY_KEYS_LIMIT}]` }) },
    { id: 'rate-limit-redis', name: 'tollgate + rateLimit redis', needs: ['redis'], options: ({ redisUrl }) => ({ plugins: `[${UNREACHABLE_LIMIT}]`, redisUrl }) },
    { id: 'rate-limit-redis-10k', name: 'rateLimit redis, 10k keys', needs: ['redis'], options: ({ redisUrl }) => ({ plugins: `[${MANY_KEYS_LIMIT}]`, redisUrl }) },
    // Every request a hit (the bench upstream sends no freshness, so the route's ttl applies).
    { id: 'cache-hit', name: 'tollgate + cache hit', needs: [], options: () => ({ plugins: `[cache({ ttl: '1h' })]` }) },
    // Every request a miss: the body is over maxEntrySize, so it streams through uncached.
    { id: 'cache-miss', name: 'tollgate + cache miss', needs: [], options: () => ({ plugins: `[cache({ ttl: '1h', maxEntrySize: 1 })]` }) },
    { id: 'tracing-100', name: 'tracing 100 %', needs: ['sink'], options: ({ sinkPort }) => ({ telemetry: tracing(sinkPort, 1) }) },
    { id: 'tracing-100-json', name: 'tracing 100 %, json', needs: ['sink'], options: ({ sinkPort }) => ({ telemetry: tracing(sinkPort, 1, 'http/json') }) },
    { id: 'tracing-10', name: 'tracing 10 %', needs: ['sink'], options: ({ sinkPort }) => ({ telemetry: tracing(sinkPort, 0.1) }) },
    { id: 'tracing-0', name: 'tracing 0 %', needs: ['sink'], options: ({ sinkPort }) => ({ telemetry: tracing(sinkPort, 0) }) },
    {
      id: 'full-chain',
      name: FULL_CHAIN,
      needs: ['redis', 'sink'],
      options: ({ redisUrl, sinkPort }) => ({
        redisUrl,
        telemetry: tracing(sinkPort, 0.1),
        plugins: `[${KEY_AUTH}, rateLimit({ limit: 1000000000, window: '1h', by: 'consumer' }), cache({ ttl: '1h', maxEntrySize: 1 })]`,
      }),
      headers: API_KEY,
    },
  ];
}

/** The full chain: keyAuth, a Redis rate limit no client reaches, tracing at 10 %, a cache that misses. */
export const FULL_CHAIN = 'full chain (auth, redis limit, 10 % traces, cache miss)';

/** jwtAuth with RS256 and ES256, each with one token repeated: the case the verified-token cache is for. */
async function jwtScenarios(): Promise<Scenario[]> {
  const scenarios: Scenario[] = [];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const token = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg }).setExpirationTime('1h').sign(privateKey);
    const plugins = `[jwtAuth({ algorithms: ['${alg}'], publicKey: ${JSON.stringify(await exportSPKI(publicKey))} })]`;
    scenarios.push({ id: `jwt-auth-${alg.toLowerCase()}`, name: `tollgate + jwtAuth ${alg}`, needs: [], options: () => ({ plugins }), headers: { authorization: `Bearer ${token}` } });
  }
  return scenarios;
}
