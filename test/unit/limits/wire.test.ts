/**
 * The wire protocol (src/limits/wire.ts, wire-lua.ts) both ways, on a real redis-server:
 * what TypeScript encodes is what the Lua side decodes, and what the Lua
 * side encodes is what TypeScript decodes. The Lua half runs alone here
 * (WIRE_LUA, no limit logic), so a mismatch in the field layout shows as a
 * difference of fields, not as a wrong limit.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOUNDS } from '../../../src/limits/bounds.js';
import type { LimitRequest } from '../../../src/limits/types.js';
import { WIRE_LUA } from '../../../src/limits/wire-lua.js';
import { decodeReply, encodeBatch, LAYOUT, REJECTED, type WireBatch, type WireReply } from '../../../src/limits/wire.js';
import { RedisServer } from '../../helpers/redis.js';

const redis = new RedisServer();
let client: Redis;

beforeAll(async () => {
  await redis.start();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.kill();
});

/** Runs `body` after the protocol's Lua half. */
const lua = (body: string, keys: string[], args: string[]) => client.eval(`${WIRE_LUA}${body}`, keys.length, ...keys, ...args);

const full: LimitRequest = {
  buckets: [
    { key: 'tg:{acme}:b:t', perSecond: 2.5, burst: 10 },
    { key: 'tg:{acme}:b:k:ak_1', perSecond: 0.001, burst: 3 },
  ],
  quotas: [
    { key: 'tg:{acme}:q:d:20260601', kind: 'quota_daily', limit: 1000, cost: 3, resetAtMs: 1_780_358_400_000 },
    { key: 'tg:{acme}:q:m:202606', kind: 'quota_monthly', limit: 30000, cost: 3, resetAtMs: 1_782_864_000_500 },
  ],
  concurrency: [
    { key: 'tg:{acme}:cr', limit: 20, leaseId: 'not sent', leaseTtlMs: 30_000 },
    { key: 'tg:{acme}:n:jobs:c:p:p1', name: 'jobs', limit: 5, leaseId: 'not sent', leaseTtlMs: 30_000 },
  ],
};
/** Shares the tenant bucket with `full` (its key goes once in KEYS). */
const bucketOnly: LimitRequest = { buckets: [full.buckets[0]!], quotas: [], concurrency: [] };

const batch: WireBatch = {
  deadlineMs: 1_780_300_000_123,
  shapes: [full, bucketOnly],
  slots: [{ key: 'tg:{acme}:cr', released: 2, exact: -1, ttlMs: 30_000, lent: 4 }],
  refunds: [{ shape: 1, n: 7 }],
  runs: [
    { shape: 0, count: 5, want: 16 },
    { shape: 1, count: 1, want: 0 },
    { shape: 0, count: 0, want: 32 },
  ],
};

describe('the limit wire protocol', () => {
  it('TypeScript encodes what the Lua side decodes: every field by its name, keys by their names', async () => {
    const { keys, numbers } = encodeBatch(batch);
    expect(keys).toEqual(['tg:{acme}:b:t', 'tg:{acme}:b:k:ak_1', 'tg:{acme}:q:d:20260601', 'tg:{acme}:q:m:202606', 'tg:{acme}:cr', 'tg:{acme}:n:jobs:c:p:p1']);
    const decoded = JSON.parse((await lua('return cjson.encode(decodeBatch())', keys, ['replica', numbers])) as string);
    const shape = (r: LimitRequest) => ({
      buckets: r.buckets.length,
      quotas: r.quotas.length,
      concurrency: r.concurrency.length,
      b: r.buckets.map(({ key, perSecond, burst }) => ({ key, perSecond, burst })),
      q: r.quotas.map(({ key, limit, cost, resetAtMs }) => ({ key, limit, cost, resetAtS: Math.ceil(resetAtMs / 1000) })),
      c: r.concurrency.map((c) => ({ key: c.key, limit: c.limit, ttlMs: c.leaseTtlMs })),
    });
    // cjson writes an empty Lua table as {}.
    const emptyAsObject = (s: ReturnType<typeof shape>) => ({ ...s, b: s.b.length === 0 ? {} : s.b, q: s.q.length === 0 ? {} : s.q, c: s.c.length === 0 ? {} : s.c });
    expect(decoded).toEqual({
      deadlineMs: batch.deadlineMs,
      shapes: batch.shapes.map((s) => emptyAsObject(shape(s))),
      slots: batch.slots,
      // Shape indexes are 1-based on the wire.
      refunds: batch.refunds.map((r) => ({ ...r, shape: r.shape + 1 })),
      runs: batch.runs.map((r) => ({ ...r, shape: r.shape + 1 })),
    });
  });

  it('the Lua side encodes what TypeScript decodes: per slots record, per run, tokens (to the thousandth) and quota use', async () => {
    const reply: WireReply = {
      nowMs: 1_780_300_000_100,
      expired: false,
      lentBack: [3],
      runs: [
        { admitted: 4, rejected: REJECTED.rate, index: 2, retryAfterMs: 1000, granted: 0, tokens: [9.5, 3], used: [12, 300] },
        { admitted: 1, rejected: REJECTED.none, index: 0, retryAfterMs: 0, granted: 0, tokens: [5.125], used: [] },
        { admitted: 0, rejected: REJECTED.none, index: 0, retryAfterMs: 0, granted: 24, tokens: [5.25, 2.75], used: [24, 312] },
      ],
    };
    // The same reply as the script builds it (./limit.lua): Lua tables keyed by LAYOUT's names.
    const asLua = { nowMs: reply.nowMs, expired: 0, slots: reply.lentBack.map((lentBack) => ({ lentBack })), runs: reply.runs };
    const out = (await lua('return encodeReply(cjson.decode(ARGV[1]))', [], [JSON.stringify(asLua)])) as number[];
    expect(out).toHaveLength(LAYOUT.reply.length + LAYOUT.slotsReply.length + 3 * LAYOUT.runReply.length + 2 + 2 + 1 + 0 + 2 + 2);
    expect(decodeReply(out, batch)).toEqual(reply);
  });

  it('an expired batch answers its header alone, and decodes as expired with nothing else', async () => {
    const out = (await lua('return encodeReply({ nowMs = 1780300000200, expired = 1 })', [], [])) as number[];
    expect(out).toEqual([1_780_300_000_200, 1]);
    expect(decodeReply(out, batch)).toEqual({ nowMs: 1_780_300_000_200, expired: true, lentBack: [], runs: [] });
  });

  it('a reply that does not fit its batch is refused, not misread', () => {
    const short = [1, 0, 3, 4, 0, 0, 1000, 0];
    expect(() => decodeReply(short, batch)).toThrow(/too short/);
    const { keys } = encodeBatch(batch);
    expect(keys).toHaveLength(6);
    const long = [1, 0, 0, ...Array.from({ length: 5 + 4 }, () => 0), ...Array.from({ length: 5 + 1 }, () => 0), ...Array.from({ length: 5 + 4 }, () => 0), 7];
    expect(() => decodeReply(long, batch)).toThrow(/left over/);
  });

  it('a key index outside KEYS, or numbers left over, is an error of the whole script (a bug here, not a check to skip)', async () => {
    const { keys, numbers } = encodeBatch(batch);
    await expect(lua('return cjson.encode(decodeBatch())', keys.slice(0, 2), ['replica', numbers])).rejects.toThrow(/not in KEYS/);
    const extra = JSON.stringify([...(JSON.parse(numbers) as number[]), 0]);
    await expect(lua('return cjson.encode(decodeBatch())', keys, ['replica', extra])).rejects.toThrow(/left over/);
  });

  it('NaN and Infinity go as null, which the script refuses as a limit', () => {
    const { numbers } = encodeBatch({ ...batch, shapes: [{ ...bucketOnly, buckets: [{ key: 'b', perSecond: Number.NaN, burst: Number.POSITIVE_INFINITY }] }], slots: [], refunds: [], runs: [] });
    expect(JSON.parse(numbers)).toEqual([batch.deadlineMs, 1, 1, 0, 0, 1, null, null, 0, 0, 0]);
  });

  it('the script reads the same bounds the config schema and the memory store use', async () => {
    // As %.17g strings: cjson would round numbers to 14 digits.
    const text = (await lua("local out = {} for k, v in pairs(BOUNDS) do out[k] = string.format('%.17g', v) end return cjson.encode(out)", [], [])) as string;
    const bounds = Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, string>).map(([k, v]) => [k, Number(v)]));
    expect(bounds).toEqual({ ...BOUNDS });
  });
});
