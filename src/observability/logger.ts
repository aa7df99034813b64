/**
 * The process logger (pino, JSON lines on stdout). Credentials are redacted by
 * path wherever a request's headers could end up in a log object.
 */
import { pino, type Logger } from 'pino';

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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: 'tenantgate' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
