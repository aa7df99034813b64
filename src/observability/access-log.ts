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
import { jsonNumber as num, jsonString as str } from './json-fields.js';
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

/**
 * `{"level":…,"time":…<bindings>,"requestId":`, kept while the level, the
 * time (the same string object all through its millisecond, ./clock.ts)
 * and the bindings stay the same: under load many lines share it.
 */
const prefix = { level: NaN, iso: '', chindings: '', json: '' };

function prefixOf(l: PinoInternals, level: 'info' | 'error', iso: string): string {
  const value = l.levels.values[level]!;
  const chindings = l[pino.symbols.chindingsSym];
  if (value !== prefix.level || iso !== prefix.iso || chindings !== prefix.chindings) {
    prefix.level = value;
    prefix.iso = iso;
    prefix.chindings = chindings;
    prefix.json = `{"level":${value},"time":"${iso}"${chindings},"requestId":`;
  }
  return prefix.json;
}

/**
 * The access line from JSON segments: `shape.setStatus()` has been called
 * for this request; `bytesJson` is `shape.bytesJson()`. `iso` is the line's
 * time (isoNow(), the clock the process logger's own lines use): the
 * account stage passes the one it also gives the usage event.
 */
export function writeAccessSegments(
  logger: Logger,
  level: 'info' | 'error',
  iso: string,
  requestIdJson: string,
  shape: LineShape,
  pathJson: string,
  durationJson: string,
  upstreamJson: string,
  bytesJson: string,
): void {
  const l = logger as PinoInternals;
  l[pino.symbols.streamSym].write(
    `${prefixOf(l, level, iso)}${requestIdJson}${shape.accessWho}${pathJson}${shape.accessStatus}${durationJson},"upstreamMs":${upstreamJson}${bytesJson},"msg":"request"}\n`,
  );
}

/** The same line from plain fields (one-off lines, tests). */
export function writeAccessLine(logger: Logger, level: 'info' | 'error', f: AccessFields): void {
  const shape = new LineShape(f.tenant, null, f.apiKeyId, null, f.route, f.method, null);
  shape.setStatus(f.status, f.outcome, f.reason);
  writeAccessSegments(logger, level, isoNow(), str(f.requestId), shape, str(f.path), num(f.durationMs), num(f.upstreamMs), shape.bytesJson(f.bytesIn, f.bytesOut));
}
