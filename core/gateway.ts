import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Chain, ChainLink } from './chain.ts';
import { RequestSlot, type MatchedRoute } from './context.ts';
import type { ResolvedConfig, ResolvedPlugin } from './config/validate.ts';
import { GatewayError } from './errors.ts';
import { handleRequest } from './http/handler.ts';
import { handleUpgrade } from './http/upgrade.ts';
import type { Duplex } from 'node:stream';
import type { UpstreamHeaderOptions } from './http/proxy-headers.ts';
import { TrustedProxies } from './http/trusted-proxies.ts';
import type { CacheServices, GatewayServices, PluginHooks, PluginInstance } from './plugin.ts';
import { RedisConnection } from './redis/redis-client.ts';
import { Router } from './router.ts';
import { trace } from '@opentelemetry/api';
import { GatewayMetrics, pluginMetrics, startMetricsExport } from './telemetry/metrics.ts';
import type { MetricsExport } from './telemetry/metrics-export.ts';
import { Tracing } from './telemetry/tracing.ts';
import { compilePathRewrite, type PathRewrite } from './upstream/path-rewrite.ts';
import { Upstream } from './upstream/upstream.ts';
import { OffloadPool } from './offload/offload-pool.ts';
import { purgeCaches } from './cache/purge.ts';

/** A route ready to serve: its chain, upstream and path rewrite resolved once. */
export interface CompiledRoute {
  readonly info: MatchedRoute;
  readonly chain: Chain;
  readonly upstream: Upstream;
  readonly preserveHost: boolean;
  readonly rewritePath: PathRewrite;
  /** Where the authenticated consumer's id goes upstream. */
  readonly consumerHeader: string;
  /** The route's own timeouts, over the upstream's. */
  readonly timeouts: { headers?: number | undefined; body?: number | undefined; total?: number | undefined };
  /** Largest request body in bytes, counted as it streams. */
  readonly maxBodySize: number;
}

export interface GatewayOptions {
  logger: Logger;
  workerId: number;
  /** Cluster workers on this host, for sizing the offload pool. Default 1. */
  workerCount?: number;
}

/**
 * Everything one worker needs to serve requests: routes, chains, upstream pools, plugin state. It
 * knows nothing of sockets or cluster, so it can be driven by any `http.Server`.
 */
export class Gateway {
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly router: Router<CompiledRoute>;
  readonly globalChain: Chain;
  readonly trusted: TrustedProxies;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  /** How clients reach this gateway, for `X-Forwarded-Proto`. */
  readonly protocol: 'http' | 'https';
  /** How requests' upstream headers are built (made once: the handler would otherwise make it per request). */
  readonly upstreamHeaders: UpstreamHeaderOptions;
  /** Requests being served right now. */
  inflight = 0;
  /** Once set, responses carry `Connection: close` and the worker exits when inflight reaches 0. */
  draining = false;
  #onIdle: (() => void) | null = null;
  readonly #hooks: ReadonlyMap<PluginInstance, PluginHooks>;
  /** The worker's Redis connection, when the config has `redis`. */
  readonly redis: RedisConnection | null;
  /** The worker's OpenTelemetry tracing, when the config has `telemetry`. */
  readonly tracing: Tracing | null;
  /** Request metrics, recorded when there is an admin listener to serve them or an OTLP export of them. */
  readonly metrics: GatewayMetrics | null;
  /** The worker's thread pool; it starts threads only once a plugin loads a task. */
  readonly offload: OffloadPool;
  /** The OTLP export of the worker's metrics, when `telemetry.metrics` asks for it. */
  readonly #metricsExport: MetricsExport | null;

  private constructor(
    config: ResolvedConfig,
    logger: Logger,
    hooks: ReadonlyMap<PluginInstance, PluginHooks>,
    redis: RedisConnection | null,
    tracing: Tracing | null,
    offload: OffloadPool,
    metricsExport: MetricsExport | null,
  ) {
    this.config = config;
    this.#metricsExport = metricsExport;
    this.offload = offload;
    this.logger = logger;
    this.#hooks = hooks;
    this.redis = redis;
    this.tracing = tracing;
    this.metrics = config.admin || config.telemetry?.metrics ? new GatewayMetrics() : null;
    this.trusted = new TrustedProxies(config.trustProxy);
    this.protocol = config.tls ? 'https' : 'http';
    this.upstreamHeaders = {
      trusted: this.trusted,
      consumerHeader: config.consumerHeader,
      protocol: this.protocol,
      dropUnderscores: config.server.headersWithUnderscores === 'drop',
    };
    this.upstreams = new Map(Object.entries(config.upstreams).map(([name, upstream]) => [name, new Upstream(name, upstream, logger)]));
    this.globalChain = this.#chainOf(config.plugins);
    this.router = new Router(
      config.routes.map((route) => ({
        pattern: route.path,
        methods: route.methods,
        host: route.host,
        value: {
          info: Object.freeze({ name: route.name, pattern: route.path, upstream: route.upstream }),
          chain: [...this.globalChain, ...this.#chainOf(route.plugins)],
          upstream: this.upstreams.get(route.upstream)!,
          preserveHost: route.preserveHost,
          rewritePath: compilePathRewrite(route),
          consumerHeader: config.consumerHeader,
          timeouts: route.timeouts,
          maxBodySize: route.maxBodySize ?? config.server.maxBodySize,
        },
      })),
    );
  }

  /** Runs every plugin's `setup` (once per plugin instance) and builds the routes. */
  static async create(config: ResolvedConfig, options: GatewayOptions): Promise<Gateway> {
    const hooks = new Map<PluginInstance, PluginHooks>();
    // Started before any plugin, so that a plugin may use the OpenTelemetry API in setup.
    const tracing = config.telemetry ? await Tracing.start(config.telemetry, options.workerId, options.logger) : null;
    const metricsExport = config.telemetry?.metrics ? await startMetricsExport(config.telemetry, config.telemetry.metrics.exportIntervalMs, options.workerId, options.logger) : null;
    // Plugins set up against a connected Redis when there is one; an unreachable Redis is not a
    // reason to refuse to start (each plugin's failure policy covers it), so this waits only briefly.
    const redis = config.redis ? await RedisConnection.connect(config.redis, options.logger) : null;
    await redis?.whenReady(config.redis!.connectTimeout);
    const offload = new OffloadPool(config.offload, options.workerCount ?? 1);
    let slots = 0;
    const services = { workerId: options.workerId, redis, offload, requestSlot: <T>() => new RequestSlot<T>(slots++) };
    const all = [...config.plugins, ...config.routes.flatMap((route) => route.plugins)];
    try {
      for (const resolved of all) {
        if (hooks.has(resolved.instance)) continue;
        hooks.set(resolved.instance, await setupPlugin(resolved, options.logger, services));
      }
    } catch (error) {
      await offload.close();
      await redis?.close();
      await Promise.all([tracing?.shutdown(), metricsExport?.shutdown()]);
      throw error;
    }
    return new Gateway(config, options.logger, hooks, redis, tracing, offload, metricsExport);
  }

  /** The `http.Server` request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    handleRequest(this, req, res);
  };

  /** The listener's `upgrade` handler: WebSocket proxying through the route's chain. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, track: (socket: Duplex) => void): void => {
    handleUpgrade(this, req, socket, head, track);
  };

  /** Called by the handler when a request is done. */
  requestDone(): void {
    this.inflight--;
    if (this.inflight === 0 && this.#onIdle) this.#onIdle();
  }

  /** Marks the gateway draining; resolves once no request is in flight. */
  drain(): Promise<void> {
    this.draining = true;
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
    });
  }

  /** Closes plugins (`close` hooks) and upstream pools. */
  async close(): Promise<void> {
    for (const [instance, hooks] of this.#hooks) {
      try {
        await hooks.close?.();
      } catch (error) {
        this.logger.error({ err: error, plugin: instance.plugin.name }, 'plugin close failed');
      }
    }
    await Promise.all([...this.upstreams.values()].map((upstream) => upstream.close()));
    await this.offload.close();
    await this.redis?.close();
    // Last: the spans of the requests just drained are flushed before the worker exits.
    await Promise.all([this.tracing?.shutdown(), this.#metricsExport?.shutdown()]);
  }

  #chainOf(plugins: readonly ResolvedPlugin[]): ChainLink[] {
    return plugins.map((resolved) => ({ name: resolved.plugin.name, hooks: this.#hooks.get(resolved.instance)! }));
  }
}

const CACHE_SERVICES: CacheServices = Object.freeze({ purge: purgeCaches });

async function setupPlugin(
  resolved: ResolvedPlugin,
  parentLogger: Logger,
  services: Omit<GatewayServices, 'logger' | 'tracer' | 'metrics' | 'cache'>,
): Promise<PluginHooks> {
  const logger = parentLogger.child({ plugin: resolved.plugin.name });
  let hooks: PluginHooks;
  try {
    hooks = await resolved.plugin.setup(resolved.options, {
      ...services,
      logger,
      tracer: trace.getTracer(resolved.plugin.name, resolved.plugin.version),
      metrics: pluginMetrics,
      cache: CACHE_SERVICES,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new GatewayError('TG_ERR_PLUGIN_SETUP', `${resolved.label}: setup failed: ${message}`, { cause: error });
  }
  if (typeof hooks !== 'object' || hooks === null) {
    throw new GatewayError('TG_ERR_PLUGIN_SETUP', `${resolved.label}: setup must return an object of hooks`);
  }
  return hooks;
}
