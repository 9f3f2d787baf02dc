import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { ParsedRedis } from '../config/schema.ts';
import type { RedisState } from '../cluster/messages.ts';
import { GatewayError } from '../errors.ts';
import { counter } from '../telemetry/metrics.ts';

export type RedisClient = Redis | Cluster;

type IORedis = { Redis: typeof Redis; Cluster: typeof Cluster };

const unavailable = counter('tollgate_redis_unavailable_total', 'Redis commands that failed, or were refused at once because Redis was known to be down.', []);

/** ioredis's words for "see the error before": they would hide the reason already known. */
const VAGUE_CLUSTER_ERROR = 'Failed to refresh slots cache.';
const VAGUE_NODE_ERROR = 'Connection is closed.';

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
  /** Where the config points, for messages: the URL without its password, or the seed nodes. */
  readonly #target: string;
  readonly #tls: boolean;
  #up: boolean | null = null;
  #problem: string | null = null;
  #closing = false;
  #openUntil = 0;
  #probing = false;
  #diagnosing = false;

  /** Connects in the background; ioredis is loaded here, so a gateway without Redis never loads it. */
  static async connect(config: ParsedRedis, logger: Logger): Promise<RedisConnection> {
    const { Redis, Cluster } = await import('ioredis');
    return new RedisConnection(config, logger, { Redis, Cluster });
  }

  private constructor(config: ParsedRedis, logger: Logger, ioredis: IORedis) {
    this.#logger = logger.child({ component: 'redis' });
    const tls = tlsOf(config);
    this.client = createClient(config, tls, ioredis);
    this.keyPrefix = config.keyPrefix;
    this.#target = describeTarget(config);
    this.#tls = tls !== undefined;
    this.client.on('ready', () => this.#transition(true, null));
    this.client.on('error', (error: Error) => {
      // A cluster's own error only says that no node gave it the slots; its nodes' errors say why
      // when they answered, and a connection to each seed says why when none did.
      if (error.message === VAGUE_CLUSTER_ERROR && config.cluster) {
        if (this.#problem === null || this.#problem === VAGUE_CLUSTER_ERROR) this.#diagnoseSeeds(config.cluster.nodes, config.connectTimeout, error);
        return;
      }
      this.#transition(false, error);
    });
    this.client.on('node error', (error: Error, node: string) => {
      if (error.message === VAGUE_NODE_ERROR) return; // follows the error that closed it
      this.#transition(false, Object.assign(new Error(`${node}: ${error.message}`), { code: (error as NodeJS.ErrnoException).code }));
    });
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

  /** Connects to each seed (TCP only) and reports the first that fails, or `error` if none does. */
  #diagnoseSeeds(seeds: readonly string[], timeoutMs: number, error: Error): void {
    if (this.#diagnosing) return;
    this.#diagnosing = true;
    void Promise.all(seeds.map((seed) => tryConnect(hostAndPort(seed), timeoutMs).then((failure) => failure && Object.assign(new Error(`${seed}: ${failure.message}`), { code: failure.code }))))
      .then((failures) => this.#transition(false, failures.find((failure) => failure !== null) ?? error))
      .finally(() => (this.#diagnosing = false));
  }

  #circuitOpen(): boolean {
    return this.#openUntil !== 0;
  }

  #unavailable(why: string, cause?: unknown): GatewayError {
    unavailable.inc();
    return new GatewayError('TG_ERR_REDIS_UNAVAILABLE', undefined, { cause, logDetail: `redis: ${why}` });
  }

  #transition(up: boolean, error: Error | null): void {
    if (this.#closing) return;
    if (this.#up === up) {
      // Still down, but now with a reason (a lost connection says none until a reconnect fails):
      // /readyz shows the latest one; the log already said Redis is down.
      const problem = !up && error !== null ? explain(error, this.#tls) : null;
      if (problem !== null && problem !== this.#problem) this.#report(false, problem);
      return;
    }
    const first = this.#up === null;
    // A connection that never opened says why in the error that follows its close.
    if (first && !up && error === null) return;
    this.#up = up;
    const problem = up ? null : error === null ? 'the connection was lost' : explain(error, this.#tls);
    this.#report(up, problem);
    if (up) this.#logger.info({ redis: this.#target }, first ? `redis connected: ${this.#target}` : `redis is back: ${this.#target}`);
    else this.#logger.warn({ err: error ?? undefined, redis: this.#target }, `redis unavailable (${this.#target}): ${problem}; plugins apply their failure policy until it is back`);
  }

  /** Tells the primary, whose /status shows it (and /readyz, when the config requires Redis). */
  #report(up: boolean, problem: string | null): void {
    this.#problem = problem;
    const state: RedisState = { type: 'tollgate:redis', up, ...(problem === null ? {} : { problem: `${this.#target}: ${problem}` }) };
    if (process.connected && process.send) process.send(state);
  }
}

/** The config's Redis as an operator would name it, with no password in it. */
function describeTarget(config: ParsedRedis): string {
  if (config.url) {
    const url = new URL(config.url);
    if (url.password) url.password = '***';
    return url.toString();
  }
  if (config.sentinel) return `sentinel master "${config.sentinel.name}" via ${config.sentinel.sentinels.join(', ')}`;
  return `cluster seeds ${config.cluster!.nodes.join(', ')}`;
}

/** A connection error, with what usually causes it where the message alone does not say. */
function explain(error: Error, tls: boolean): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error.message;
  const hint =
    code === 'ECONNREFUSED' ? 'nothing listens there'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'the host name does not resolve'
    : code === 'ETIMEDOUT' && tls ? 'no answer in time; with TLS on, check that the server speaks TLS on that port'
    : code === 'ETIMEDOUT' ? 'no answer in time (connectTimeout)'
    : /^NOAUTH/.test(message) ? 'Redis wants a password: set redis.password, or put it in the URL'
    : /^WRONGPASS/.test(message) ? 'check redis.username and redis.password'
    : /cluster support disabled/i.test(message) ? 'this Redis is not a cluster: give it as redis.url'
    : /CERT|certificate|self[- ]signed/i.test(message) ? "the server's certificate is not trusted: give its CA as redis.tls.ca"
    : /wrong version number|packet length too long/i.test(message) ? 'the server does not speak TLS on that port'
    : null;
  // NOAUTH's own message runs to a paragraph about HELLO.
  const short = /^NOAUTH/.test(message) ? 'NOAUTH authentication required' : message;
  return hint === null ? short : `${short} (${hint})`;
}

function createClient(config: ParsedRedis, tls: ConnectionOptions | undefined, { Redis, Cluster }: IORedis): RedisClient {
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
  // Explicit options win over the URL's (ioredis fills in from the URL only what is unset).
  const auth: RedisOptions = {
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(tls === undefined ? {} : { tls }),
  };
  if (config.url) return new Redis(config.url, { ...common, ...auth });
  if (config.sentinel) {
    return new Redis({
      ...common,
      ...auth,
      sentinelUsername: config.username,
      sentinelPassword: config.password,
      sentinels: config.sentinel.sentinels.map(hostAndPort),
      name: config.sentinel.name,
      // ioredis takes `tls` alone for the sentinels' answer only: without these the master it
      // names is reached in plain TCP, and the sentinels too.
      ...(tls === undefined ? {} : { sentinelTLS: tls, enableTLSForSentinelMode: true }),
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

/** TLS options, when the config asks for TLS (`tls`, or a `rediss://` URL): the CA file is read here. */
function tlsOf(config: ParsedRedis): ConnectionOptions | undefined {
  const wanted = config.tls !== false || config.url?.startsWith('rediss:') === true;
  if (!wanted) return undefined;
  if (typeof config.tls !== 'object') return {};
  return {
    ...(config.tls.ca === undefined ? {} : { ca: readFileSync(config.tls.ca) }),
    ...(config.tls.servername === undefined ? {} : { servername: config.tls.servername }),
    rejectUnauthorized: config.tls.rejectUnauthorized,
  };
}

/** Resolves with the error of a TCP connection to `address`, or null once one opens. */
function tryConnect(address: { host: string; port: number }, timeoutMs: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const socket = connect(address);
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve(null);
    });
    socket.once('error', resolve);
  });
}

function hostAndPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at), port: Number(value.slice(at + 1)) };
}
