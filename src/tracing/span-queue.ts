/**
 * The span processor between the tracer and the OTLP exporter: a bounded
 * queue, emptied in batches by one export at a time. Ending a span only
 * pushes onto an array; when the queue is full (the collector slow or down)
 * the span is dropped and counted, so back-pressure never reaches a request.
 *
 * Our own rather than sdk-trace-base's BatchSpanProcessor: that one bounds its
 * queue the same way but reports drops only through an experimental
 * self-observability MeterProvider, and counts nothing for batches whose
 * export failed; here both feed tenantgate_trace_spans_dropped_total.
 */
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface SpanQueueOptions {
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  /** A non-full batch leaves this long after its first span. */
  readonly exportIntervalMs: number;
}

export interface SpanCounts {
  exported(count: number): void;
  /** `queue_full`: never queued; `export_failed`: the collector refused or could not be reached; `shutdown`: left when the flush ran out of time. */
  dropped(reason: 'queue_full' | 'export_failed' | 'shutdown', count: number): void;
  /** An export failed after one that succeeded (or the first one): worth one log line, not one per batch. */
  failing?(error: Error | undefined): void;
}

export class SpanQueue implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private exporting: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private lastFailed = false;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly options: SpanQueueOptions,
    private readonly counts: SpanCounts,
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.closed || this.queue.length >= this.options.maxQueueSize) {
      this.counts.dropped('queue_full', 1);
      return;
    }
    this.queue.push(span);
    if (this.exporting !== null) return; // the running export takes the next batch when it ends
    if (this.queue.length >= this.options.maxExportBatchSize) this.exportNext();
    else if (this.timer === null) {
      this.timer = setTimeout(() => this.exportNext(), this.options.exportIntervalMs);
      this.timer.unref();
    }
  }

  /** Starts exporting the next batch unless one is on its way; then the following ones, until the queue is empty. */
  private exportNext(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.exporting !== null || this.queue.length === 0) return;
    const batch = this.queue.length <= this.options.maxExportBatchSize ? this.queue : this.queue.slice(0, this.options.maxExportBatchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    this.exporting = new Promise<void>((resolve) => {
      this.exporter.export(batch, (result: ExportResult) => {
        this.settled(batch.length, result);
        resolve();
      });
    }).then(() => {
      this.exporting = null;
      if (this.queue.length >= this.options.maxExportBatchSize || (this.closed && this.queue.length > 0)) this.exportNext();
      else if (this.queue.length > 0 && this.timer === null) {
        this.timer = setTimeout(() => this.exportNext(), this.options.exportIntervalMs);
        this.timer.unref();
      }
    });
  }

  private settled(count: number, result: ExportResult): void {
    if (result.code === ExportResultCode.SUCCESS) {
      this.lastFailed = false;
      this.counts.exported(count);
      return;
    }
    this.counts.dropped('export_failed', count);
    if (!this.lastFailed) this.counts.failing?.(result.error);
    this.lastFailed = true;
  }

  /** Exports everything queued now (one batch after the other). */
  async forceFlush(): Promise<void> {
    while (this.queue.length > 0 || this.exporting !== null) {
      if (this.exporting === null) this.exportNext();
      await this.exporting;
    }
  }

  /** Flushes within `timeoutMs` (what is still queued then is dropped and counted), then shuts the exporter down. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.forceFlush(), timeout]);
    clearTimeout(timer);
    if (this.queue.length > 0) this.counts.dropped('shutdown', this.queue.length);
    this.queue = [];
    if (this.timer !== null) clearTimeout(this.timer);
    await Promise.race([this.exporter.shutdown(), new Promise<void>((resolve) => setTimeout(resolve, 100).unref())]);
  }

  shutdown(): Promise<void> {
    return this.close(0);
  }
}
