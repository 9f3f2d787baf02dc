import type { PluginInstance } from '../plugin.ts';
import type { Duration } from './duration.ts';

export type { Duration };

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

/**
 * What `gateway.config.ts` exports (through `defineConfig`). `Upstreams` is the union of the
 * upstream names, so a route naming an upstream that does not exist is a type error.
 */
export interface GatewayConfig<Upstreams extends string = string> {
  listen?: {
    /** Default 8080; 0 picks a free port (printed on start). */
    port?: number;
    /** Default `0.0.0.0`. */
    host?: string;
  };
  /** Cluster workers: a number, or `'auto'` (default) for one per core. */
  workers?: number | 'auto';
  /**
   * How connections reach workers: `'os'` (default; every worker accepts on the shared socket and the
   * kernel spreads connections) or `'round-robin'` (the primary accepts each connection and passes it
   * to the next worker: strictly even, but one IPC hop per connection). docs/benchmarks.md has the
   * measurement behind the default.
   */
  scheduling?: 'round-robin' | 'os';
  /**
   * The header that tells upstreams who the consumer is (its id), set after authentication. Copies
   * sent by clients are always removed, on every route, so it cannot be spoofed. Default
   * `'x-consumer-id'`.
   */
  consumerHeader?: string;
  /** Peers (IPs or CIDR blocks) whose `X-Forwarded-*` headers are believed and extended. Default none. */
  trustProxy?: string[];
  /**
   * Serve HTTPS instead of plain HTTP: TLS 1.2+ and, by default, HTTP/2 for clients that offer it
   * (ALPN), HTTP/1.1 for the others. The files are read when a worker starts, so a reload picks up
   * renewed certificates. Paths are relative to the config file.
   */
  tls?: {
    /** PEM certificate chain file. */
    cert: string;
    /** PEM private key file. */
    key: string;
    /** Default `'TLSv1.2'`. */
    minVersion?: 'TLSv1.2' | 'TLSv1.3';
    /** Offer HTTP/2 through ALPN. Default true. */
    http2?: boolean;
  };
  /**
   * The admin listener, served by the primary: `/healthz`, `/readyz`, `/status` and `POST /reload`.
   * Off unless configured; loopback by default.
   */
  admin?: {
    port: number;
    /** Default `127.0.0.1`. */
    host?: string;
    /** When set, `/status` and `/reload` require `Authorization: Bearer <token>` (probes do not). */
    token?: string;
  };
  /** Limits on client connections. */
  server?: {
    /** Time to receive the request headers. Default `'10s'`. */
    headersTimeout?: Duration;
    /** Time to receive the whole request. Default `'5m'`; 0 disables it (long uploads). */
    requestTimeout?: Duration;
    /** Idle time before a keep-alive connection is closed. Default `'5s'`. */
    keepAliveTimeout?: Duration;
    /** Largest request head (request line and headers) in bytes; past it, 431. Default 16384. */
    maxHeaderSize?: number;
    /** Most header fields in one request; past it, 431. Default 100 (Envoy's default). */
    maxHeaderCount?: number;
    /** Longest request target (path and query) in bytes; past it, 414. Default 8192. */
    maxUrlLength?: number;
    /**
     * Largest request body in bytes, counted as it streams: a declared `Content-Length` over it is
     * refused before anything is forwarded, a chunked body is cut when it passes it (413 either
     * way). Routes may set their own. Default 16 MiB.
     */
    maxBodySize?: number;
    /**
     * Request header names with `_`, which CGI-style upstreams read as `-` (so `X_Consumer_Id` would
     * pass for `X-Consumer-Id`): `'drop'` them (the default, as nginx does), `'reject'` the request
     * with 400, or `'keep'` them.
     */
    headersWithUnderscores?: 'drop' | 'reject' | 'keep';
    /** How unusual paths are treated before routing (docs/security.md#paths). */
    paths?: {
      /** `%2F`/`%5C` in the path: `'reject'` (400, the default) or `'keep'` (they stay encoded, inside one segment). */
      encodedSlashes?: 'reject' | 'keep';
      /** `;` in the path, which Java servers read as matrix parameters: `'reject'` (400, the default) or `'keep'`. */
      semicolons?: 'reject' | 'keep';
    };
  };
  /**
   * The Redis that plugins share (rate limits, the cache's shared tier): one connection per worker,
   * opened on first use. Give exactly one of `url`, `cluster` or `sentinel`.
   */
  redis?: RedisConfig;
  /** Traces over OTLP and Prometheus metrics; see docs/observability.md. */
  telemetry?: TelemetryConfig;
  /** The worker-thread pool that plugins move CPU-heavy work to (`gw.offload`); see docs/offload.md. */
  offload?: OffloadConfig;
  /**
   * The host-wide rate-limit store in the primary (`rateLimit` with the default `store: 'host'`).
   * `maxKeys` bounds its memory (~200 bytes a key); past it the least recently used keys are
   * forgotten and their clients start afresh. Default 1,000,000. Read at start, not on reload.
   */
  hostLimits?: { maxKeys?: number };
  shutdown?: {
    /** How long a worker waits for in-flight requests on SIGTERM before closing them. Default `'30s'`. */
    drainTimeout?: Duration;
  };
  log?: {
    /** Default `'info'`. */
    level?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    /** One structured line per request. Default true. */
    accessLog?: boolean;
  };
  /** Named upstreams that routes forward to. */
  upstreams: Record<Upstreams, UpstreamConfig>;
  /** Plugins that run for every request, before the route's own. */
  plugins?: PluginInstance[];
  routes: RouteConfig<NoInfer<Upstreams>>[];
}

export interface OffloadConfig {
  /**
   * Threads per cluster worker. Default `'auto'`: cores ÷ workers, at least 1, so that
   * workers × (1 event loop + threads) stays within about twice the cores.
   */
  threads?: number | 'auto';
  /**
   * Inputs smaller than this many bytes run inline on the event loop, because handing them to a
   * thread costs the event loop more than the work itself. Default 16384 (measured; docs/offload.md).
   */
  inlineBelow?: number;
  /** A task running longer is stopped (its thread is replaced) and the request answered 503. Default `'5s'`. */
  taskTimeout?: Duration;
  /** Tasks waiting for a thread, per worker, before new ones are refused with 503. Default 64. */
  maxQueue?: number;
  /**
   * How much lower (in `nice` steps, 0-19) the threads run than the event loop, so that when cores
   * are scarce the kernel runs the event loop first and long tasks take the leftovers. Default 10.
   */
  niceIncrement?: number;
}

export interface TelemetryConfig {
  /** `service.name` of the traces. Default: `OTEL_SERVICE_NAME`, else `'tollgate'`. */
  serviceName?: string;
  /** `service.version`. Default: tollgate's version. */
  serviceVersion?: string;
  /**
   * Tracing: one server span per request (named by the route), a client span per upstream call, and
   * a span per plugin hook that waited on I/O. `false` turns it off. On by default with `telemetry`.
   */
  tracing?:
    | false
    | {
        /**
         * Share of new traces recorded, 0 to 1; a request whose caller sent a sampled parent follows
         * its parent. Default: `OTEL_TRACES_SAMPLER`(`_ARG`), else 1.
         */
        sampleRatio?: number;
        /** Context formats read from requests and written upstream. Default `['tracecontext', 'baggage']`. */
        propagators?: ('tracecontext' | 'baggage' | 'b3' | 'b3multi')[];
        /** Also return the trace id to the client in this response header (e.g. `'x-trace-id'`). */
        responseHeader?: string;
      };
  /** Where spans go (OTLP over HTTP, protobuf). Default: the `OTEL_EXPORTER_OTLP_*` variables, else `http://localhost:4318`. */
  otlp?: {
    /** Base URL of the collector; `/v1/traces` is appended. */
    endpoint?: string;
    headers?: Record<string, string>;
    /**
     * OTLP encoding. Default: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, else `'http/protobuf'`.
     * `'http/json'` costs the worker less CPU per span.
     */
    protocol?: 'http/protobuf' | 'http/json';
  };
}

export interface RedisConfig {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url?: string;
  /** Redis Cluster: a few seed nodes (`host:port`); the rest are discovered. */
  cluster?: { nodes: string[] };
  /** Redis Sentinel: the sentinels (`host:port`) and the name of the master they watch. */
  sentinel?: { sentinels: string[]; name: string };
  /** Credentials for `cluster` and `sentinel` nodes (a `url` carries its own). */
  username?: string;
  password?: string;
  /** TLS to `cluster` and `sentinel` nodes (a `url` says so with `rediss://`). Default false. */
  tls?: boolean;
  /** Prepended to every key, so several gateways or tenants can share one Redis. Default `'tollgate:'`. */
  keyPrefix?: string;
  /**
   * The longest a request waits on one Redis command before the plugin's failure policy applies.
   * Default `'100ms'`.
   */
  commandTimeout?: Duration;
  /** Time to open a connection. Default `'2s'`. */
  connectTimeout?: Duration;
  /**
   * The admin listener's `/readyz` answers 503 while any worker cannot reach Redis (so a load
   * balancer sends traffic elsewhere). Default false: the plugins' failure policies cover an outage.
   */
  required?: boolean;
}

export interface UpstreamConfig {
  /**
   * Origins such as `http://127.0.0.1:3001`, optionally with a base path; `{ url, weight }` for a
   * target that should get `weight` times the share of the others.
   */
  targets: (string | { url: string; weight?: number })[];
  /**
   * How a target is chosen. `'round-robin'` (default; weighted when targets have weights),
   * `'least-outstanding'` (the target with the fewest requests in flight from this worker), or
   * `{ hash }`: the same key always goes to the same target while it is healthy (sticky sessions),
   * by client IP, consumer, a header or a cookie.
   */
  balance?: 'round-robin' | 'least-outstanding' | { hash: 'ip' | 'consumer' | { header: string } | { cookie: string } };
  /**
   * Passive health: a target that fails `failures` times in a row (refused, reset, timed out, or a
   * 502/503/504) is left out for `ejectFor`, then tried again. Defaults 5 and `'10s'`.
   */
  health?: {
    failures?: number;
    ejectFor?: Duration;
    /**
     * Active checks: the primary GETs `path` on every target each `interval` (once per host, not once
     * per worker); a target that fails `unhealthyThreshold` checks in a row (a status outside
     * 200-399, or no answer within `timeout`) gets no traffic until it passes `healthyThreshold`.
     */
    active?: { path: string; interval?: Duration; timeout?: Duration; healthyThreshold?: number; unhealthyThreshold?: number };
  };
  /**
   * Retries, to another target when there is one, only when no byte of the response reached the
   * client and the request body can be sent again. By default one retry of a failed connection or a
   * connection closed before the response, for idempotent methods; `statuses` adds 5xx answers to retry.
   * `budget` caps retries at that share of requests (0.2: at most one retry per five requests, plus
   * ten, per ten seconds), so retries cannot multiply an outage.
   */
  retries?: { attempts?: number; statuses?: number[]; methods?: HttpMethod[]; backoff?: Duration; budget?: number };
  /**
   * Circuit breaking, per worker: over `maxConcurrent` requests in flight, or with `maxPending`
   * requests already queued for a connection to the chosen target, answer 503 at once.
   */
  limits?: { maxConcurrent?: number; maxPending?: number };
  timeouts?: {
    /** Time to open a connection (504 when exceeded). Default `'5s'`. */
    connect?: Duration;
    /** Time from sending the request to the response headers (504). Default `'30s'`. */
    headers?: Duration;
    /** Longest silence while the response body streams. Default `'30s'`. */
    body?: Duration;
  };
  /** undici Pool settings, per target. */
  pool?: {
    /** Most connections per target. Default 128. */
    connections?: number;
    /** Requests in flight per connection. Default 1 (pipelining off). */
    pipelining?: number;
    /** Idle time before a pooled connection is closed. Default `'4s'`. */
    keepAliveTimeout?: Duration;
    /** Speak HTTP/2 to `https:` targets that offer it through ALPN (HTTP/1.1 otherwise). Default false. */
    http2?: boolean;
  };
  /** TLS to `https:` targets: a CA file to trust (path relative to the config), the name to verify. */
  tls?: { ca?: string; servername?: string; rejectUnauthorized?: boolean };
}

export interface RouteConfig<Upstreams extends string = string> {
  /** Shown in logs and errors; default `METHODS path`. */
  name?: string;
  /** `/exact`, `/orders/:id` (a segment parameter) or `/static/*` (everything below `/static/`, in `params['*']`). */
  path: string;
  /** Default: every method. */
  methods?: HttpMethod[];
  /** Match only this `Host` (port ignored); `*.example.com` matches one or more sub-domain labels. */
  host?: string;
  /** Name of an entry in `upstreams`. */
  upstream: Upstreams;
  /** Remove this prefix of the path before forwarding (`/api` turns `/api/orders` into `/orders`). */
  stripPrefix?: string;
  /** Path sent upstream, with `:params` and `*` from the match: `/v2/orders/:id`. Query is kept. */
  rewrite?: string;
  /** Send the client's `Host` upstream instead of the target's. Default false. */
  preserveHost?: boolean;
  /** Largest request body in bytes for this route, over `server.maxBodySize`. */
  maxBodySize?: number;
  /**
   * Override the upstream's `headers` and `body` timeouts for this route, and set `total`: the
   * longest the upstream exchange may take, retries included (504 if no response has started;
   * the connection is cut if one has).
   */
  timeouts?: { headers?: Duration; body?: Duration; total?: Duration };
  /** Plugins for this route, after the global ones. */
  plugins?: PluginInstance[];
}
