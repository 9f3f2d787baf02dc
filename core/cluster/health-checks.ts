import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { request } from 'undici';
import type { ResolvedConfig } from '../config/validate.ts';

/** What the primary tells workers about a target's active health. */
export interface HealthMessage {
  type: 'tollgate:health';
  upstream: string;
  origin: string;
  healthy: boolean;
}

interface Check {
  upstream: string;
  origin: string;
  url: string;
  healthy: boolean;
  streak: number;
}

/**
 * Active health checks, run by the primary so that a target sees one check per interval from a host,
 * whatever the number of workers. Each change of state is sent to every worker, and the whole state
 * to each worker that starts.
 */
export class HealthChecks {
  readonly #checks: Check[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #logger: Logger;
  readonly #workers: () => Worker[];

  constructor(config: ResolvedConfig, logger: Logger, workers: () => Worker[]) {
    this.#logger = logger;
    this.#workers = workers;
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      const active = upstream.health.active;
      if (!active) continue;
      for (const target of upstream.targets) {
        const check: Check = { upstream: name, origin: target.origin, url: `${target.origin}${target.basePath}${active.path}`, healthy: true, streak: 0 };
        this.#checks.push(check);
        const run = (): void => void this.#probe(check, active.timeout, active.healthyThreshold, active.unhealthyThreshold);
        this.#timers.push(setInterval(run, active.interval).unref());
        run();
      }
    }
  }

  /** Tells a starting worker about every target that is down now. */
  greet(worker: Worker): void {
    for (const check of this.#checks) if (!check.healthy) send(worker, check);
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
  }

  async #probe(check: Check, timeoutMs: number, healthyThreshold: number, unhealthyThreshold: number): Promise<void> {
    let passed = false;
    try {
      const response = await request(check.url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
      await response.body.dump();
      passed = response.statusCode >= 200 && response.statusCode < 400;
    } catch {
      passed = false;
    }
    // A streak counts checks that disagree with the current state.
    if (passed === check.healthy) {
      check.streak = 0;
      return;
    }
    check.streak++;
    if (check.streak < (passed ? healthyThreshold : unhealthyThreshold)) return;
    check.healthy = passed;
    check.streak = 0;
    this.#logger[passed ? 'info' : 'warn'](
      { upstream: check.upstream, target: check.origin },
      `health check: ${check.origin} of upstream "${check.upstream}" is ${passed ? 'healthy again' : 'unhealthy'}`,
    );
    for (const worker of this.#workers()) send(worker, check);
  }
}

function send(worker: Worker, check: Check): void {
  if (worker.isConnected()) worker.send({ type: 'tollgate:health', upstream: check.upstream, origin: check.origin, healthy: check.healthy } satisfies HealthMessage);
}
