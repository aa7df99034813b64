/**
 * The process logger (pino, JSON lines on stdout). Credentials are redacted by
 * path wherever a request's headers could end up in a log object.
 */
import { pino, type Logger } from 'pino';
import { isoNow } from './clock.js';
import { writeUtf8 } from './utf8.js';

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
 * stdout, gathered into chunks of 64 KiB or more (and flushed at least every
 * 50 ms) and written synchronously by sonic-boom, which deals with partial
 * writes and a full pipe (EAGAIN). Measured with the proxy pinned to one core:
 * one write per line was ~5 % of its CPU; 2 KiB chunks (a write per ~6 access
 * lines) still cost 0.7 µs per line more than 16 KiB ones (a write per ~50);
 * 64 KiB (a write per ~190) measured the same as 16 KiB (16-round A/B,
 * 12-01); asynchronous writes (libuv's thread pool: a
 * thread wake-up and a completion callback per write, on the same core) cost
 * more than the write itself; and handing each line to sonic-boom to buffer
 * costs ~1 µs (it measures every line's byte length).
 *
 * Each line is encoded into the chunk's Buffer as it comes (one copy, which
 * also flattens the line); the access line is written there as bytes in the
 * first place (LineChunks). sonic-boom gets the Buffer (`contentMode:
 * buffer`). Before, lines were appended to a string: flattening the chunk's
 * rope (~50 lines of ~30 pieces each) and encoding it took ~0.6 µs per line,
 * and sonic-boom then encoded every written string a second time to find
 * where a partial write ended. Flushed on exit; a SIGKILL can lose the last
 * 50 ms of lines.
 */
const CHUNK_BYTES = 64 * 1024;
/** Room past CHUNK_BYTES for the line that crosses it; longer lines go on their own. Stays under glibc's 128 KiB mmap threshold. */
const LAST_LINE_BYTES = 48 * 1024;

/** A destination whose lines can be written straight into its chunk (the access line's, ./access-log.ts). */
export interface LineChunks {
  /** The chunk, with room for `bytes` more bytes at `used` (flushing first if need be); null if no chunk can hold that many. */
  room(bytes: number): Buffer | null;
  /** Where the next line goes in the chunk. */
  readonly used: number;
  /** The line written at `used` ends at `end`. */
  commit(end: number): void;
}

class StdoutLines implements pino.DestinationStream, LineChunks {
  private chunk = StdoutLines.newChunk();
  used = 0;
  private readonly out = pino.destination({ fd: 1, sync: true, minLength: 0, contentMode: 'buffer' } as Parameters<typeof pino.destination>[0]);

  constructor() {
    setInterval(() => this.flushPending(), 50).unref();
  }

  /** Room for a full chunk plus its last line (at most 3 bytes per UTF-16 unit in UTF-8). */
  private static newChunk(): Buffer {
    return Buffer.allocUnsafeSlow(CHUNK_BYTES + LAST_LINE_BYTES);
  }

  write(line: string): void {
    const chunk = this.room(line.length * 3); // at most 3 bytes per UTF-16 unit
    // A line bigger than a chunk (not an access line) goes on its own, after what is pending.
    if (chunk === null) return void this.out.write(Buffer.from(line) as unknown as string);
    this.commit(this.used + writeUtf8(chunk, line, this.used));
  }

  room(bytes: number): Buffer | null {
    if (this.used + bytes > this.chunk.length) {
      this.flushPending();
      if (bytes > this.chunk.length) return null;
    }
    return this.chunk;
  }

  commit(end: number): void {
    this.used = end;
    if (end >= CHUNK_BYTES) this.flushPending();
  }

  private flushPending(): void {
    if (this.used === 0) return;
    const data = this.chunk.subarray(0, this.used);
    this.used = 0;
    try {
      this.out.write(data as unknown as string);
    } finally {
      // Synchronous, sonic-boom has written all of it when write() returns (it waits out EAGAIN), and
      // the chunk is ours again: reused. A new ~110 KB Buffer per flush cost the full pipeline 2.3 % of
      // its req/s (16-round A/B, 12-01). Only if bytes are left (a write error, thrown or emitted) does
      // it keep the chunk: then a new one. `_len` is sonic-boom's count of bytes not yet written; were
      // it ever renamed, every flush would take a new chunk, as before: slower, never wrong.
      if ((this.out as unknown as { _len?: number })._len !== 0) this.chunk = StdoutLines.newChunk();
    }
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

/** `stream` as LineChunks when it is the process's stdout writer, else null. */
export function lineChunksOf(stream: unknown): LineChunks | null {
  return stream instanceof StdoutLines ? stream : null;
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
