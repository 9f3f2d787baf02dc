import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { ExportResultCode } from '@opentelemetry/core';
import type { Logger } from 'pino';
import type { GatewaySpan, SpanSink } from './gateway-span.ts';
import { countSpans, type SpanCounts } from './metrics.ts';
import type { SpanBatch } from './otlp-encoding.ts';

/** The batch span processor's settings, with its defaults and its `OTEL_BSP_*` variables. */
export interface BatchOptions {
  /** Spans held (encoded or being exported) before new ones are dropped. */
  readonly maxQueueSize: number;
  /** Spans per export request; a full batch is exported at once. */
  readonly maxExportBatchSize: number;
  /** Longest wait before a partial batch is exported. */
  readonly scheduledDelayMillis: number;
}

export interface ExporterOptions {
  readonly url?: string;
  readonly headers?: Record<string, string>;
}

interface EncodedBatch {
  readonly bytes: Uint8Array;
  readonly count: number;
}

const WARN_EVERY_MS = 10_000;

/**
 * The export side of the gateway's own spans: each span is encoded into the open batch as it ends,
 * and a batch leaves when it is full or `scheduledDelayMillis` after its first span. Sending goes
 * through the OTLP exporter's own HTTP delegate (endpoint, headers, timeout, compression and retries,
 * with their `OTEL_EXPORTER_OTLP_*` variables), handed bytes instead of SDK spans.
 */
export class SpanBatcher implements SpanSink {
  readonly #batch: SpanBatch;
  readonly #options: BatchOptions;
  readonly #delegate: IOtlpExportDelegate<EncodedBatch>;
  readonly #logger: Logger;
  #inFlight = 0;
  #timer: NodeJS.Timeout | null = null;
  #queued = 0;
  #dropped = 0;
  #exported = 0;
  #failed = 0;
  readonly #stopCounting: () => void;
  #lastWarning = 0;

  constructor(batch: SpanBatch, options: BatchOptions, exporter: ExporterOptions, logger: Logger) {
    this.#batch = batch;
    this.#options = options;
    this.#logger = logger;
    const http = convertLegacyHttpOptions({ ...exporter }, 'TRACES', 'v1/traces', { 'Content-Type': batch.contentType });
    this.#delegate = createOtlpHttpExportDelegate(
      http,
      { serializeRequest: (request: EncodedBatch) => request.bytes, deserializeResponse: ProtobufTraceSerializer.deserializeResponse },
      'tollgate_span_exporter',
      { name: 'span', countItems: (request: EncodedBatch) => request.count },
      undefined,
    );
    this.#stopCounting = countSpans(() => this.counts);
  }

  /** What became of the spans recorded so far (`otel_sdk_*` on /metrics). */
  get counts(): SpanCounts {
    return { queued: this.#queued, dropped: this.#dropped, exported: this.#exported, failed: this.#failed };
  }

  record(span: GatewaySpan): void {
    const batch = this.#batch;
    if (batch.count + this.#inFlight >= this.#options.maxQueueSize) {
      this.#dropped++;
      this.#warn(`telemetry: span queue full (${this.#options.maxQueueSize}); ${this.#dropped} spans dropped so far`);
      return;
    }
    batch.add(span);
    this.#queued++;
    if (batch.count >= this.#options.maxExportBatchSize) this.#send();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#send(), this.#options.scheduledDelayMillis);
      this.#timer.unref();
    }
  }

  /** Sends what is batched and waits for every export in flight. */
  async flush(): Promise<void> {
    this.#send();
    await this.#delegate.forceFlush();
  }

  async shutdown(): Promise<void> {
    this.#send();
    await this.#delegate.shutdown();
    this.#stopCounting();
  }

  #send(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const count = this.#batch.count;
    if (count === 0) return;
    const bytes = this.#batch.take();
    this.#inFlight += count;
    this.#delegate.export({ bytes, count }, (result) => {
      this.#inFlight -= count;
      if (result.code === ExportResultCode.SUCCESS) {
        this.#exported += count;
        return;
      }
      this.#failed += count;
      this.#warn(`telemetry: span export failed (${result.error?.message ?? 'unknown error'}); ${this.#failed} spans lost so far`);
    });
  }

  /** A dead collector must not flood the log: one line per interval says what is being lost. */
  #warn(message: string): void {
    const now = Date.now();
    if (now - this.#lastWarning < WARN_EVERY_MS) return;
    this.#lastWarning = now;
    this.#logger.warn(message);
  }
}
