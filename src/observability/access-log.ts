/**
 * The access log line (one per request), written straight to the logger's
 * destination in pino's own line format — level, time, the logger's bindings,
 * the fields, `msg` last — so it reads exactly like every other line. The
 * line is joined from JSON segments (./line-shape.ts, ./json-fields.ts)
 * rather than by pino's generic serializer (a key loop with per-value
 * escaping and the redaction wrapper) or JSON.stringify. No header object is
 * ever part of it, so there is nothing to redact.
 */
import { pino, type Logger } from 'pino';
import { isoNow } from './clock.js';
import { flat, jsonNumber as num, jsonString as str } from './json-fields.js';
import { LineShape } from './line-shape.js';

export interface AccessFields {
  readonly requestId: string;
  readonly tenant: string | null;
  readonly apiKeyId: string | null;
  readonly route: string | null;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly outcome: string;
  readonly reason: string | null;
  readonly durationMs: number;
  readonly upstreamMs: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

type PinoInternals = Logger & {
  [pino.symbols.streamSym]: { write(line: string): unknown };
  [pino.symbols.chindingsSym]: string;
};

const INFO = pino.levels.values.info!;
const ERROR = pino.levels.values.error!;

/**
 * The access line's writer for one logger: what the line needs from pino,
 * kept in a plain object. A pino logger is a dictionary-mode object (dozens
 * of symbol-keyed properties), so each read of its stream, bindings or level
 * is a hash lookup, some of them a call into V8's runtime (profiled: ~0.3 %
 * of the full pipeline's CPU, three to five such reads per line). The level
 * is kept current from pino's 'level-change' event (a config reload sets
 * it); the bindings are read once (nothing here calls `setBindings`).
 */
export class AccessLog {
  private readonly stream: { write(line: string): unknown };
  private readonly chindings: string;
  private levelVal: number;
  /**
   * `{"level":…,"time":…<bindings>,"requestId":`, kept while the level and
   * the time (the same string object all through its millisecond,
   * ./clock.ts) stay the same: under load many lines share it.
   */
  private prefixLevel = NaN;
  private prefixIso = '';
  private prefix = '';
  /** The prefix with the opening quote of a bare request id (see LineShape.accessWhoAfterBareId). */
  private prefixBeforeBareId = '';

  constructor(logger: Logger) {
    const l = logger as PinoInternals;
    this.stream = l[pino.symbols.streamSym];
    this.chindings = l[pino.symbols.chindingsSym];
    this.levelVal = logger.levelVal;
    logger.on('level-change', () => (this.levelVal = logger.levelVal));
  }

  /** Whether the logger writes lines of this level now (pino's levels ascend; the process logger has no custom ones). */
  enabled(level: 'info' | 'error'): boolean {
    return this.levelVal <= (level === 'error' ? ERROR : INFO);
  }

  /**
   * The access line from JSON segments: `shape.setStatus()` has been
   * called for this request; `bytesJson` is `shape.bytesJson()`. `iso` is
   * the line's time: the account stage passes the one it also gives the
   * usage event. `requestId` is a JSON string or, when `bare`, the text of
   * one that needs no escaping (a UUID tenantgate made).
   */
  write(level: 'info' | 'error', iso: string, requestId: string, bare: boolean, shape: LineShape, pathJson: string, durationJson: string, upstreamJson: string, bytesJson: string): void {
    const value = level === 'error' ? ERROR : INFO;
    if (value !== this.prefixLevel || iso !== this.prefixIso) {
      this.prefixLevel = value;
      this.prefixIso = iso;
      this.prefix = flat(`{"level":${value},"time":"${iso}"${this.chindings},"requestId":`);
      this.prefixBeforeBareId = flat(`${this.prefix}"`);
    }
    const head = bare ? this.prefixBeforeBareId : this.prefix;
    const who = bare ? shape.accessWhoAfterBareId : shape.accessWho;
    // `+`, not a template literal: each substitution of one goes through ToString (V8 cannot tell these are
    // strings), ~400 instructions per request for this line and the usage event's (counted, bench/README.md).
    this.stream.write(head + requestId + who + pathJson + shape.accessStatus + durationJson + ',"upstreamMs":' + upstreamJson + bytesJson + ',"msg":"request"}\n');
  }
}

const byLogger = new WeakMap<Logger, AccessLog>();

/** The logger's access-line writer (one per logger: each registers a level-change listener). */
export function accessLogFor(logger: Logger): AccessLog {
  let log = byLogger.get(logger);
  if (log === undefined) byLogger.set(logger, (log = new AccessLog(logger)));
  return log;
}

/** The same line from plain fields (one-off lines, tests). */
export function writeAccessLine(logger: Logger, level: 'info' | 'error', f: AccessFields): void {
  const shape = new LineShape(f.tenant, null, f.apiKeyId, null, f.route, f.method, null);
  shape.setStatus(f.status, f.outcome, f.reason);
  accessLogFor(logger).write(level, isoNow(), str(f.requestId), false, shape, str(f.path), num(f.durationMs), num(f.upstreamMs), shape.bytesJson(f.bytesIn, f.bytesOut));
}
