/**
 * The hand-built JSON of the per-request lines must be byte for byte what
 * JSON.stringify writes, whatever the strings hold.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { jsonNumber, jsonString, jsonToken } from '../../src/observability/json-fields.js';
import { requestEventJson } from '../../src/usage/event-json.js';
import { StringQueue } from '../../src/usage/queue.js';
import type { RequestUsageEvent } from '../../src/usage/types.js';

const STRINGS = [
  '',
  'plain-id_1.2',
  '/orders/42?x=1',
  'say "hi"',
  'back\\slash',
  'line\nbreak',
  'tab\there',
  '\u0000\u0001\u001f',
  '\u007f delete',
  'café',
  'emoji 💡',
  'lone \ud800 surrogate',
  '\u2028\u2029',
  '</script>',
  "it's",
  ' leading and trailing ',
];
const NUMBERS = [0, -0, 1, 200, 1.5, 0.1 + 0.2, 1.234, 123456789.123, 1e21, 1e-7, -3.5, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity];

describe('json-fields', () => {
  it.each(STRINGS)('jsonString(%j) is JSON.stringify', (s) => {
    expect(jsonString(s)).toBe(JSON.stringify(s));
  });

  it('jsonString(null) is null', () => {
    expect(jsonString(null)).toBe('null');
  });

  it.each(STRINGS)('jsonToken(%j) is JSON.stringify, the first time and when kept', (s) => {
    expect(jsonToken(s)).toBe(JSON.stringify(s));
    expect(jsonToken(s)).toBe(JSON.stringify(s));
    expect(jsonToken(null)).toBe('null');
  });

  it('jsonToken past its bound (10,000 distinct values) still escapes every value exactly', () => {
    const values = Array.from({ length: 12_000 }, (_, i) => (i % 3 === 0 ? `sub"${i}` : i % 3 === 1 ? `sub\\${i}\n` : `sub-${i}`));
    for (const v of values) expect(jsonToken(v)).toBe(JSON.stringify(v));
    for (const v of values) expect(jsonToken(v)).toBe(JSON.stringify(v));
  });

  it.each(NUMBERS)('jsonNumber(%s) is JSON.stringify', (n) => {
    expect(jsonNumber(n)).toBe(JSON.stringify(n));
  });

  it('every 3-decimal value up to 2,000 (durations in ms) is JSON.stringify', () => {
    for (let k = 0; k <= 2_000_000; k++) {
      const n = k / 1000;
      if (jsonNumber(n) !== JSON.stringify(n)) expect(jsonNumber(n)).toBe(JSON.stringify(n)); // expect() only on a miss: 2M calls
    }
  });

  it('rounded durations of any size, and values that are not 3-decimal, are JSON.stringify', () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    for (let i = 0; i < 200_000; i++) {
      const scale = 10 ** Math.floor(random() * 13) ; // 1 .. 1e12
      const raw = random() * scale;
      for (const n of [Math.round(raw * 1000) / 1000, raw, Math.round(raw * 100) / 100, Math.round(raw * 10000) / 10000]) {
        if (jsonNumber(n) !== JSON.stringify(n)) expect(jsonNumber(n)).toBe(JSON.stringify(n));
      }
    }
  });

  it('jsonNumber(null) is null', () => {
    expect(jsonNumber(null)).toBe('null');
  });

  it('a request event is JSON.stringify(event), key order included, for any mix of strings, nulls and numbers', () => {
    const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length]!;
    for (let i = 0; i < 400; i++) {
      const maybe = (k: number): string | null => (k % 3 === 0 ? null : pick(STRINGS, i + k));
      const event: RequestUsageEvent = {
        id: pick(STRINGS, i),
        ts: new Date(1_764_000_000_000 + i).toISOString(),
        type: 'request',
        tenantId: maybe(i + 1),
        projectId: maybe(i + 2),
        apiKeyId: maybe(i + 3),
        subject: maybe(i + 4),
        route: maybe(i + 5),
        method: pick(['GET', 'POST', 'OTHER'], i),
        status: pick([200, 404, 429, 503], i),
        outcome: pick(STRINGS, i + 7),
        durationMs: pick(NUMBERS, i),
        bytesIn: pick(NUMBERS, i + 1),
        bytesOut: pick(NUMBERS, i + 2),
        cost: pick([0, 1, 2.5], i),
        requestId: pick(STRINGS, i + 9),
        plan: maybe(i + 10),
      };
      expect(requestEventJson(event)).toBe(JSON.stringify(event));
    }
  });

  it('a request event line waits in a lane queue through GCs as one flat string, not a rope (heap per line held, measured)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const event = (i: number): RequestUsageEvent => ({
      id: `ev-${i}`,
      ts: '2026-11-26T08:00:00.000Z',
      type: 'request',
      tenantId: 'acme',
      projectId: null,
      apiKeyId: `ak_${i}`,
      subject: null,
      route: 'api',
      method: 'GET',
      status: 200,
      outcome: 'forwarded',
      durationMs: (i % 5000) / 1000,
      bytesIn: 0,
      bytesOut: i,
      cost: 1,
      requestId: `req-${i}`,
      plan: 'pro',
    });
    const sink = { name: 'held', send: async () => {}, close: async () => {} };
    // Bytes of heap that 20,000 held lines take, after full GCs: in a plain array, or queued as a lane queues them.
    const heldBytes = (line: (e: RequestUsageEvent) => string, queued: boolean): number => {
      const events = Array.from({ length: 20_000 }, (_, i) => event(i));
      gc();
      gc();
      const before = process.memoryUsage().heapUsed;
      const held: string[] = [];
      const queue = new StringQueue(sink, 1_000_000);
      for (const e of events) (queued ? queue : held).push(line(e));
      gc();
      gc();
      const bytes = process.memoryUsage().heapUsed - before;
      expect(held.length + queue.length).toBe(20_000);
      return bytes / 20_000;
    };
    const length = requestEventJson(event(0)).length;
    // A line joined from pieces is a rope: held as it is, it takes twice its flat size or more.
    const joined = (e: RequestUsageEvent): string => requestEventJson(e).match(/[^]{1,10}/g)!.reduce((a, b) => a + b);
    const rope = heldBytes(joined, false);
    const flat = heldBytes(joined, true);
    expect(flat).toBeLessThan(length + 100);
    expect(rope).toBeGreaterThan(2 * flat);
  });
});
