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

/**
 * Lines are buffered up to 2 KiB and written at least every 50 ms: one write
 * per line (one syscall each) was ~5 % of the proxy's CPU with an access line
 * per request. Writes are capped at 4 KiB because sonic-boom measures the
 * byte length of its last buffer on every line (cheap only while it is
 * small). pino flushes the buffer synchronously on exit; a SIGKILL can lose
 * the last 50 ms of lines.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: 'tenantgate' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: isoTime },
    destination ?? pino.destination({ fd: 1, sync: false, minLength: 2048, maxWrite: 4096, periodicFlush: 50 }),
  );
}
