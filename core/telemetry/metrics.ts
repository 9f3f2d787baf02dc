import client from 'prom-client';
import type { Logger } from 'pino';
import type { ParsedTelemetry } from '../config/schema.ts';
import type { MetricsExport } from './metrics-export.ts';
import { TallyHistogram, type HistogramSeries } from './tally-histogram.ts';

// Buckets of the OpenTelemetry HTTP semantic conventions for request durations, in seconds.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** A counter in this process's registry, created on first use (plugins may ask for it many times). */
export function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
  const existing = client.register.getSingleMetric(name);
  if (existing) return existing as client.Counter<L>;
  return new client.Counter({ name, help, labelNames });
}

export function histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets = DURATION_BUCKETS): client.Histogram<L> {
  const existing = client.register.getSingleMetric(name);
  if (existing) return existing as client.Histogram<L>;
  return new client.Histogram({ name, help, labelNames, buckets });
}

/** Counts by label set, added to where a request passes; what `tallyCounter` returns. */
export interface Tally<L extends string> {
  /** The function that counts one for these labels: look it up once, call it per request. */
  for(labels: Readonly<Record<L, string>>): () => void;
}

const tallies = new Map<string, Tally<string>>();

/**
 * A counter for the request path. prom-client's `inc(labels)` hashes the labels on every call
 * (~110 ns); a tally's counting function adds one to a number, and the numbers are handed to
 * prom-client when it is scraped (or exported). Same name, same counter: plugins on many routes
 * share it.
 */
export function tallyCounter<L extends string>(name: string, help: string, labelNames: readonly L[]): Tally<L> {
  const existing = tallies.get(name);
  if (existing) return existing as Tally<L>;
  const counts = new Map<string, { labels: Readonly<Record<L, string>>; count: number }>();
  countedBy(name, help, labelNames, function () {
    for (const { labels, count } of counts.values()) this.inc(labels as Partial<Record<L, string>>, count);
  });
  const tally: Tally<L> = {
    for(labels) {
      const key = labelNames.map((label) => labels[label]).join('\u0000');
      let entry = counts.get(key);
      if (entry === undefined) counts.set(key, (entry = { labels: { ...labels }, count: 0 }));
      const counted = entry;
      return () => {
        counted.count++;
      };
    },
  };
  tallies.set(name, tally as Tally<string>);
  return tally;
}

/**
 * A gauge read when scraped: `collect` sets its value. The primary adds up the workers' values, so a
 * gauge of something each worker holds (cache bytes, say) reads as the host's total.
 */
export function gauge(name: string, help: string, collect: (this: client.Gauge) => void): client.Gauge {
  const existing = client.register.getSingleMetric(name);
  if (existing) return existing as client.Gauge;
  return new client.Gauge({ name, help, collect });
}

/** What a worker's span batchers have done with the gateway's spans since they started. */
export interface SpanCounts {
  readonly queued: number;
  readonly dropped: number;
  readonly exported: number;
  readonly failed: number;
}

const spanSources = new Set<() => SpanCounts>();

function totalSpans(field: keyof SpanCounts): number {
  let total = 0;
  for (const read of spanSources) total += read()[field];
  return total;
}

/**
 * Reports a span batcher's counts on each scrape, under the OpenTelemetry SDK's own metric names,
 * read when scraped so that recording a span costs no metric update. Returns the unregistration.
 */
export function countSpans(source: () => SpanCounts): () => void {
  if (spanSources.size === 0) {
    countedBy('otel_sdk_processor_span_processed_total', 'Spans the gateway recorded: queued for export, or dropped because the export queue was full (error_type="queue_full").', ['error_type'], function () {
      this.inc(totalSpans('queued'));
      this.inc({ error_type: 'queue_full' }, totalSpans('dropped'));
    });
    countedBy('otel_sdk_exporter_span_exported_total', 'Spans whose export finished: sent, or lost with a failed export (error_type="export_failed").', ['error_type'], function () {
      this.inc(totalSpans('exported'));
      this.inc({ error_type: 'export_failed' }, totalSpans('failed'));
    });
  }
  spanSources.add(source);
  return () => spanSources.delete(source);
}

/** A counter whose values `collect` sets, from counts kept elsewhere, each time it is read. */
function countedBy<L extends string>(name: string, help: string, labelNames: readonly L[], collect: (this: client.Counter<L>) => void): void {
  if (client.register.getSingleMetric(name)) return;
  new client.Counter<L>({
    name,
    help,
    labelNames,
    collect(this: client.Counter<L>) {
      this.reset();
      collect.call(this);
    },
  });
}

/** What plugins get as `gw.metrics`. */
export const pluginMetrics = {
  counter: <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => counter<L>(name, help, labelNames),
  histogram: <L extends string>(name: string, help: string, labelNames: readonly L[] = [], buckets?: number[]) => histogram<L>(name, help, labelNames, buckets),
};

/**
 * The worker's request metrics, in prom-client's global registry. The primary's `/metrics` asks every
 * worker for its registry over the cluster IPC channel and adds them up (prom-client's
 * AggregatorRegistry), so one scrape sees the whole host. Names follow the OpenTelemetry HTTP
 * conventions as Prometheus spells them.
 */
export class GatewayMetrics {
  readonly #requests = TallyHistogram.named(
    'http_server_request_duration_seconds',
    'Duration of HTTP server requests, from the request head to the end of the response.',
    ['http_request_method', 'http_route', 'http_response_status_code'],
    DURATION_BUCKETS,
  );
  readonly #upstream = TallyHistogram.named(
    'http_client_request_duration_seconds',
    'Time from sending a request upstream to the upstream response headers.',
    ['tollgate_upstream', 'http_response_status_code'],
    DURATION_BUCKETS,
  );
  /** Series by route, method and status: found by three lookups, with no key built per request. */
  readonly #requestSeries = new Map<string, Map<string, Map<number, HistogramSeries>>>();
  readonly #upstreamSeries = new Map<string, Map<number, HistogramSeries>>();

  constructor() {
    // Installs the worker's answer to the primary's metrics requests.
    new client.AggregatorRegistry();
  }

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    const byMethod = mapIn(this.#requestSeries, route);
    const byStatus = mapIn(byMethod, method);
    let series = byStatus.get(status);
    if (series === undefined) byStatus.set(status, (series = this.#requests.series({ http_request_method: method, http_route: route, http_response_status_code: status })));
    this.#requests.observe(series, seconds);
  }

  recordUpstream(upstream: string, status: number, seconds: number): void {
    const byStatus = mapIn(this.#upstreamSeries, upstream);
    let series = byStatus.get(status);
    if (series === undefined) byStatus.set(status, (series = this.#upstream.series({ tollgate_upstream: upstream, http_response_status_code: status })));
    this.#upstream.observe(series, seconds);
  }
}

function mapIn<K, V extends Map<unknown, unknown>>(outer: Map<K, V>, key: K): V {
  let inner = outer.get(key);
  if (inner === undefined) outer.set(key, (inner = new Map() as V));
  return inner;
}

/** The primary's side: aggregates the workers' registries and adds its own metrics. */
export class HostMetrics {
  readonly #aggregator = new client.AggregatorRegistry();
  /** The primary's own metrics (not the workers'): what its OTLP export reads. */
  readonly own = new client.Registry();
  readonly restarts = new client.Counter({
    name: 'tollgate_worker_restarts_total',
    help: 'Workers replaced after they died.',
    registers: [this.own],
  });
  readonly reloads = new client.Counter({
    name: 'tollgate_reloads_total',
    help: 'Reloads, by outcome.',
    labelNames: ['result'] as const,
    registers: [this.own],
  });
  #rateLimitKeys: () => number = () => 0;
  readonly #rateLimitKeysGauge: client.Gauge = new client.Gauge({
    name: 'tollgate_rate_limit_keys',
    help: 'Keys the host-wide rate-limit store holds (bounded by hostLimits.maxKeys).',
    registers: [this.own],
    collect: (): void => this.#rateLimitKeysGauge.set(this.#rateLimitKeys()),
  });

  /** Reports the host-wide rate-limit store's key count on each scrape. */
  watchRateLimitKeys(count: () => number): void {
    this.#rateLimitKeys = count;
  }

  get contentType(): string {
    return this.#aggregator.contentType;
  }

  async text(): Promise<string> {
    const [workers, own] = await Promise.all([this.#aggregator.clusterMetrics(), this.own.metrics()]);
    return `${workers}\n${own}`;
  }
}

/**
 * Starts the OTLP export of `registry` (a worker's, or the primary's own metrics with `workerId`
 * null). Loaded only when asked for: the metrics SDK and its exporters are not a cost of every process.
 */
export async function startMetricsExport(
  telemetry: ParsedTelemetry,
  intervalMs: number | undefined,
  workerId: number | null,
  logger: Logger,
  registry: client.Registry = client.register,
): Promise<MetricsExport> {
  const { MetricsExport } = await import('./metrics-export.ts');
  return MetricsExport.start(telemetry, intervalMs, workerId, logger, registry);
}
