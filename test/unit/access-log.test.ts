/**
 * The hand-built access line must read exactly like pino's own line for the
 * same fields: same keys in the same order, same values, valid JSON.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LineShape } from '../../src/observability/line-shape.js';
import { createLogger } from '../../src/observability/logger.js';
import { accessLogFor, writeAccessLine, type AccessFields } from '../../src/observability/access-log.js';

const fields: AccessFields = {
  requestId: 'dff3fcdf-1552-4d19-9393-9cd4c742119d',
  tenant: 'acme',
  apiKeyId: 'ak_1',
  route: 'orders',
  method: 'GET',
  path: '/orders/"quoted"\\and\u2028more',
  status: 200,
  outcome: 'forwarded',
  reason: null,
  durationMs: 1.234,
  upstreamMs: null,
  bytesIn: 0,
  bytesOut: 512,
};

function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger('info', { write: (s: string) => void lines.push(s) }) };
}

/** Our line and pino's for the same fields: both parse, same keys in the same order, same values (time aside). */
function compareWithPino(level: 'info' | 'error', f: AccessFields): { line: string; parsed: Record<string, unknown> } {
  const ours = capture();
  writeAccessLine(ours.logger, level, f);
  const theirs = capture();
  theirs.logger[level]({ ...f }, 'request');
  expect(ours.lines).toHaveLength(1);
  expect(ours.lines[0]!.endsWith('\n')).toBe(true);
  const a = JSON.parse(ours.lines[0]!) as Record<string, unknown>;
  const b = JSON.parse(theirs.lines[0]!) as Record<string, unknown>;
  delete a.time;
  delete b.time;
  expect(Object.keys(a)).toEqual(Object.keys(b));
  expect(a).toEqual(b);
  return { line: ours.lines[0]!, parsed: a };
}

describe('writeAccessLine', () => {
  it.each(['info', 'error'] as const)('matches pino\'s own %s line for the same fields', (level) => {
    compareWithPino(level, fields);
  });

  it('escapes what needs escaping in every string field, and writes non-finite numbers as null, like pino', () => {
    const tricky: AccessFields = {
      ...fields,
      requestId: 'req "1"\\n',
      tenant: null,
      route: 'r\u0000\u001f',
      path: '/caf\u00e9/\ud83d\udca1/\ud800',
      outcome: 'x\ty',
      reason: 'why\nnot',
      durationMs: NaN,
      upstreamMs: Infinity,
    };
    const { line, parsed } = compareWithPino('info', tricky);
    expect(parsed.durationMs).toBeNull();
    // A lone surrogate is escaped (well-formed JSON, as JSON.stringify writes it); pino writes it raw.
    expect(line).toContain('\\ud800');
    expect(line).toContain(`"path":${JSON.stringify(tricky.path)}`);
  });
});

describe('AccessLog', () => {
  it('is one per logger, and follows the logger\'s level as it changes (a config reload sets it)', () => {
    const { logger } = capture();
    const log = accessLogFor(logger);
    expect(accessLogFor(logger)).toBe(log);
    const seen = () => [log.enabled('info'), log.enabled('error')];
    expect(seen()).toEqual([true, true]);
    logger.level = 'error';
    expect(seen()).toEqual([false, true]);
    logger.level = 'silent';
    expect(seen()).toEqual([false, false]);
    logger.level = 'debug';
    expect(seen()).toEqual([true, true]);
    logger.level = 'warn';
    expect(seen()).toEqual([false, true]);
  });
});

describe('AccessLog.write with a bare request id', () => {
  it('writes the same line as with the id as JSON: the segments around it carry its quotes', () => {
    const a = capture();
    const b = capture();
    const shape = new LineShape('acme', null, 'ak_1', null, 'orders', 'GET', null);
    shape.setStatus(200, 'forwarded', null);
    const id = randomUUID();
    for (const [logger, requestId, bare] of [[a.logger, id, true], [b.logger, JSON.stringify(id), false]] as const) {
      accessLogFor(logger).write('info', '2026-12-01T00:00:00.000Z', requestId, bare, shape, '"/orders"', '1.5', 'null', shape.bytesJson(0, 2));
    }
    expect(a.lines).toEqual(b.lines);
    expect(JSON.parse(a.lines[0]!)).toMatchObject({ requestId: id, tenant: 'acme', path: '/orders' });
  });
});
