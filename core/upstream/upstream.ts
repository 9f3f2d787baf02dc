import { Pool } from 'undici';
import type { ParsedUpstream } from '../config/schema.ts';

export interface UpstreamTarget {
  /** `http://127.0.0.1:3001` */
  readonly origin: string;
  /** `127.0.0.1:3001`, sent as `Host` unless the route preserves the client's. */
  readonly host: string;
  /** Prefixed to every forwarded path; `''` for none. */
  readonly basePath: string;
  readonly pool: Pool;
}

/** A named upstream: one undici Pool per target, chosen in round-robin. */
export class Upstream {
  readonly name: string;
  readonly targets: readonly UpstreamTarget[];
  #next = 0;

  constructor(name: string, config: ParsedUpstream) {
    this.name = name;
    this.targets = config.targets.map((target) => ({
      ...target,
      pool: new Pool(target.origin, {
        connections: config.pool.connections,
        pipelining: config.pool.pipelining,
        keepAliveTimeout: config.pool.keepAliveTimeout,
        connectTimeout: config.timeouts.connect,
        headersTimeout: config.timeouts.headers,
        bodyTimeout: config.timeouts.body,
      }),
    }));
  }

  pick(): UpstreamTarget {
    const target = this.targets[this.#next]!;
    this.#next = this.#next + 1 === this.targets.length ? 0 : this.#next + 1;
    return target;
  }

  async close(): Promise<void> {
    await Promise.all(this.targets.map((target) => target.pool.close()));
  }
}
