import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { Logger } from 'pino';
import type { ParsedUpstream } from '../config/schema.ts';
import type { RequestContext } from '../context.ts';
import { counter } from '../telemetry/metrics.ts';

export interface UpstreamTarget {
  /** `http://127.0.0.1:3001` */
  readonly origin: string;
  /** `127.0.0.1:3001`, sent as `Host` unless the route preserves the client's. */
  readonly host: string;
  /** Prefixed to every forwarded path; `''` for none. */
  readonly basePath: string;
  readonly pool: Pool;
  readonly weight: number;
  /** Requests this worker has in flight to it. */
  outstanding: number;
  /** Failures in a row (passive health). */
  failures: number;
  /** Date.now() before which it is left out. */
  ejectedUntil: number;
  /** Smooth weighted round-robin state. */
  currentWeight: number;
  /** Failing the primary's active health checks. */
  down: boolean;
}

const ejections = counter('tollgate_upstream_ejections_total', 'Targets left out after failing too many times in a row.', ['tollgate_upstream'] as const);

/**
 * A named upstream: one undici Pool per target, a balancing policy, passive health (targets that keep
 * failing are left out for a while), a retry budget and a concurrency limit. All of it is per worker.
 */
export class Upstream {
  readonly name: string;
  readonly targets: readonly UpstreamTarget[];
  readonly config: ParsedUpstream;
  readonly #logger: Logger | null;
  /** Requests in flight, for the concurrency limit. */
  inflight = 0;
  // The retry budget counts requests and retries over a tumbling ten-second window.
  #windowStart = 0;
  #requests = 0;
  #retries = 0;
  #rotation = 0;

  /** How `https:` targets are verified: the pools use it, and so do WebSocket upgrades. */
  readonly tls: { readonly ca?: Buffer; readonly servername?: string; readonly rejectUnauthorized: boolean };

  constructor(name: string, config: ParsedUpstream, logger: Logger | null = null) {
    this.name = name;
    this.config = config;
    this.#logger = logger;
    this.tls = {
      ...(config.tls?.ca ? { ca: readFileSync(config.tls.ca) } : {}),
      ...(config.tls?.servername ? { servername: config.tls.servername } : {}),
      rejectUnauthorized: config.tls?.rejectUnauthorized ?? true,
    };
    this.targets = config.targets.map((target) => ({
      origin: target.origin,
      host: target.host,
      basePath: target.basePath,
      weight: target.weight,
      outstanding: 0,
      failures: 0,
      ejectedUntil: 0,
      currentWeight: 0,
      down: false,
      pool: new Pool(target.origin, {
        connections: config.pool.connections,
        pipelining: config.pool.pipelining,
        keepAliveTimeout: config.pool.keepAliveTimeout,
        headersTimeout: config.timeouts.headers,
        bodyTimeout: config.timeouts.body,
        allowH2: config.pool.http2,
        connect: {
          timeout: config.timeouts.connect,
          ...this.tls,
        },
      }),
    }));
  }

  /** The target for this attempt, leaving out unhealthy ones and those already tried; null when none is left. */
  pick(ctx: RequestContext, tried: readonly UpstreamTarget[] | null): UpstreamTarget | null {
    const targets = this.targets;
    if (targets.length === 1 && tried === null) return usable(targets[0]!, Date.now(), null) ? targets[0]! : null;
    const now = Date.now();
    const balance = this.config.balance;
    if (balance === 'round-robin') return this.#weightedRoundRobin(now, tried);
    if (balance === 'least-outstanding') return this.#leastOutstanding(now, tried);
    return this.#rendezvous(hashKey(ctx, balance.hash), now, tried);
  }

  /** Passive health: a success clears a target's failures; enough failures in a row leave it out for a while. */
  report(target: UpstreamTarget, ok: boolean): void {
    if (ok) {
      target.failures = 0;
      target.ejectedUntil = 0;
      return;
    }
    target.failures++;
    if (target.failures < this.config.health.failures) return;
    // One more failure after the ejection ends sends it out again at once.
    target.failures = this.config.health.failures - 1;
    target.ejectedUntil = Date.now() + this.config.health.ejectFor;
    ejections.inc({ tollgate_upstream: this.name });
    this.#logger?.warn(
      { upstream: this.name, target: target.origin, ejectForMs: this.config.health.ejectFor },
      `upstream "${this.name}": ${target.origin} failed ${this.config.health.failures} times in a row; left out for ${this.config.health.ejectFor} ms`,
    );
  }

  /** The primary's active health check says `origin` is up or down. */
  setDown(origin: string, down: boolean): void {
    for (const target of this.targets) if (target.origin === origin) target.down = down;
  }

  /** Counts a request against the retry budget's window. */
  countRequest(): void {
    this.#rollWindow();
    this.#requests++;
  }

  /** Whether one more retry fits the budget (and counts it if so). */
  takeRetry(): boolean {
    this.#rollWindow();
    if (this.#retries >= 10 + this.config.retries.budget * this.#requests) return false;
    this.#retries++;
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.targets.map((target) => target.pool.close()));
  }

  #rollWindow(): void {
    const now = Date.now();
    if (now - this.#windowStart < 10_000) return;
    this.#windowStart = now;
    this.#requests = 0;
    this.#retries = 0;
  }

  /** nginx's smooth weighted round-robin: evenly interleaved, each target its weight's share. */
  #weightedRoundRobin(now: number, tried: readonly UpstreamTarget[] | null): UpstreamTarget | null {
    let best: UpstreamTarget | null = null;
    let total = 0;
    for (const target of this.targets) {
      if (!usable(target, now, tried)) continue;
      target.currentWeight += target.weight;
      total += target.weight;
      if (best === null || target.currentWeight > best.currentWeight) best = target;
    }
    if (best !== null) best.currentWeight -= total;
    return best;
  }

  #leastOutstanding(now: number, tried: readonly UpstreamTarget[] | null): UpstreamTarget | null {
    let best: UpstreamTarget | null = null;
    const count = this.targets.length;
    // Ties go round the targets rather than always to the first.
    const start = this.#rotation++ % count;
    for (let i = 0; i < count; i++) {
      const target = this.targets[(start + i) % count]!;
      if (usable(target, now, tried) && (best === null || target.outstanding < best.outstanding)) best = target;
    }
    return best;
  }

  /**
   * Rendezvous hashing: every target scores the key, the highest usable score wins. The same key
   * picks the same target in every worker and every gateway, and a target leaving moves only its keys.
   */
  #rendezvous(key: string, now: number, tried: readonly UpstreamTarget[] | null): UpstreamTarget | null {
    let best: UpstreamTarget | null = null;
    let bestScore = -1;
    for (const target of this.targets) {
      if (!usable(target, now, tried)) continue;
      const score = fnv1a(`${key}\n${target.origin}`) / 4_294_967_296;
      // Weighted rendezvous (-w / ln(score)): a target of weight 2 wins twice as many keys.
      const weighted = -target.weight / Math.log(score || Number.MIN_VALUE);
      if (weighted > bestScore) {
        bestScore = weighted;
        best = target;
      }
    }
    return best;
  }
}

/** Not failing health checks, not ejected (or ejected long enough ago), not already tried for this request. */
function usable(target: UpstreamTarget, now: number, tried: readonly UpstreamTarget[] | null): boolean {
  return !target.down && (target.ejectedUntil === 0 || now >= target.ejectedUntil) && (tried === null || !tried.includes(target));
}

type HashBy = Exclude<ParsedUpstream['balance'], string>['hash'];

function hashKey(ctx: RequestContext, by: HashBy): string {
  if (by === 'ip') return ctx.request.ip;
  if (by === 'consumer') return ctx.consumer?.id ?? ctx.request.ip;
  if ('header' in by) {
    const value = ctx.request.headers[by.header];
    return (Array.isArray(value) ? value[0] : value) ?? ctx.request.ip;
  }
  const cookies = ctx.request.headers.cookie ?? '';
  const match = new RegExp(`(?:^|;\\s*)${by.cookie.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}=([^;]*)`).exec(cookies);
  return match?.[1] ?? ctx.request.ip;
}

/** FNV-1a with murmur3's finaliser, so that keys differing in their last bytes still spread evenly. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
