/**
 * Admin API — a tenant's usage: the current day's and month's quota use from
 * the limit store's counters, and totals over `?from=&to=` read back from the
 * usage sink (a redis-stream sink, else a file sink) where one is configured.
 */
import type { AdminContext, Reply } from './context.js';
import { AdminError } from './http.js';
import { currentUsage, findTenant } from './tenants.js';
import { readUsageFiles, readUsageStream, UsageReport } from '../usage/report.js';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** `YYYY-MM-DD` (a whole UTC day; `to` includes it) or an ISO date-time. */
function parseTime(name: string, value: string, end: boolean): number {
  const ms = Date.parse(DAY.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(ms)) throw new AdminError('bad_request', `${name} must be YYYY-MM-DD or an ISO date-time.`);
  return DAY.test(value) && end ? ms + 86_400_000 : ms;
}

export async function tenantUsage(ctx: AdminContext): Promise<Reply> {
  const tenant = findTenant(ctx, ctx.params.id!);
  const now = new Date();
  const from = ctx.query.get('from');
  const to = ctx.query.get('to');
  const fromMs = from === null ? Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) : parseTime('from', from, false);
  const toMs = to === null ? now.getTime() : parseTime('to', to, true);
  if (toMs <= fromMs) throw new AdminError('bad_request', 'to must be after from.');

  const current = await currentUsage(ctx, tenant.id);
  const source = ctx.state.config.source;
  const stream = source.usage.sinks.find((s) => s.type === 'redis-stream');
  const file = source.usage.sinks.find((s) => s.type === 'file');
  const url = stream?.type === 'redis-stream' ? (stream.url ?? (typeof source.store.redis === 'string' ? source.store.redis : null)) : null;
  let range: Record<string, unknown> | null = null;
  const report = new UsageReport(fromMs, toMs, tenant.id);
  try {
    if (stream?.type === 'redis-stream' && url !== null) {
      await readUsageStream(url, stream.stream, report);
      range = { sink: stream.name };
    } else if (file?.type === 'file') {
      await readUsageFiles(file.path, report).catch((err: Error) => {
        if (!/no such file/.test(err.message)) throw err;
      });
      range = { sink: file.name };
    }
  } catch (err) {
    throw new AdminError('store_unavailable', `The usage sink could not be read: ${(err as Error).message.replace(/\/\/[^@/]*@/, '//')}`);
  }
  if (range !== null) {
    const { total } = report.result();
    const { tenant: _t, ...totals } = total;
    range = { ...range, ...totals };
  }
  return {
    status: 200,
    body: { tenant: tenant.id, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), quota: current, totals: range },
  };
}
