/**
 * The process logger (pino, JSON lines on stdout). Credentials are redacted by
 * path wherever a request's headers could end up in a log object.
 */
import { pino, type Logger } from 'pino';
import { isoNow } from './clock.js';

export type { Logger };

const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers["x-tenant-assertion"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  'token',
  'key',
  'secret',
];

/** pino's time field, from the per-millisecond cached ISO string. */
const isoTime = (): string => `,"time":"${isoNow()}"`;

/** Buffered stdout destinations, flushed synchronously when the process exits (pino does so only for async ones). */
const buffered = new Set<{ flushSync(): void }>();
process.once('exit', () => {
  for (const d of buffered) {
    try {
      d.flushSync();
    } catch {
      /* stdout gone: nothing left to do */
    }
  }
});

/**
 * stdout, gathered into chunks of 16 KiB or more (and flushed at least every
 * 50 ms) and written synchronously by sonic-boom, which deals with partial
 * writes and a full pipe (EAGAIN). Measured with the proxy pinned to one core:
 * one write per line was ~5 % of its CPU; 2 KiB chunks (a write per ~6 access
 * lines) still cost 0.7 µs per line more than 16 KiB ones (a write per ~50);
 * bigger chunks gained little, and past ~40 KiB Node's encoding buffer (3
 * bytes per character) would leave malloc's heap for fresh mappings, which
 * page-fault on this VM; asynchronous writes (libuv's thread
 * pool: a thread wake-up and a completion callback per write, on the same
 * core) cost more than the write itself; and handing each line to sonic-boom
 * to buffer costs ~1 µs (it measures every line's byte length), against
 * ~0.2 µs to append it to a string here. Flushed on exit; a SIGKILL can lose
 * the last 50 ms of lines.
 */
const CHUNK_CHARS = 16 * 1024;

class StdoutLines implements pino.DestinationStream {
  private pending = '';
  private readonly out = pino.destination({ fd: 1, sync: true, minLength: 0 });

  constructor() {
    setInterval(() => this.flushPending(), 50).unref();
  }

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= CHUNK_CHARS) this.flushPending();
  }

  private flushPending(): void {
    if (this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    this.out.write(chunk);
  }

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    this.flushPending();
    this.out.flush(cb);
  }

  flushSync(): void {
    this.flushPending();
    this.out.flushSync();
  }
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  let dest = destination;
  if (dest === undefined) {
    const stdout = new StdoutLines();
    buffered.add(stdout);
    dest = stdout;
  }
  return pino({ level, base: { service: 'tenantgate' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: isoTime }, dest);
}
