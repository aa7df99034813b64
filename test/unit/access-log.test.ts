/**
 * The hand-built access line must read exactly like pino's own line for the
 * same fields: same keys in the same order, same values, valid JSON.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { accessLogFor, writeAccessLine, type AccessFields } from '../../src/observability/access-log.js';
import { ROOT } from '../helpers/servers.js';

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

const CHUNK_SCRIPT = `
const load = (m) => import(${JSON.stringify(`${ROOT}/dist/observability/`)} + m);
const { createLogger } = await load('logger.js');
const { accessLogFor } = await load('access-log.js');
const { LineShape } = await load('line-shape.js');
const captured = [];
// The process logger (stdout: lines written into its chunk) and a destination that takes strings, same bindings.
const logs = [accessLogFor(createLogger('info')), accessLogFor(createLogger('info', { write: (s) => void captured.push(s) }))];
const shapes = [new LineShape('acme', 'web', 'ak_1', null, 'orders', 'GET', 'pro'), new LineShape('t"é', null, null, 'sub\\n', null, 'POST', null)];
let seed = 7;
const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
for (let i = 0; i < 5000; i++) {
  const shape = shapes[i % 2];
  shape.setStatus([200, 404, 503][i % 3], ['forwarded', 'no_route', 'upstream_unavailable'][i % 3], i % 3 === 2 ? 'ECONNREFUSED' : null);
  // Paths: plain, escaped, non-ASCII, one longer than a chunk (built aside, written on its own), some that fill chunks.
  const path = i === 4000 ? '/big/' + 'x'.repeat(40000) : i % 250 === 0 ? '/long/' + 'y'.repeat(9000) : ['/orders/' + i, '/a"b\\\\c', '/caf\\u00e9/\\ud83d\\udca1', '/\\ud800'][i % 4];
  const up = i % 5 === 0 ? null : random() * 20;
  const duration = random() * 2000;
  for (const log of logs) log.write(i % 3 === 2 ? 'error' : 'info', new Date(1_764_000_000_000 + i).toISOString(), i % 7 === 0 ? 'req "' + i + '"' : 'id-' + i, shape, path, duration, up, i % 11, i * 13);
}
(await import('node:fs')).writeFileSync(process.argv[1], captured.join(''));
process.exit(0);
`;

describe('AccessLog.write', () => {
  it('writes into the stdout chunk the very bytes it hands a destination that takes strings, every line, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    try {
      const file = join(dir, 'captured.ndjson');
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', CHUNK_SCRIPT, file], { maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' });
      const captured = readFileSync(file);
      expect(stdout.length).toBe(captured.length);
      expect(stdout.equals(captured)).toBe(true);
      const lines = captured.toString().trimEnd().split('\n').map((l) => JSON.parse(l) as { path: string; requestId: string });
      expect(lines).toHaveLength(5000);
      expect(lines[4000]!.path).toHaveLength(40005);
      expect(lines[7]!.requestId).toBe('req "7"');
      expect(lines[2]!.path).toBe('/caf\u00e9/\ud83d\udca1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
