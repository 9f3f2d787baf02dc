import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { SpanKind } from '@opentelemetry/api';
import pino from 'pino';
import { GatewaySpan } from '../../core/telemetry/gateway-span.ts';
import { ProtobufSpanBatch } from '../../core/telemetry/otlp-encoding.ts';
import { SpanBatcher } from '../../core/telemetry/span-batcher.ts';
import { batchOptionsFromEnv } from '../../core/telemetry/tracing-start.ts';
import { newSpanId, newTraceId } from '../../core/telemetry/trace-context.ts';

function capturingLogger(): { logger: pino.Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
  return { logger, warnings };
}

function endSpans(batcher: SpanBatcher, count: number): void {
  for (let i = 0; i < count; i++) new GatewaySpan(batcher, newTraceId(), newSpanId(), '', undefined, `s${i}`, SpanKind.SERVER, Date.now()).end();
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
}

describe('span batcher', () => {
  const batch = () => new ProtobufSpanBatch({ 'service.name': 'test' }, { name: 'tollgate', version: '0' });

  it('exports a full batch at once and the rest on flush, one request per batch', async () => {
    const bodies: number[] = [];
    const server = createServer((req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => (size += chunk.length));
      req.on('end', () => {
        bodies.push(size);
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    const url = await listen(server);
    const { logger, warnings } = capturingLogger();
    const batcher = new SpanBatcher(batch(), { maxQueueSize: 100, maxExportBatchSize: 10, scheduledDelayMillis: 60_000 }, { url }, logger);
    try {
      endSpans(batcher, 25);
      await batcher.flush();
      expect(bodies).to.have.length(3);
      expect(batcher.counts).to.deep.equal({ queued: 25, dropped: 0, exported: 25, failed: 0 });
      expect(warnings).to.deep.equal([]);
    } finally {
      await batcher.shutdown();
      server.close();
    }
  });

  it('drops spans past maxQueueSize while exports are stuck, and says so in the log', async () => {
    const stuck: (() => void)[] = [];
    const server = createServer((req, res) => {
      req.resume();
      stuck.push(() => res.writeHead(200).end());
    });
    const url = await listen(server);
    const { logger, warnings } = capturingLogger();
    const batcher = new SpanBatcher(batch(), { maxQueueSize: 8, maxExportBatchSize: 4, scheduledDelayMillis: 60_000 }, { url }, logger);
    try {
      endSpans(batcher, 20);
      expect(batcher.counts).to.include({ queued: 8, dropped: 12 });
      expect(warnings.some((line) => /span queue full \(8\)/.test(line))).to.equal(true);
    } finally {
      const finished = batcher.shutdown();
      while (stuck.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      for (const answer of stuck) answer();
      await finished;
      server.close();
    }
  });

  it('counts and reports spans lost to a collector that cannot be reached, without throwing', async () => {
    const { logger, warnings } = capturingLogger();
    const batcher = new SpanBatcher(batch(), { maxQueueSize: 100, maxExportBatchSize: 100, scheduledDelayMillis: 60_000 }, { url: 'http://127.0.0.1:9/v1/traces' }, logger);
    endSpans(batcher, 5);
    await batcher.flush();
    expect(batcher.counts).to.deep.equal({ queued: 5, dropped: 0, exported: 0, failed: 5 });
    expect(warnings.some((line) => /span export failed \(.+\); 5 spans lost so far/.test(line))).to.equal(true);
    await batcher.shutdown();
  });
});

describe('span batch settings', () => {
  it("default to 2048 spans an export and 8192 queued, four times the SDK's, for a gateway's span rate", () => {
    expect(batchOptionsFromEnv({})).to.deep.equal({ maxQueueSize: 8192, maxExportBatchSize: 2048, scheduledDelayMillis: 5000 });
  });

  it('take the standard OTEL_BSP_* variables, with a batch never larger than the queue', () => {
    expect(batchOptionsFromEnv({ OTEL_BSP_MAX_QUEUE_SIZE: '2048', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512', OTEL_BSP_SCHEDULE_DELAY: '250' })).to.deep.equal({
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 250,
    });
    expect(batchOptionsFromEnv({ OTEL_BSP_MAX_QUEUE_SIZE: '100' }).maxExportBatchSize).to.equal(100);
    expect(batchOptionsFromEnv({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 'lots', OTEL_BSP_SCHEDULE_DELAY: '-1' })).to.deep.equal({ maxQueueSize: 8192, maxExportBatchSize: 2048, scheduledDelayMillis: 5000 });
  });
});
