/** isoAt formats from a cached per-second prefix: it must always be toISOString's string. */
import { describe, expect, it } from 'vitest';
import { isoAt, isoNow } from '../../src/observability/clock.js';

describe('isoAt', () => {
  it('is toISOString for consecutive, repeated, backward and far-apart times', () => {
    const base = Date.parse('2026-12-31T23:59:58.990Z');
    const times: number[] = [];
    for (let ms = base; ms < base + 2_100; ms++) times.push(ms, ms); // across a second, a minute, a year boundary; each twice
    times.push(base + 500, base - 1, 0, -1, -999, -1000, -1001, 1, 999, 1000, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15);
    let seed = 11;
    for (let i = 0; i < 20_000; i++) times.push(Math.floor(((seed = (seed * 48271) % 2147483647) / 2147483647 - 0.5) * 8e15));
    for (const ms of times) {
      const want = new Date(ms).toISOString();
      if (isoAt(ms) !== want) expect(isoAt(ms)).toBe(want);
    }
  });

  it('isoNow is the current time', () => {
    const before = Date.now();
    const now = Date.parse(isoNow());
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});
