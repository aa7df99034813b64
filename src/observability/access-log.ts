/**
 * The access log line (one per request), written straight to the logger's
 * destination in pino's own line format — level, time, the logger's bindings,
 * the fields, `msg` last — so it reads exactly like every other line. The
 * fields are written one by one (./json-fields.ts) rather than by pino's
 * generic serializer (a key loop with per-value escaping and the redaction
 * wrapper) or JSON.stringify: ~0.7 µs less per line, measured here. No header
 * object is ever part of it, so there is nothing to redact.
 */
import { pino, type Logger } from 'pino';
import { jsonNumber as num, jsonString as str, jsonToken as tok } from './json-fields.js';

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
  [pino.symbols.timeSym]: () => string;
  [pino.symbols.chindingsSym]: string;
};

export function writeAccessLine(logger: Logger, level: 'info' | 'error', f: AccessFields): void {
  const l = logger as PinoInternals;
  l[pino.symbols.streamSym].write(
    `{"level":${logger.levels.values[level]}${l[pino.symbols.timeSym]()}${l[pino.symbols.chindingsSym]},"requestId":${str(f.requestId)},"tenant":${tok(f.tenant)},"apiKeyId":${tok(f.apiKeyId)},"route":${tok(f.route)},"method":${tok(f.method)},"path":${str(f.path)},"status":${num(f.status)},"outcome":${tok(f.outcome)},"reason":${tok(f.reason)},"durationMs":${num(f.durationMs)},"upstreamMs":${num(f.upstreamMs)},"bytesIn":${num(f.bytesIn)},"bytesOut":${num(f.bytesOut)},"msg":"request"}\n`,
  );
}
