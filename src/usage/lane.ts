/**
 * One sink's delivery: a bounded queue drained in batches, and the spool with
 * its replay loop. Each sink has its own lane, so a sink that is down or slow
 * delays nobody else.
 *
 * Two modes keep the order of events:
 * - `direct`: the spool is empty; batches go from the queue to the sink, one
 *   at a time. A failed batch, or a queue that is full, switches to `spool`:
 *   the batch and everything queued behind it go to the spool, in order.
 * - `spool`: every new event is appended to the spool, and the replay loop
 *   sends the spool oldest first, probing with doubling backoff while the
 *   sink fails. Once the spool is empty the lane is `direct` again.
 * A batch still in flight when the queue overflows may yet fail; the spool
 * holds its writes until then, so that batch can still go in front.
 */
import type { Logger } from '../observability/logger.js';
import type { Spool } from './spool.js';
import type { DeliveryOutcome, UsageSink } from './types.js';

export interface LaneOptions {
  batchSize: number;
  flushMs: number;
  queueSize: number;
  minBackoffMs: number;
  maxBackoffMs: number;
}

interface Flight {
  readonly lines: string[];
  done: Promise<void>;
  /** flush() gave up waiting and spooled the lines; whatever the sink answers no longer matters. */
  abandoned: boolean;
}

export class Lane {
  /** Lines waiting for the sink, oldest first. */
  private queue: string[] = [];
  private mode: 'direct' | 'spool';
  private inflight: Flight | null = null;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private replaying: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** The segment the replay is sending and how many of its lines were delivered (saved as a cursor on close). */
  private replayAt: { seq: number; delivered: number } | null = null;
  private closed = false;
  private warnedClosed = false;

  constructor(
    private readonly sink: UsageSink,
    private readonly spool: Spool,
    private readonly opts: LaneOptions,
    private readonly onDelivery: (sink: string, outcome: DeliveryOutcome, count: number) => void,
    private readonly logger: Logger,
  ) {
    this.mode = spool.empty ? 'direct' : 'spool';
    if (this.mode === 'spool') {
      logger.info({ sink: sink.name, spool: spool.dir }, 'usage spool found from an earlier run; replaying');
      this.startReplay();
    }
  }

  /** Queues the line, or, if the lane is spooling or its queue is full, appends it to the spool. */
  push(line: string): void {
    if (this.closed) {
      if (!this.warnedClosed) this.logger.error({ sink: this.sink.name }, 'usage event recorded after close(); not delivered');
      this.warnedClosed = true;
    } else if (this.mode === 'spool') {
      this.spool.append([line]);
    } else if (this.queue.length >= this.opts.queueSize) {
      this.logger.warn({ sink: this.sink.name, queued: this.queue.length }, 'usage queue full; spooling');
      this.toSpool([line]);
    } else {
      this.queue.push(line);
      this.schedule();
    }
  }

  /** Delivers what is queued until `deadline`, then spools (and fsyncs) whatever is left. */
  async flush(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      if (this.mode === 'direct' && this.inflight === null) this.drain();
      if (this.inflight === null) break;
      await waitUntil(this.inflight.done, deadline);
    }
    // Out of time: a batch still in flight (it may yet land: a duplicate, not a loss) and the queue go to the spool.
    const flight = this.inflight;
    if (flight !== null) {
      flight.abandoned = true;
      this.inflight = null;
      this.spool.prepend(flight.lines);
      this.spool.hold = false;
    }
    if (this.mode === 'direct' && (flight !== null || this.queue.length > 0)) this.toSpool([]);
    if (this.mode === 'spool') this.startReplay();
    await this.spool.sync();
  }

  /** flush(), then stops the replay and closes the sink and the spool. */
  async close(deadline: number): Promise<void> {
    await this.flush(deadline);
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.wake?.();
    // A replay batch still in flight is on disk until delivered: if it is cut off here, it is sent again next start.
    if (this.replaying !== null) await waitUntil(this.replaying, Math.max(deadline, Date.now() + 1000));
    await this.sink.close().catch((err: Error) => this.logger.warn({ sink: this.sink.name, err: err.message }, 'usage sink close failed'));
    // So the next start resumes mid-segment instead of sending the delivered part again.
    const at = this.replayAt;
    if (at !== null && at.delivered > 0) await this.spool.saveCursor(at.seq, at.delivered).catch(() => undefined);
    await this.spool.close();
  }

  private schedule(): void {
    if (this.inflight !== null) return; // the batch in flight reschedules when it lands
    if (this.queue.length >= this.opts.batchSize) {
      // Not synchronously: record() is on the request path and must not build a batch.
      this.immediate ??= setImmediate(() => this.drain());
    } else if (this.timer === null) {
      this.timer = setTimeout(() => this.drain(), this.opts.flushMs);
      this.timer.unref();
    }
  }

  private drain(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = this.immediate = null;
    if (this.inflight !== null || this.mode !== 'direct' || this.queue.length === 0) return;
    const flight: Flight = { lines: this.queue.splice(0, this.opts.batchSize), done: Promise.resolve(), abandoned: false };
    this.inflight = flight;
    flight.done = this.sink.send(flight.lines).then(
      () => this.landed(flight, null),
      (err: unknown) => this.landed(flight, err as Error),
    );
  }

  private landed(flight: Flight, err: Error | null): void {
    if (this.inflight === flight) this.inflight = null;
    if (flight.abandoned) return;
    if (err === null) this.onDelivery(this.sink.name, 'sent', flight.lines.length);
    else if (this.mode === 'direct') {
      this.logger.warn({ sink: this.sink.name, err: err.message }, 'usage sink failed; spooling until it recovers');
      this.spool.prepend(flight.lines);
      this.toSpool([]);
    } else this.spool.prepend(flight.lines);
    if (this.mode === 'spool') {
      this.spool.hold = false;
      this.spool.append([]);
      this.startReplay();
    } else if (this.queue.length > 0) this.schedule();
  }

  /** direct → spool: the queue (and `lines` after it) go to the spool; a batch in flight may still go in front. */
  private toSpool(lines: string[]): void {
    this.mode = 'spool';
    if (this.inflight !== null) this.spool.hold = true;
    this.spool.append(this.queue);
    this.queue = [];
    this.spool.append(lines);
    if (this.inflight === null) this.startReplay();
  }

  private startReplay(): void {
    if (this.replaying !== null || this.closed) return;
    this.replaying = this.replay();
  }

  private async replay(): Promise<void> {
    let backoff = this.opts.minBackoffMs;
    let segment: { seq: number; lines: string[]; delivered: number } | null = null;
    let pos = 0;
    const at = (seq: number, delivered: number) => (this.replayAt = { seq, delivered });
    const pause = async (): Promise<void> => {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff);
        t.unref(); // a sink that stays down must not keep the process alive
        this.wake = () => (clearTimeout(t), resolve());
      });
      this.wake = null;
      backoff = Math.min(backoff * 2, this.opts.maxBackoffMs);
    };
    while (!this.closed) {
      try {
        if (segment === null) {
          if (this.spool.empty) {
            // Checked and switched with no await in between: no event can slip into the spool unseen.
            this.mode = 'direct';
            this.replaying = null;
            this.logger.info({ sink: this.sink.name }, 'usage spool replayed; sink back to direct delivery');
            return;
          }
          segment = await this.spool.oldest();
          pos = segment?.delivered ?? 0;
          if (segment !== null) at(segment.seq, pos);
          // Only unwritten lines left: write them so they can be read back in order.
          if (segment === null && !(await this.spool.sync())) await pause();
          continue;
        }
        if (pos >= segment.lines.length) {
          await this.spool.remove(segment.seq);
          segment = null;
          this.replayAt = null;
          continue;
        }
        const batch = segment.lines.slice(pos, pos + this.opts.batchSize);
        try {
          await this.sink.send(batch);
        } catch (err) {
          if (!this.closed) this.logger.debug({ sink: this.sink.name, err: (err as Error).message, retryInMs: backoff }, 'usage replay failed; backing off');
          await pause();
          continue;
        }
        backoff = this.opts.minBackoffMs;
        pos += batch.length;
        at(segment.seq, pos);
        this.onDelivery(this.sink.name, 'replayed', batch.length);
      } catch (err) {
        // The spool itself failed (read, delete): nothing is lost, try again later.
        this.logger.error({ sink: this.sink.name, spool: this.spool.dir, err: (err as Error).message }, 'usage spool replay error; retrying');
        await pause();
      }
    }
    this.replaying = null;
  }
}

/** Resolves when `p` settles or at `deadline`, whichever is first, leaving no timer behind. */
async function waitUntil(p: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
  clearTimeout(timer);
}
