/**
 * The wire protocol between the Redis store and ./limit.lua. A batch goes as
 * KEYS (each key once) and two arguments: the replica's id and ONE JSON array
 * of numbers (cjson decodes it in C, where many separate arguments would each
 * cost a conversion on both sides). The script answers an array of integers.
 *
 * LAYOUT is the one definition of the field order. This file encodes and
 * decodes with it; the script is this file's LAYOUT and BOUNDS written as Lua
 * tables, then ./wire.lua (which decodes and encodes with them), then
 * ./limit.lua. test/unit/limits/wire.test.ts runs both halves on a real
 * redis-server.
 */
import { readFileSync } from 'node:fs';
import { BOUNDS } from './bounds.js';
import type { LimitRequest } from './types.js';

export const LAYOUT = Object.freeze({
  // The arguments: `header`, then four lists, each led by its length: shapes, slots, refunds, runs.
  header: ['deadlineMs'],
  /** A shape's list lengths (concurrency: 0 or 1), followed by that many bucket, quota and concurrency records. */
  shape: ['buckets', 'quotas', 'concurrency'],
  bucket: ['key', 'perSecond', 'burst'],
  quota: ['key', 'limit', 'cost', 'resetAtS'],
  concurrency: ['key', 'limit', 'ttlMs'],
  slots: ['key', 'released', 'exact', 'ttlMs', 'lent'],
  refund: ['shape', 'n'],
  run: ['shape', 'count', 'want'],
  // The reply: `reply`, then (unless expired) one `slotsReply` per slots record and one `runReply` per run, each
  // run's followed by tokens x 1000 per bucket and units used per quota, before the run. The batch gives the lengths.
  reply: ['nowMs', 'expired'],
  slotsReply: ['lentBack'],
  runReply: ['admitted', 'rejected', 'index', 'retryAfterMs', 'granted'],
} as const);

/** A run's `rejected`: the limit that refused the first refused request, or why the run could not be checked. */
export const REJECTED = Object.freeze({ none: 0, rate: 1, quota: 2, concurrency: 3, invalid_limits: 4, unreadable_key: 5 } as const);

type Fields = readonly string[];
type Rec<F extends Fields> = Record<F[number], number>;

/** This replica's concurrency hash in one batch (./slots.ts). */
export interface WireSlots {
  readonly key: string;
  /** Slots freed since the last batch. */
  readonly released: number;
  /** This replica's exact count, or -1 (then `released` applies). */
  readonly exact: number;
  readonly ttlMs: number;
  /** Slots this replica holds unused (local credit) that this batch's runs may take first. */
  readonly lent: number;
}

export interface WireBatch {
  /** Redis time (epoch ms) after which the script does nothing; 0: none. */
  readonly deadlineMs: number;
  /** The limits the runs check (lease ids are not sent). */
  readonly shapes: readonly LimitRequest[];
  readonly slots: readonly WireSlots[];
  /** Unused local credit going back: `n` requests' worth of shape `shape` (an index into `shapes`). */
  readonly refunds: readonly { readonly shape: number; readonly n: number }[];
  /** Consecutive requests of one shape, and the local credit asked for with them (0: none; a top-up has `count` 0). */
  readonly runs: readonly { readonly shape: number; readonly count: number; readonly want: number }[];
}

export interface WireRunReply extends Rec<typeof LAYOUT.runReply> {
  /** Tokens per bucket before the run (to the thousandth). */
  readonly tokens: number[];
  /** Units used per quota before the run. */
  readonly used: number[];
}

export interface WireReply {
  /** Redis's clock when the script ran. */
  readonly nowMs: number;
  /** The script found its deadline passed and did nothing. */
  readonly expired: boolean;
  /** Per slots record: lent slots the runs did not take. */
  readonly lentBack: number[];
  readonly runs: WireRunReply[];
}

function put<F extends Fields>(out: number[], fields: F, rec: Rec<F>): void {
  for (const f of fields) out.push(rec[f as F[number]]);
}

/** KEYS and the numbers argument; key fields are 1-based KEYS indexes, shape fields 1-based shape indexes. */
export function encodeBatch(batch: WireBatch): { keys: string[]; numbers: string } {
  const keys: string[] = [];
  const indexes = new Map<string, number>();
  const k = (key: string): number => {
    let i = indexes.get(key);
    if (i === undefined) {
      keys.push(key);
      indexes.set(key, (i = keys.length));
    }
    return i;
  };
  const nums: number[] = [];
  put(nums, LAYOUT.header, { deadlineMs: batch.deadlineMs });
  nums.push(batch.shapes.length);
  for (const s of batch.shapes) {
    put(nums, LAYOUT.shape, { buckets: s.buckets.length, quotas: s.quotas.length, concurrency: s.concurrency === null ? 0 : 1 });
    for (const b of s.buckets) put(nums, LAYOUT.bucket, { key: k(b.key), perSecond: b.perSecond, burst: b.burst });
    for (const q of s.quotas) put(nums, LAYOUT.quota, { key: k(q.key), limit: q.limit, cost: q.cost, resetAtS: Math.ceil(q.resetAtMs / 1000) });
    const c = s.concurrency;
    if (c !== null) put(nums, LAYOUT.concurrency, { key: k(c.key), limit: c.limit, ttlMs: c.leaseTtlMs });
  }
  nums.push(batch.slots.length);
  for (const s of batch.slots) put(nums, LAYOUT.slots, { key: k(s.key), released: s.released, exact: s.exact, ttlMs: s.ttlMs, lent: s.lent });
  nums.push(batch.refunds.length);
  for (const r of batch.refunds) put(nums, LAYOUT.refund, { shape: r.shape + 1, n: r.n });
  nums.push(batch.runs.length);
  for (const r of batch.runs) put(nums, LAYOUT.run, { shape: r.shape + 1, count: r.count, want: r.want });
  // NaN and Infinity become null here, which the script refuses as a limit (that check fails alone).
  return { keys, numbers: JSON.stringify(nums) };
}

/** The script's answer to `batch`; throws if its length does not fit the batch. */
export function decodeReply(out: readonly number[], batch: WireBatch): WireReply {
  let o = 0;
  const next = (): number => {
    const v = out[o++];
    if (typeof v !== 'number') throw new Error(`limit wire: reply too short for its batch (${out.length} numbers)`);
    return v;
  };
  const take = <F extends Fields>(fields: F): Rec<F> => {
    const rec = {} as Rec<F>;
    for (const f of fields) rec[f as F[number]] = next();
    return rec;
  };
  const head = take(LAYOUT.reply);
  const reply: WireReply = { nowMs: head.nowMs, expired: head.expired !== 0, lentBack: [], runs: [] };
  if (reply.expired) return reply;
  for (let i = 0; i < batch.slots.length; i++) reply.lentBack.push(take(LAYOUT.slotsReply).lentBack);
  for (const run of batch.runs) {
    const shape = batch.shapes[run.shape]!;
    const rec = take(LAYOUT.runReply);
    const tokens: number[] = [];
    for (let i = 0; i < shape.buckets.length; i++) tokens.push(next() / 1000);
    const used: number[] = [];
    for (let i = 0; i < shape.quotas.length; i++) used.push(next());
    reply.runs.push({ ...rec, tokens, used });
  }
  if (o !== out.length) throw new Error(`limit wire: ${out.length - o} numbers left over in the reply`);
  return reply;
}

/** A value as a Lua literal (plain tables of names and numbers only). */
function luaValue(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '0/0';
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return `{${v.map(luaValue).join(', ')}}`;
  return `{${Object.entries(v as object).map(([k, x]) => `${k} = ${luaValue(x)}`).join(', ')}}`;
}

/** LAYOUT, BOUNDS and REJECTED as the Lua locals ./wire.lua and ./limit.lua read. */
export function luaPreamble(): string {
  return `local LAYOUT = ${luaValue(LAYOUT)}\nlocal BOUNDS = ${luaValue(BOUNDS)}\nlocal REJECTED = ${luaValue(REJECTED)}\n`;
}

const lua = (name: string): string => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

/** The Lua half of this protocol (decodeBatch, encodeReply), without the limit logic. */
export const WIRE_LUA = lua('wire.lua');

/** The whole limit script, as the store loads it. */
export const SCRIPT = `${luaPreamble()}${WIRE_LUA}${lua('limit.lua')}`;
