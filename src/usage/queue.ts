/**
 * A lane's in-memory queue (./lane.ts): the lines waiting for their sink, in
 * order, handed out a batch at a time. The lane decides when a batch leaves,
 * when to spool and what a failure means; the queue only decides how the
 * lines are held until then. Most sinks take them as strings (StringQueue);
 * a sink can hold them in its own wire format instead, encoded as they are
 * queued (the redis-stream sink's, ./sinks/redis-stream-queue.ts).
 */
import { flat } from '../observability/json-fields.js';
import { requestEventLine, type RequestEventParts } from './event-json.js';
import type { UsageSink } from './types.js';

export interface LineQueue {
  /** Lines queued. */
  readonly length: number;
  push(line: string): void;
  /** Queues a request event's line (./event-json.ts), written now. */
  pushRequest(event: RequestEventParts): void;
  /** Removes the oldest batch, at most batchSize lines. Only called when length > 0. */
  take(): QueuedBatch;
  /** Removes every queued line, oldest first, as strings (for the spool). */
  takeAll(): string[];
}

export interface QueuedBatch {
  readonly count: number;
  /** Delivers the batch, or throws: then none of it counts as delivered. Called once. */
  send(): Promise<void>;
  /** The batch's lines as strings, for the spool (it failed, or flush() gave up on it). */
  lines(): string[];
}

/**
 * Lines held as strings; a batch is the sink's send() of them. Each line is
 * flattened as it is queued: a template literal builds a rope (a tree of its
 * pieces), and a queued line waits for its batch (tens of ms under load), so
 * it lives through young-generation GCs, which copy every piece of it; flat,
 * it is one string of its own length (~25 % smaller, measured). Sending it
 * would flatten it anyway, so doing it now costs nothing extra; reading a
 * character is ~50 ns cheaper than Buffer.byteLength, which flattens and
 * then counts.
 */
export class StringQueue implements LineQueue {
  private queued: string[] = [];

  constructor(
    private readonly sink: UsageSink,
    private readonly batchSize: number,
  ) {}

  get length(): number {
    return this.queued.length;
  }

  push(line: string): void {
    this.queued.push(flat(line));
  }

  pushRequest(event: RequestEventParts): void {
    this.queued.push(requestEventLine(event));
  }

  take(): QueuedBatch {
    const lines = this.queued.splice(0, this.batchSize);
    const sink = this.sink;
    return { count: lines.length, send: () => sink.send(lines), lines: () => lines };
  }

  takeAll(): string[] {
    const all = this.queued;
    this.queued = [];
    return all;
  }
}
