/**
 * `tenantgate usage report --from <YYYY-MM-DD> --to <YYYY-MM-DD> [--tenant <id>]
 * [--json] (--file <path> | --redis <url> --stream <name> | -c <config> [--sink <name>])`
 *
 * Per-tenant totals (requests, cost, bytesIn, bytesOut, rejections) of the
 * request events whose `ts` falls in [from 00:00Z, to 24:00Z), read from a
 * file sink's output (with its rotated `path.N` files) or a redis-stream
 * sink's stream, de-duplicated by `id`. With `-c`, the sink is the config's
 * (`--sink` names it, else the first file or redis-stream sink), read with
 * the config's Redis URL and `store.tls`. Exit 0 with the report, 2 for bad
 * arguments, 1 if the config or the source cannot be read.
 */
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import type { RedisTls } from '../redis/tls.js';
import { readUsageFiles, readUsageStream, UsageReport, type TenantTotals } from '../usage/report.js';
import { processIo, runCommand, runGroup, UsageError, type Io, type Values } from './args.js';
import { USAGE, USAGE_REPORT } from './commands.js';

const COLUMNS = ['requests', 'cost', 'bytesIn', 'bytesOut', 'rejections'] as const;

type Source = { kind: 'file'; path: string } | { kind: 'stream'; target: string | readonly string[]; stream: string; tls: RedisTls | null };

/** The config's sink to read (named, else its first file or redis-stream sink), or why there is none. */
async function sinkOfConfig(file: string, name: string | undefined): Promise<Source | string> {
  let config;
  try {
    config = await loadConfig(file);
  } catch (e) {
    return e instanceof ConfigError ? `invalid config:\n${e.problems.map(formatProblem).join('\n')}` : `cannot load ${file}: ${(e as Error).message}`;
  }
  const sinks = config.source.usage.sinks;
  const sink = name === undefined ? sinks.find((s) => s.type === 'file' || s.type === 'redis-stream') : sinks.find((s) => s.name === name);
  if (sink === undefined) {
    const names = sinks.map((s) => `${s.name} (${s.type})`).join(', ') || 'none';
    return name === undefined ? `${file} has no file or redis-stream sink to read (sinks: ${names})` : `${file} has no sink named "${name}" (sinks: ${names})`;
  }
  switch (sink.type) {
    case 'file':
      return { kind: 'file', path: sink.path };
    case 'redis-stream': {
      const target = sink.url ?? config.source.store.redis;
      if (target === null) return `sink "${sink.name}" has no Redis to read: it sets no url, and store.redis is empty`;
      return { kind: 'stream', target, stream: sink.stream, tls: config.redisTls };
    }
    case 'http':
      return `sink "${sink.name}" is an http sink: its events are with ${sink.url}, not readable from here`;
    case 'nats':
      return `sink "${sink.name}" is a nats sink: its events are in the JetStream stream ${sink.stream}, not readable from here`;
  }
}

/** Where the command writes; defaults to the process (tests inject their own). */
export interface UsageIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

/** Midnight UTC of a YYYY-MM-DD that is a real date, else null. */
function day(value: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  const ms = Date.parse(`${value}T00:00:00Z`);
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value ? null : ms;
}

function table(rows: TenantTotals[]): string {
  const cells = [['tenant', ...COLUMNS], ...rows.map((r) => [r.tenant, ...COLUMNS.map((c) => String(r[c]))])];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n') + '\n';
}

export async function runUsage(argv: string[], io: UsageIo = {}): Promise<number> {
  const o = processIo(io);
  return runGroup(USAGE, argv, o, (_sub, rest) => runCommand(USAGE_REPORT, rest, o, ({ values }) => report(values, o)));
}

type ReportValues = Values<(typeof USAGE_REPORT)['flags']>;

async function report(values: ReportValues, o: Io): Promise<number> {
  const fail = (message: string): never => {
    throw new UsageError(message);
  };
  const from = day(values.from);
  const to = day(values.to);
  if (from === null) return fail(`--from "${values.from}": must be a date YYYY-MM-DD`);
  if (to === null) return fail(`--to "${values.to}": must be a date YYYY-MM-DD`);
  if (to < from) return fail('--to is before --from');
  const fromFile = values.file !== undefined;
  const fromRedis = values.redis !== undefined || values.stream !== undefined;
  const fromConfig = values.config !== undefined;
  if (Number(fromFile) + Number(fromRedis) + Number(fromConfig) !== 1) return fail('give one of --file <path>, --redis <url> --stream <name>, or -c <config>');
  if (values.sink !== undefined && !fromConfig) return fail('--sink goes with -c <config>');
  if (fromRedis && (values.redis === undefined || values.stream === undefined)) return fail('--redis and --stream go together');
  if (fromRedis && !/^rediss?:\/\//.test(values.redis!)) return fail(`--redis "${values.redis}": must be a redis:// or rediss:// URL`);

  let source: Source = fromFile ? { kind: 'file', path: values.file! } : { kind: 'stream', target: values.redis!, stream: values.stream!, tls: null };
  if (fromConfig) {
    const chosen = await sinkOfConfig(values.config!, values.sink);
    if (typeof chosen === 'string') {
      o.err(`tenantgate usage: ${chosen}\n`);
      return 1;
    }
    source = chosen;
  }

  // --to is inclusive: the range ends at the midnight after it.
  const report = new UsageReport(from, to + 86_400_000, values.tenant ?? null);
  try {
    if (source.kind === 'file') await readUsageFiles(source.path, report);
    else await readUsageStream(source.target, source.stream, report, source.tls);
  } catch (e) {
    // The URL may carry a password: show it without.
    const where = source.kind === 'file' ? source.path : `stream "${source.stream}" at ${[source.target].flat().join(', ').replace(/\/\/[^@/]*@/g, '//')}`;
    o.err(`tenantgate usage: cannot read ${where}: ${(e as Error).message}\n`);
    return 1;
  }
  if (report.malformed > 0) o.err(`tenantgate usage: skipped ${report.malformed} line(s) that are not usage events\n`);

  const { tenants, total } = report.result();
  if (values.json) {
    o.out(`${JSON.stringify({ from: values.from, to: values.to, tenant: values.tenant ?? null, tenants, total, duplicates: report.duplicates })}\n`);
    return 0;
  }
  o.out(table([...tenants, total]));
  return 0;
}
