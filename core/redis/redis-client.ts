import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { ParsedRedis } from '../config/schema.ts';
import { GatewayError } from '../errors.ts';
import { counter } from '../telemetry/metrics.ts';

export type RedisClient = Redis | Cluster;

type IORedis = { Redis: typeof Redis; Cluster: typeof Cluster };

const unavailable = counter('tollgate_redis_unavailable_total', 'Redis commands that failed, or were refused at once because Redis was known to be down.', []);

/** How long a Redis that failed a command is left alone before one request tries it again. */
const COOLDOWN_MS = 1_000;

/**
 * The worker's one Redis connection (standalone, Sentinel or Cluster), shared by every plugin.
 *
 * Built to fail fast rather than to wait: no offline queue (a command sent while disconnected fails
 * at once instead of piling up), a short command timeout, no retries per command, and a circuit: after
 * a failed command Redis is not asked again for a second, then one request probes it while the rest
 * still get the fast failure. A dead or frozen Redis thus costs at most one timeout per second, not
 * one per request. Callers own the failure policy; this class reconnects forever in the background
 * and logs each change of state once.
 */
export class RedisConnection {
  readonly client: RedisClient;
  /** Prepended to every key by ioredis (not to channel names, nor to SCAN patterns). */
  readonly keyPrefix: string;
  readonly #logger: Logger;
  #up: boolean | null = null;
  #closing = false;
  #openUntil = 0;
  #probing = false;

  /** Connects in the background; ioredis is loaded here, so a gateway without Redis never loads it. */
  static async connect(config: ParsedRedis, logger: Logger): Promise<RedisConnection> {
    const { Redis, Cluster } = await import('ioredis');
    return new RedisConnection(config, logger, { Redis, Cluster });
  }

  private constructor(config: ParsedRedis, logger: Logger, ioredis: IORedis) {
    this.#logger = logger.child({ component: 'redis' });
    this.client = createClient(config, ioredis);
    this.keyPrefix = config.keyPrefix;
    this.client.on('ready', () => this.#transition(true, null));
    this.client.on('error', (error: Error) => this.#transition(false, error));
    // 'close' (a lost connection) comes before any reconnect attempt fails: a Redis that restarts
    // quickly never produces an 'error', and its outage must still be logged, and its return.
    this.client.on('close', () => this.#transition(false, null));
  }

  /** Resolves once connected, or after `timeoutMs` (it never rejects: Redis may come later). */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.client.off('ready', done);
        this.client.off('error', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.client.once('ready', done);
      this.client.once('error', done);
    });
  }

  /**
   * Runs `command` against Redis, or throws `TG_ERR_REDIS_UNAVAILABLE` at once when Redis is known to
   * be down. A command that fails opens the circuit.
   */
  async run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    let probe = false;
    if (this.client.status !== 'ready') throw this.#unavailable('not connected');
    if (this.#circuitOpen()) {
      if (this.#probing || Date.now() < this.#openUntil) throw this.#unavailable('recent commands failed');
      probe = this.#probing = true;
    }
    try {
      const result = await command(this.client);
      if (probe) {
        this.#openUntil = 0;
        this.#transition(true, null);
      }
      return result;
    } catch (error) {
      this.#openUntil = Date.now() + COOLDOWN_MS;
      this.#transition(false, error as Error);
      throw this.#unavailable((error as Error).message, error);
    } finally {
      if (probe) this.#probing = false;
    }
  }

  /**
   * Whether a command now would be refused at once (not connected, or failing recently and not yet
   * due for a probe); counted as a refused command when it would. A hot path asks this first
   * instead of paying, per request, for a command that fails and the error that says so.
   */
  refusesNow(): boolean {
    const refuses = this.client.status !== 'ready' || (this.#circuitOpen() && (this.#probing || Date.now() < this.#openUntil));
    if (refuses) unavailable.inc();
    return refuses;
  }

  /** Sends QUIT, or drops the connection if Redis does not answer within `deadlineMs`. */
  async close(deadlineMs = 1_000): Promise<void> {
    this.#closing = true;
    const timer = setTimeout(() => this.client.disconnect(), deadlineMs);
    try {
      if (this.client.status === 'ready') await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    } finally {
      clearTimeout(timer);
    }
  }

  #circuitOpen(): boolean {
    return this.#openUntil !== 0;
  }

  #unavailable(why: string, cause?: unknown): GatewayError {
    unavailable.inc();
    return new GatewayError('TG_ERR_REDIS_UNAVAILABLE', undefined, { cause, logDetail: `redis: ${why}` });
  }

  #transition(up: boolean, error: Error | null): void {
    if (this.#up === up || this.#closing) return;
    const first = this.#up === null;
    this.#up = up;
    // The primary's /readyz reports Redis when the config says it is required.
    if (process.connected && process.send) process.send({ type: 'tollgate:redis', up });
    if (up) this.#logger.info(first ? 'redis connected' : 'redis is back');
    else this.#logger.warn({ err: error ?? undefined }, `redis unavailable${error ? `: ${error.message}` : ''}; plugins apply their failure policy until it is back`);
  }
}

function createClient(config: ParsedRedis, { Redis, Cluster }: IORedis): RedisClient {
  const common: RedisOptions = {
    keyPrefix: config.keyPrefix,
    commandTimeout: config.commandTimeout,
    connectTimeout: config.connectTimeout,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    // Reconnect forever, a little slower each time, so a Redis that comes back is used again.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
  const auth = { username: config.username, password: config.password, ...(config.tls ? { tls: {} } : {}) };
  if (config.url) return new Redis(config.url, common);
  if (config.sentinel) {
    return new Redis({
      ...common,
      ...auth,
      sentinelUsername: config.username,
      sentinelPassword: config.password,
      sentinels: config.sentinel.sentinels.map(hostAndPort),
      name: config.sentinel.name,
    });
  }
  const { keyPrefix, enableAutoPipelining, retryStrategy, enableOfflineQueue, ...nodeOptions } = common;
  const clusterOptions: ClusterOptions = {
    keyPrefix,
    enableAutoPipelining,
    enableOfflineQueue,
    clusterRetryStrategy: retryStrategy as ClusterOptions['clusterRetryStrategy'],
    redisOptions: { ...nodeOptions, ...auth },
  };
  return new Cluster(config.cluster!.nodes.map(hostAndPort), clusterOptions);
}

function hostAndPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at), port: Number(value.slice(at + 1)) };
}
