import client from 'prom-client';

type Labels = Readonly<Record<string, string | number>>;

/** One label set of a tally histogram: counts per bucket (the last is +Inf), not cumulative. */
export interface HistogramSeries {
  readonly labels: Labels;
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** prom-client's JSON view of a metric (what `getMetricsAsJSON` gives and the aggregator adds up). */
interface MetricJson {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: { labels: Record<string, string | number>; value: number; metricName: string }[];
}

/**
 * A histogram for the request path, registered in prom-client's registry like its own. prom-client's
 * `observe(labels, value)` hashes the label set on every call; here the caller finds a series once
 * per label set (and keeps it), and `observe` adds to numbers. Scrapes, the cluster aggregator and
 * the OTLP export read it through `get()`, in the shape prom-client's histograms give.
 */
export class TallyHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #labelNames: readonly string[];
  readonly #series = new Map<string, HistogramSeries>();

  private constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#labelNames = labelNames;
    this.#bounds = bounds;
  }

  /** The histogram of that name in prom-client's registry, registered on first use. */
  static named(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]): TallyHistogram {
    const existing = client.register.getSingleMetric(name);
    if (existing instanceof TallyHistogram) return existing;
    if (existing !== undefined) throw new Error(`metric ${name} is already registered as a ${existing.constructor.name}`);
    const histogram = new TallyHistogram(name, help, labelNames, bounds);
    client.register.registerMetric(histogram as unknown as client.Metric);
    return histogram;
  }

  /** The series of a label set; look it up once per label set, not per observation. */
  series(labels: Labels): HistogramSeries {
    const key = this.#labelNames.map((name) => String(labels[name])).join('\u0000');
    let series = this.#series.get(key);
    if (series === undefined) this.#series.set(key, (series = { labels: { ...labels }, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 }));
    return series;
  }

  observe(series: HistogramSeries, value: number): void {
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    series.counts[bucket]!++;
    series.sum += value;
    series.count++;
  }

  async get(): Promise<MetricJson> {
    const values: MetricJson['values'] = [];
    const bucketName = `${this.name}_bucket`;
    for (const series of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += series.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]!, ...series.labels }, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: bucketName });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }

  reset(): void {
    this.#series.clear();
  }
}
