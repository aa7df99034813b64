/**
 * `tenantgate usage report` over a file sink's output: duplicates counted
 * once, rejections, non-request events and other days skipped, rotated files
 * included, the tenant filter, JSON output and argument errors.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runUsage } from '../../../src/cli/usage.js';
import { makeEvents } from '../../helpers/usage-sinks.js';

let dir: string;
let path: string;

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runUsage(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

const nd = (events: object[]) => events.map((e) => `${JSON.stringify(e)}\n`).join('');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tg-report-'));
  path = join(dir, 'usage.ndjson');
  const acme = makeEvents(5, 'a', { ts: '2026-11-24T23:59:59.999Z', cost: 2, bytesIn: 10, bytesOut: 100 });
  const globex = makeEvents(3, 'g', { tenantId: 'globex', ts: '2026-11-25T00:00:00Z', cost: 1, bytesIn: 1, bytesOut: 7 });
  const rejected = makeEvents(2, 'r', { tenantId: 'globex', ts: '2026-11-25T08:00:00+02:00', outcome: 'rate_limited', status: 429, cost: 0, bytesIn: 0, bytesOut: 50 });
  const anonymous = makeEvents(1, 'n', { tenantId: null, outcome: 'unauthenticated', status: 401, cost: 0, bytesIn: 0, bytesOut: 40 });
  const outside = [...makeEvents(2, 'old', { ts: '2026-11-22T23:59:59Z' }), ...makeEvents(2, 'new', { ts: '2026-11-26T00:00:00Z' })];
  const warning = { id: 'w1', ts: '2026-11-24T10:00:00Z', type: 'quota_warning', tenantId: 'acme', quota: 'daily', threshold: 0.8, used: 80, limit: 100, period: '2026-11-24' };
  // Oldest in path.2; duplicates (a batch sent twice) across files and within one.
  await writeFile(`${path}.2`, nd([...acme.slice(0, 3), ...outside.slice(0, 2)]));
  await writeFile(`${path}.1`, nd([...acme.slice(2), warning, ...globex]) + 'not json\n');
  await writeFile(path, nd([...globex.slice(1), ...rejected, ...rejected, ...anonymous, ...outside.slice(2)]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('usage report', () => {
  it('prints per-tenant totals, de-duplicated, over the rotated files too', async () => {
    const { code, out, err } = await run('report', '--from', '2026-11-23', '--to', '2026-11-25', '--file', path);
    expect(code).toBe(0);
    expect(err).toMatch(/skipped 1 line/);
    const rows = out.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(rows).toEqual([
      ['tenant', 'requests', 'cost', 'bytesIn', 'bytesOut', 'rejections'],
      ['-', '1', '0', '0', '40', '1'],
      ['acme', '5', '10', '50', '500', '0'],
      ['globex', '5', '3', '3', '121', '2'],
      ['TOTAL', '11', '13', '53', '661', '3'],
    ]);
  });

  it('filters by tenant and prints JSON', async () => {
    const { code, out } = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '--tenant', 'globex', '--json', '--file', path);
    expect(code).toBe(0);
    const report = JSON.parse(out) as { tenants: unknown[]; total: Record<string, unknown>; duplicates: number };
    expect(report.tenants).toEqual([{ tenant: 'globex', requests: 5, cost: 3, bytesIn: 3, bytesOut: 121, rejections: 2 }]);
    expect(report.total).toMatchObject({ requests: 5, rejections: 2 });
    expect(report.duplicates).toBe(4);
  });

  it('a day range is whole UTC days: --from and --to the same day', async () => {
    const { out } = await run('report', '--from', '2026-11-24', '--to', '2026-11-24', '--json', '--file', path);
    expect((JSON.parse(out) as { total: { requests: number } }).total.requests).toBe(5);
  });

  it.each([
    [['report', '--to', '2026-11-25', '--file', 'x'], /--from <YYYY-MM-DD> is required/],
    [['report', '--from', '2026-02-30', '--to', '2026-11-25', '--file', 'x'], /--from "2026-02-30"/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-24', '--file', 'x'], /--to is before --from/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-25'], /give one of --file <path>, --redis <url> --stream <name>, or -c <config>/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-25', '--file', 'x', '-c', 'y.yaml'], /give one of/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-25', '--file', 'x', '--sink', 'file-1'], /--sink goes with -c/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-25', '--redis', 'redis://127.0.0.1:1'], /go together/],
    [['report', '--from', '2026-11-25', '--to', '2026-11-25', '--file', 'x', '--bogus'], /Unknown option/],
    [['summary'], /unknown subcommand "summary"/],
  ])('bad arguments exit 2: %j', async (argv, message) => {
    const { code, out, err } = await run(...argv);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(message);
  });

  it('-c reads the sink the config names (--sink), else its first file or redis-stream sink', async () => {
    const config = join(dir, 'tenantgate.yaml');
    await writeFile(
      config,
      `usage:
  spoolDir: ${join(dir, 'spool')}
  sinks:
    - { type: http, url: "http://127.0.0.1:1/usage" }
    - { type: file, name: billing, path: "${path}" }
routes:
  - { name: a, match: {}, upstream: "http://127.0.0.1:3000" }
`,
    );
    const byFile = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '--tenant', 'globex', '--json', '--file', path);
    for (const argv of [['-c', config], ['-c', config, '--sink', 'billing']]) {
      const { code, out } = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '--tenant', 'globex', '--json', ...argv);
      expect(code).toBe(0);
      expect(out).toBe(byFile.out);
    }
    const http = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '-c', config, '--sink', 'http-0');
    expect(http.code).toBe(1);
    expect(http.err).toMatch(/sink "http-0" is an http sink: its events are with http:\/\/127\.0\.0\.1:1\/usage, not readable from here/);
    const unknown = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '-c', config, '--sink', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/has no sink named "nope" \(sinks: http-0 \(http\), billing \(file\)\)/);
    const invalid = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '-c', join(dir, 'missing.yaml'));
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(/invalid config:\n.*missing\.yaml \(document\): cannot read file: ENOENT/);
  });

  it('a missing file exits 1', async () => {
    const { code, err } = await run('report', '--from', '2026-11-25', '--to', '2026-11-25', '--file', join(dir, 'nope.ndjson'));
    expect(code).toBe(1);
    expect(err).toMatch(/no such file/);
  });
});
