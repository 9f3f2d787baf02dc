import { z } from 'zod';
import { isPluginInstance, type PluginInstance } from '../plugin.ts';
import { validateProxyEntry } from '../http/trusted-proxies.ts';
import { HEADER_NAME } from '../http/header-map.ts';
import { durationSchema } from './duration-schema.ts';
import type { GatewayConfig } from './types.ts';

const duration = durationSchema;

const pluginInstance = z.custom<PluginInstance>(isPluginInstance, {
  message: 'expected a plugin: call its factory, e.g. myPlugin({ ... }), not the factory itself',
});

const targetUrl = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected an absolute http(s) URL, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `expected an http: or https: URL, got ${url.protocol}` });
    return z.NEVER;
  }
  if (url.search || url.hash || url.username) {
    ctx.addIssue({ code: 'custom', message: 'a target is an origin with an optional base path; no query, fragment or credentials' });
    return z.NEVER;
  }
  return { origin: url.origin, host: url.host, basePath: url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '') };
});

// A target is a URL, or `{ url, weight }` for weighted balancing.
const upstreamTarget = z.preprocess(
  (value) => (typeof value === 'string' ? { url: value } : value),
  z.strictObject({ url: targetUrl, weight: z.int().min(1).max(1000).default(1) }).transform(({ url, weight }) => ({ ...url, weight })),
);

const balance = z.union(
  [
    z.enum(['round-robin', 'least-outstanding']),
    z.strictObject({
      hash: z.union([z.enum(['ip', 'consumer']), z.strictObject({ header: z.string().min(1).toLowerCase() }), z.strictObject({ cookie: z.string().min(1) })]),
    }),
  ],
  { error: "expected 'round-robin', 'least-outstanding' or { hash: 'ip' | 'consumer' | { header } | { cookie } }" },
);

const upstream = z.strictObject({
  targets: z.array(upstreamTarget).min(1, 'an upstream needs at least one target'),
  balance: balance.default('round-robin'),
  health: z
    .strictObject({
      failures: z.int().min(1).default(5),
      ejectFor: duration.default(10_000),
      active: z
        .strictObject({
          path: z.string().startsWith('/', 'a health check path starts with "/"'),
          interval: duration.default(5_000),
          timeout: duration.default(2_000),
          healthyThreshold: z.int().min(1).default(2),
          unhealthyThreshold: z.int().min(1).default(2),
        })
        .optional(),
    })
    .prefault({}),
  retries: z
    .strictObject({
      attempts: z.int().min(0).max(5).default(1),
      statuses: z.array(z.int().min(500).max(599)).default([]),
      methods: z.array(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])).default(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']),
      backoff: duration.default(25),
      budget: z.number().min(0).max(1).default(0.2),
    })
    .prefault({}),
  limits: z.strictObject({ maxConcurrent: z.int().min(1).optional(), maxPending: z.int().min(0).optional() }).prefault({}),
  timeouts: z
    .strictObject({ connect: duration.default(5_000), headers: duration.default(30_000), body: duration.default(30_000) })
    .prefault({}),
  pool: z
    .strictObject({
      connections: z.int().min(1).default(128),
      pipelining: z.int().min(0).default(1),
      keepAliveTimeout: duration.default(4_000),
      http2: z.boolean().default(false),
    })
    .prefault({}),
  tls: z
    .strictObject({
      ca: z.string().min(1).optional(),
      servername: z.string().min(1).optional(),
      rejectUnauthorized: z.boolean().default(true),
    })
    .optional(),
});

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port');

const redis = z
  .strictObject({
    url: z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }).optional(),
    cluster: z.strictObject({ nodes: z.array(hostPort).min(1, 'a cluster needs at least one seed node') }).optional(),
    sentinel: z.strictObject({ sentinels: z.array(hostPort).min(1), name: z.string().min(1) }).optional(),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    tls: z
      .union([
        z.boolean(),
        z.strictObject({
          ca: z.string().min(1).optional(),
          servername: z.string().min(1).optional(),
          rejectUnauthorized: z.boolean().default(true),
        }),
      ])
      .default(false),
    keyPrefix: z.string().regex(/^[^{}]*$/, 'a key prefix cannot hold { or } (they would break Redis Cluster hash tags)').default('tollgate:'),
    commandTimeout: duration.default(100),
    connectTimeout: duration.default(2_000),
    required: z.boolean().default(false),
  })
  .refine((value) => [value.url, value.cluster, value.sentinel].filter(Boolean).length === 1, {
    message: 'give exactly one of redis.url, redis.cluster or redis.sentinel',
  });

const telemetry = z.strictObject({
  serviceName: z.string().min(1).optional(),
  serviceVersion: z.string().min(1).optional(),
  tracing: z
    .union([
      z.literal(false),
      z.strictObject({
        sampleRatio: z.number().min(0).max(1).optional(),
        propagators: z.array(z.enum(['tracecontext', 'baggage', 'b3', 'b3multi'])).default(['tracecontext', 'baggage']),
        responseHeader: z.string().regex(HEADER_NAME, 'expected a header name').toLowerCase().optional(),
      }),
    ])
    .default({ propagators: ['tracecontext', 'baggage'] }),
  /** OTLP export of the metrics `/metrics` shows, from each worker; off unless set. */
  metrics: z
    .union([
      z.literal(false),
      z.strictObject({
        exportIntervalMs: z.number().int().min(100).optional(),
      }),
    ])
    .default(false),
  otlp: z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
      headers: z.record(z.string(), z.string()).optional(),
      protocol: z.enum(['http/protobuf', 'http/json']).optional(),
    })
    .prefault({}),
});

const method = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

const route = z.strictObject({
  name: z.string().min(1).optional(),
  path: z.string().startsWith('/', 'a route path starts with "/"'),
  methods: z.array(method).min(1).optional(),
  host: z.string().min(1).toLowerCase().optional(),
  upstream: z.string().min(1),
  stripPrefix: z.string().startsWith('/').optional(),
  rewrite: z.string().startsWith('/').optional(),
  preserveHost: z.boolean().default(false),
  maxBodySize: z.int().min(0).optional(),
  timeouts: z.strictObject({ headers: duration.optional(), body: duration.optional(), total: duration.optional() }).default({}),
  plugins: z.array(pluginInstance).default([]),
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({ port: z.int().min(0).max(65535).default(8080), host: z.string().min(1).default('0.0.0.0') })
    .prefault({}),
  workers: z
    .union([z.literal('auto'), z.int().min(1).max(1024)], { error: 'expected "auto" or a whole number of workers (1-1024)' })
    .default('auto'),
  scheduling: z.enum(['round-robin', 'os']).default('os'),
  consumerHeader: z
    .string()
    .regex(HEADER_NAME, 'expected a header name')
    .toLowerCase()
    .default('x-consumer-id'),
  trustProxy: z
    .array(
      z.string().check((ctx) => {
        const problem = validateProxyEntry(ctx.value);
        if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
      }),
    )
    .default([]),
  tls: z
    .strictObject({
      cert: z.string().min(1),
      key: z.string().min(1),
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      http2: z.boolean().default(true),
    })
    .optional(),
  admin: z
    .strictObject({
      port: z.int().min(0).max(65535),
      host: z.string().min(1).default('127.0.0.1'),
      token: z.string().min(16, 'an admin token needs at least 16 characters').optional(),
    })
    .optional(),
  server: z
    .strictObject({
      headersTimeout: duration.default(10_000),
      requestTimeout: duration.default(300_000),
      keepAliveTimeout: duration.default(5_000),
      maxHeaderSize: z.int().min(1024).default(16_384),
      maxHeaderCount: z.int().min(1).max(10_000).default(100),
      maxUrlLength: z.int().min(64).default(8_192),
      maxBodySize: z.int().min(0).default(16 * 1024 * 1024),
      headersWithUnderscores: z.enum(['drop', 'reject', 'keep']).default('drop'),
      paths: z
        .strictObject({ encodedSlashes: z.enum(['reject', 'keep']).default('reject'), semicolons: z.enum(['reject', 'keep']).default('reject') })
        .prefault({}),
    })
    .prefault({}),
  redis: redis.optional(),
  telemetry: telemetry.optional(),
  offload: z
    .strictObject({
      threads: z.union([z.literal('auto'), z.int().min(1).max(256)], { error: 'expected "auto" or a whole number of threads (1-256)' }).default('auto'),
      inlineBelow: z.int().min(0).default(16_384),
      taskTimeout: duration.default(5_000),
      maxQueue: z.int().min(0).default(64),
      niceIncrement: z.int().min(0).max(19).default(10),
    })
    .prefault({}),
  shutdown: z.strictObject({ drainTimeout: duration.default(30_000) }).prefault({}),
  hostLimits: z.strictObject({ maxKeys: z.int().min(1).default(1_000_000) }).prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      accessLog: z.boolean().default(true),
    })
    .prefault({}),
  upstreams: z.record(z.string().min(1), upstream),
  plugins: z.array(pluginInstance).default([]),
  routes: z.array(route).min(1, 'a gateway needs at least one route'),
});

/** The config after defaults and validation: durations in milliseconds, targets parsed. */
export type ParsedConfig = z.output<typeof configSchema>;
export type ParsedRoute = ParsedConfig['routes'][number];
export type ParsedUpstream = ParsedConfig['upstreams'][string];
export type ParsedRedis = NonNullable<ParsedConfig['redis']>;
export type ParsedTelemetry = NonNullable<ParsedConfig['telemetry']>;
export type ParsedOffload = ParsedConfig['offload'];

// The hand-written GatewayConfig is what users read; this keeps the schema from drifting away from it.
type Assert<T extends true> = T;
export type SchemaAcceptsDocumentedConfig = Assert<GatewayConfig extends z.input<typeof configSchema> ? true : false>;
