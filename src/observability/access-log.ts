/**
 * The access log line (one per request), written straight to the logger's
 * destination in pino's own line format — level, time, the logger's bindings,
 * the fields, `msg` last — so it reads exactly like every other line. The
 * line is written as bytes from JSON segments (./line-shape.ts,
 * ./line-bytes.ts) rather than by pino's generic serializer (a key loop with
 * per-value escaping and the redaction wrapper) or JSON.stringify: into the
 * stdout chunk itself (./logger.ts) when the logger writes to stdout, else
 * built aside and handed over as a string. No header object is ever part of
 * it, so there is nothing to redact.
 */
import { pino, type Logger } from 'pino';
import { isoNow } from './clock.js';
import { jsonStringBound, MAX_NUMBER_BYTES, putBytes, putJsonString, putMillis, putMillisOrNull, putNumber, Scratch, segment } from './line-bytes.js';
import { BYTES_IN, BYTES_OUT, LineShape } from './line-shape.js';
import { lineChunksOf, type LineChunks } from './logger.js';

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
const UPSTREAM = segment(',"upstreamMs":');
const TAIL = segment(',"msg":"request"}\n');
/** The line's bytes other than its prefix, segments and strings: four numbers and the constant segments. */
const FIXED_BOUND = 4 * MAX_NUMBER_BYTES + UPSTREAM.length + BYTES_IN.length + BYTES_OUT.length + TAIL.length;

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
  /** The stream's chunks, when it is the process's stdout writer: lines are written into them. */
  private readonly chunks: LineChunks | null;
  private readonly scratch = new Scratch();
  private readonly chindings: string;
  private levelVal: number;
  /**
   * `{"level":…,"time":…<bindings>,"requestId":`, kept while the level and
   * the time (the same string object all through its millisecond,
   * ./clock.ts) stay the same: under load many lines share it.
   */
  private prefixLevel = NaN;
  private prefixIso = '';
  private prefix = segment('');

  constructor(logger: Logger) {
    const l = logger as PinoInternals;
    this.stream = l[pino.symbols.streamSym];
    this.chunks = lineChunksOf(this.stream);
    this.chindings = l[pino.symbols.chindingsSym];
    this.levelVal = logger.levelVal;
    logger.on('level-change', () => (this.levelVal = logger.levelVal));
  }

  /** Whether the logger writes lines of this level now (pino's levels ascend; the process logger has no custom ones). */
  enabled(level: 'info' | 'error'): boolean {
    return this.levelVal <= (level === 'error' ? ERROR : INFO);
  }

  /**
   * The access line: `shape.setStatus()` has been called for this request.
   * `iso` is the line's time: the account stage passes the one it also gives
   * the usage event. `path` is the normalised path (never the query string).
   */
  write(level: 'info' | 'error', iso: string, requestId: string, shape: LineShape, path: string, durationMs: number, upstreamMs: number | null, bytesIn: number, bytesOut: number): void {
    const value = level === 'error' ? ERROR : INFO;
    if (value !== this.prefixLevel || iso !== this.prefixIso) {
      this.prefixLevel = value;
      this.prefixIso = iso;
      this.prefix = segment(`{"level":${value},"time":"${iso}"${this.chindings},"requestId":`);
    }
    const bound = this.prefix.length + jsonStringBound(requestId) + shape.accessWho.length + jsonStringBound(path) + shape.accessStatus.length + FIXED_BOUND;
    const chunk = this.chunks?.room(bound) ?? null;
    const out = chunk ?? this.scratch.room(bound);
    let at = chunk !== null ? this.chunks!.used : 0;
    at = putBytes(out, at, this.prefix);
    at = putJsonString(out, at, requestId);
    at = putBytes(out, at, shape.accessWho);
    at = putJsonString(out, at, path);
    at = putBytes(out, at, shape.accessStatus);
    at = putMillis(out, at, durationMs);
    at = putBytes(out, at, UPSTREAM);
    at = putMillisOrNull(out, at, upstreamMs);
    at = putBytes(out, at, BYTES_IN);
    at = putNumber(out, at, bytesIn);
    at = putBytes(out, at, BYTES_OUT);
    at = putNumber(out, at, bytesOut);
    at = putBytes(out, at, TAIL);
    if (chunk !== null) this.chunks!.commit(at);
    else this.stream.write(this.scratch.text(at));
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
  accessLogFor(logger).write(level, isoNow(), f.requestId, shape, f.path, f.durationMs, f.upstreamMs, f.bytesIn, f.bytesOut);
}
