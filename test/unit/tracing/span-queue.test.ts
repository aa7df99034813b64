/**
 * SpanQueue (src/tracing/span-queue.ts) between a real tracer provider and the
 * real OTLP/HTTP exporter, sending to a real receiver on loopback: batches,
 * one export at a time, drops counted by reason, and a bounded close.
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { AlwaysOffSampler, BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { SpanQueue, type SpanCounts } from '../../../src/tracing/span-queue.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../helpers/otlp-receiver.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function receiver(opts: { status?: number; hang?: boolean } = {}): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver(opts);
  cleanups.push(() => r.close());
  return r;
}

function counter(): SpanCounts & { exportedTotal: number; droppedBy: Record<string, number>; failures: number } {
  const c = {
    exportedTotal: 0,
    droppedBy: {} as Record<string, number>,
    failures: 0,
    exported: (n: number) => void (c.exportedTotal += n),
    dropped: (reason: string, n: number) => void (c.droppedBy[reason] = (c.droppedBy[reason] ?? 0) + n),
    failing: () => void c.failures++,
  };
  return c;
}

function setup(url: string, options: { maxQueueSize: number; maxExportBatchSize: number }, sampled = true) {
  const counts = counter();
  // A long interval: batches leave because they are full or flushed, never by the clock, in these tests.
  const queue = new SpanQueue(new OTLPTraceExporter({ url, timeoutMillis: 5000 }), { ...options, exportIntervalMs: 60_000 }, counts);
  const provider = new BasicTracerProvider({ spanProcessors: [queue], ...(sampled ? {} : { sampler: new AlwaysOffSampler() }) });
  const tracer = provider.getTracer('test');
  const spans = (n: number, prefix = 's') => {
    for (let i = 0; i < n; i++) tracer.startSpan(`${prefix}${i}`).end();
  };
  return { queue, counts, spans };
}

describe('SpanQueue', () => {
  it('exports every span in batches of at most maxExportBatchSize, and counts them', async () => {
    const otlp = await receiver();
    const { queue, counts, spans } = setup(otlp.url, { maxQueueSize: 100, maxExportBatchSize: 2 });
    spans(5);
    await queue.forceFlush();
    expect(otlp.spans.map((s) => s.name).sort()).toEqual(['s0', 's1', 's2', 's3', 's4']);
    expect(otlp.contentTypes).toHaveLength(3); // 2 + 2 + 1
    expect(counts.exportedTotal).toBe(5);
    expect(counts.droppedBy).toEqual({});
    await queue.close(1000);
  });

  it('queues nothing for spans that were not sampled', async () => {
    const otlp = await receiver();
    const { queue, counts, spans } = setup(otlp.url, { maxQueueSize: 100, maxExportBatchSize: 2 }, false);
    spans(5);
    await queue.forceFlush();
    expect(otlp.contentTypes).toHaveLength(0);
    expect(counts.exportedTotal + Object.keys(counts.droppedBy).length).toBe(0);
    await queue.close(1000);
  });

  it('a stuck collector: one export in flight, the queue bounded, the rest dropped as queue_full; close gives up on what is left', async () => {
    const otlp = await receiver({ hang: true });
    const { queue, counts, spans } = setup(otlp.url, { maxQueueSize: 3, maxExportBatchSize: 1 });
    spans(10); // the first leaves at once (and hangs), three wait, six are dropped
    expect(counts.droppedBy).toEqual({ queue_full: 6 });
    await queue.close(50);
    expect(counts.droppedBy).toEqual({ queue_full: 6, shutdown: 3 });
    spans(1); // after close nothing is queued any more
    expect(counts.droppedBy.queue_full).toBe(7);
  });

  it('a refusing collector: whole batches count as export_failed, the failure is reported once per streak', async () => {
    const otlp = await receiver({ status: 400 });
    const { queue, counts, spans } = setup(otlp.url, { maxQueueSize: 100, maxExportBatchSize: 2 });
    spans(4);
    await queue.forceFlush();
    expect(counts.droppedBy).toEqual({ export_failed: 4 });
    expect(counts.exportedTotal).toBe(0);
    expect(counts.failures).toBe(1);
    await queue.close(1000);
  });
});
