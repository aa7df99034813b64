/**
 * Per-tenant usage totals over a date range, read back from what the file or
 * redis-stream sink wrote (`tenantgate usage report`). Delivery is
 * at-least-once, so events are de-duplicated by `id`; only request events
 * count (quota warnings and other types are skipped). CloudEvents lines
 * (`format: cloudevents`) are read through their `data`.
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { connectRedis } from '../redis/connect.js';
import type { RedisTls } from '../redis/tls.js';
import { rotatedNumbers } from './sinks/file.js';

export interface TenantTotals {
  tenant: string;
  requests: number;
  cost: number;
  bytesIn: number;
  bytesOut: number;
  /** Requests whose outcome is not `forwarded`. */
  rejections: number;
}

/** Shown for requests rejected before a tenant was known. */
export const NO_TENANT = '-';
const DAY_MS = 86_400_000;
/** Stream entry ids carry Redis's clock, not the proxy's: start reading this much before `from`. */
const CLOCK_SKEW_MS = DAY_MS;
const PAGE = 1000;

const zero = (tenant: string): TenantTotals => ({ tenant, requests: 0, cost: 0, bytesIn: 0, bytesOut: 0, rejections: 0 });
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export class UsageReport {
  private readonly seen = new Set<string>();
  private readonly totals = new Map<string, TenantTotals>();
  /** Lines that are not a JSON object with an id and a valid ts. */
  malformed = 0;
  duplicates = 0;

  /** `fromMs` inclusive, `toMs` exclusive; `tenant` null = all. */
  constructor(
    readonly fromMs: number,
    readonly toMs: number,
    private readonly tenant: string | null,
  ) {}

  add(line: string): void {
    if (line.trim() === '') return;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
      // A sink with `format: cloudevents` wrote envelopes: the §7 event is their `data`.
      if (e?.specversion === '1.0' && typeof e.data === 'object' && e.data !== null) e = e.data as Record<string, unknown>;
    } catch {
      this.malformed++;
      return;
    }
    const ts = typeof e?.ts === 'string' ? Date.parse(e.ts) : NaN;
    if (typeof e?.id !== 'string' || Number.isNaN(ts)) {
      this.malformed++;
      return;
    }
    if ((e.type ?? 'request') !== 'request' || ts < this.fromMs || ts >= this.toMs) return;
    const tenant = typeof e.tenantId === 'string' ? e.tenantId : NO_TENANT;
    if (this.tenant !== null && tenant !== this.tenant) return;
    if (this.seen.has(e.id)) {
      this.duplicates++;
      return;
    }
    this.seen.add(e.id);
    let t = this.totals.get(tenant);
    if (t === undefined) this.totals.set(tenant, (t = zero(tenant)));
    t.requests++;
    t.cost += num(e.cost);
    t.bytesIn += num(e.bytesIn);
    t.bytesOut += num(e.bytesOut);
    if (e.outcome !== 'forwarded') t.rejections++;
  }

  result(): { tenants: TenantTotals[]; total: TenantTotals } {
    const tenants = [...this.totals.values()].sort((a, b) => a.tenant.localeCompare(b.tenant));
    const total = zero('TOTAL');
    for (const t of tenants) {
      total.requests += t.requests;
      total.cost += t.cost;
      total.bytesIn += t.bytesIn;
      total.bytesOut += t.bytesOut;
      total.rejections += t.rejections;
    }
    return { tenants, total };
  }
}

/** Feeds `path` and its rotated `path.N` files to the report; throws if none exists. */
export async function readUsageFiles(path: string, report: UsageReport): Promise<number> {
  const files = (await rotatedNumbers(path)).map((n) => `${path}.${n}`);
  if (await access(path).then(() => true, () => false)) files.push(path);
  if (files.length === 0) throw new Error(`${path}: no such file (nor ${path}.1, …)`);
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) report.add(line);
  }
  return files.length;
}

/** Feeds the stream's entries (field `event`) to the report, a page at a time. */
export async function readUsageStream(target: string | readonly string[], stream: string, report: UsageReport, tls: RedisTls | null = null): Promise<void> {
  const options = { lazyConnect: true, connectTimeout: 5000, commandTimeout: 30_000, maxRetriesPerRequest: 0, retryStrategy: () => null };
  const redis = connectRedis(target, options, { lazyConnect: true, clusterRetryStrategy: () => null }, tls);
  redis.on('error', () => undefined); // surfaced by the failing command instead
  try {
    await redis.connect();
    let start = String(Math.max(0, report.fromMs - CLOCK_SKEW_MS));
    for (;;) {
      const entries = await redis.xrange(stream, start, '+', 'COUNT', PAGE);
      for (const [, fields] of entries) {
        const i = fields.indexOf('event');
        if (i >= 0 && i % 2 === 0) report.add(fields[i + 1] ?? '');
        else report.malformed++;
      }
      if (entries.length < PAGE) break;
      start = `(${entries.at(-1)![0]}`;
    }
  } finally {
    redis.disconnect();
  }
}
