/**
 * The wire protocol between the Redis store and ./limit.lua. A batch goes as
 * KEYS (each key once) and two arguments: the replica's id and ONE JSON array
 * of numbers (cjson decodes it in C, where many separate arguments would each
 * cost a conversion on both sides). The script answers an array of integers.
 *
 * LAYOUT is the one definition of the field order: this file encodes and
 * decodes with it, and ./wire-lua.ts writes the script's decoder and encoder
 * from it, which ./limit.lua runs below. test/unit/limits/wire.test.ts runs
 * both halves on a real redis-server.
 */
import type { LimitRequest } from './types.js';

export const LAYOUT = Object.freeze({
  // The arguments: `header`, then four lists, each led by its length: shapes, slots, refunds, runs.
  header: ['deadlineMs'],
  /** A shape's list lengths, followed by that many bucket, quota and concurrency records. */
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

/** Each field's position in its record, from LAYOUT (so code names fields, and LAYOUT alone orders them). */
const positions = <F extends Fields>(fields: F): Rec<F> => Object.freeze(Object.fromEntries(fields.map((f, i) => [f, i]))) as Rec<F>;
const HEADER = positions(LAYOUT.header);
const SHAPE = positions(LAYOUT.shape);
const BUCKET = positions(LAYOUT.bucket);
const QUOTA = positions(LAYOUT.quota);
const CONCURRENCY = positions(LAYOUT.concurrency);
const SLOTS = positions(LAYOUT.slots);
const REFUND = positions(LAYOUT.refund);
const RUN = positions(LAYOUT.run);
const REPLY = positions(LAYOUT.reply);
const SLOTS_REPLY = positions(LAYOUT.slotsReply);
const RUN_REPLY = positions(LAYOUT.runReply);

/** Room for a record of `fields` at the end of `out`: its first position. */
function room(out: number[], fields: Fields): number {
  const at = out.length;
  for (let i = 0; i < fields.length; i++) out.push(0);
  return at;
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
  const n: number[] = [];
  let at = room(n, LAYOUT.header);
  n[at + HEADER.deadlineMs] = batch.deadlineMs;
  n.push(batch.shapes.length);
  for (const s of batch.shapes) {
    at = room(n, LAYOUT.shape);
    n[at + SHAPE.buckets] = s.buckets.length;
    n[at + SHAPE.quotas] = s.quotas.length;
    n[at + SHAPE.concurrency] = s.concurrency.length;
    for (const b of s.buckets) {
      at = room(n, LAYOUT.bucket);
      n[at + BUCKET.key] = k(b.key);
      n[at + BUCKET.perSecond] = b.perSecond;
      n[at + BUCKET.burst] = b.burst;
    }
    for (const q of s.quotas) {
      at = room(n, LAYOUT.quota);
      n[at + QUOTA.key] = k(q.key);
      n[at + QUOTA.limit] = q.limit;
      n[at + QUOTA.cost] = q.cost;
      n[at + QUOTA.resetAtS] = Math.ceil(q.resetAtMs / 1000);
    }
    for (const c of s.concurrency) {
      at = room(n, LAYOUT.concurrency);
      n[at + CONCURRENCY.key] = k(c.key);
      n[at + CONCURRENCY.limit] = c.limit;
      n[at + CONCURRENCY.ttlMs] = c.leaseTtlMs;
    }
  }
  n.push(batch.slots.length);
  for (const s of batch.slots) {
    at = room(n, LAYOUT.slots);
    n[at + SLOTS.key] = k(s.key);
    n[at + SLOTS.released] = s.released;
    n[at + SLOTS.exact] = s.exact;
    n[at + SLOTS.ttlMs] = s.ttlMs;
    n[at + SLOTS.lent] = s.lent;
  }
  n.push(batch.refunds.length);
  for (const r of batch.refunds) {
    at = room(n, LAYOUT.refund);
    n[at + REFUND.shape] = r.shape + 1;
    n[at + REFUND.n] = r.n;
  }
  n.push(batch.runs.length);
  for (const r of batch.runs) {
    at = room(n, LAYOUT.run);
    n[at + RUN.shape] = r.shape + 1;
    n[at + RUN.count] = r.count;
    n[at + RUN.want] = r.want;
  }
  // NaN and Infinity become null here, which the script refuses as a limit (that check fails alone).
  return { keys, numbers: JSON.stringify(n) };
}

/** The script's answer to `batch`; throws if its length does not fit the batch. */
export function decodeReply(out: readonly number[], batch: WireBatch): WireReply {
  const fits = (end: number): void => {
    if (end > out.length) throw new Error(`limit wire: reply too short for its batch (${out.length} numbers)`);
  };
  fits(LAYOUT.reply.length);
  const reply: WireReply = { nowMs: out[REPLY.nowMs]!, expired: out[REPLY.expired] !== 0, lentBack: [], runs: [] };
  let o = LAYOUT.reply.length;
  if (!reply.expired) {
    for (let i = 0; i < batch.slots.length; i++, o += LAYOUT.slotsReply.length) {
      fits(o + LAYOUT.slotsReply.length);
      reply.lentBack.push(out[o + SLOTS_REPLY.lentBack]!);
    }
    for (const run of batch.runs) {
      const shape = batch.shapes[run.shape]!;
      const nb = shape.buckets.length;
      const nq = shape.quotas.length;
      fits(o + LAYOUT.runReply.length + nb + nq);
      const tokens = new Array<number>(nb);
      const used = new Array<number>(nq);
      const t = o + LAYOUT.runReply.length;
      for (let i = 0; i < nb; i++) tokens[i] = out[t + i]! / 1000;
      for (let i = 0; i < nq; i++) used[i] = out[t + nb + i]!;
      reply.runs.push({
        admitted: out[o + RUN_REPLY.admitted]!,
        rejected: out[o + RUN_REPLY.rejected]!,
        index: out[o + RUN_REPLY.index]!,
        retryAfterMs: out[o + RUN_REPLY.retryAfterMs]!,
        granted: out[o + RUN_REPLY.granted]!,
        tokens,
        used,
      });
      o = t + nb + nq;
    }
  }
  if (o !== out.length) throw new Error(`limit wire: ${out.length - o} numbers left over in the reply`);
  return reply;
}
