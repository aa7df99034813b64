/**
 * The process logger (pino, JSON lines on stdout). Credentials are redacted by
 * path wherever a request's headers could end up in a log object.
 */
import { pino, type Logger } from 'pino';
import { isoNow } from './iso-time.js';

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

/** Pending lines are written once they hold this many characters, or after FLUSH_MS. */
const BATCH_CHARS = 64 * 1024;
const FLUSH_MS = 50;

/**
 * stdout, a batch of lines per write rather than a write(2) per line (one per
 * access line is a visible share of the proxy's CPU). sonic-boom, synchronous,
 * does the writing: partial writes and a full pipe (EAGAIN). Flushed every
 * FLUSH_MS and when the process exits; a SIGKILL can lose the last FLUSH_MS
 * of lines.
 */
class StdoutLines implements pino.DestinationStream {
  private pending: string[] = [];
  private chars = 0;
  private readonly out = pino.destination({ dest: 1, sync: true });

  constructor() {
    setInterval(() => this.flushSync(), FLUSH_MS).unref();
    process.once('exit', () => this.flushSync());
  }

  write(line: string): void {
    this.pending.push(line);
    this.chars += line.length;
    if (this.chars >= BATCH_CHARS) this.flushSync();
  }

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  flushSync(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.chars = 0;
    try {
      this.out.write(text);
    } catch {
      /* stdout gone: nothing left to do */
    }
  }
}

/** One writer for the process's stdout, whichever loggers write there: their lines stay in order. */
let stdout: StdoutLines | null = null;

/** pino's `isoTime`, from the shared per-millisecond clock. */
const isoTimestamp = (): string => `,"time":"${isoNow()}"`;

export function createLogger(level: string, destination: pino.DestinationStream = (stdout ??= new StdoutLines())): Logger {
  return pino({ level, base: { service: 'tenantgate' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: isoTimestamp }, destination);
}
