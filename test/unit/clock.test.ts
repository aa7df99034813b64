/** isoAt formats from a cached per-second prefix: it must always be toISOString's string. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoAt, isoNow, wallMsAt } from '../../src/observability/clock.js';

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

describe('wallMsAt', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is the wall clock at a performance.now() reading, to within 2 ms', () => {
    for (let i = 0; i < 5; i++) {
      const before = Date.now();
      const at = wallMsAt(performance.now());
      const after = Date.now();
      expect(at).toBeGreaterThanOrEqual(before - 2);
      expect(at).toBeLessThanOrEqual(after + 2);
    }
  });

  it('follows a stepped wall clock at its next check, at most a second later, and not before', () => {
    const real = Date.now.bind(Date);
    /** The wall time at performance.now() reading `p` on a clock reading `clock()` now. */
    const expected = (clock: () => number, p: number) => clock() + (p - performance.now());
    // A whole number: then (now + 1000) + 1000, the next check wallMsAt sets, is exactly now + 2000. With a
    // fractional one the two sums can differ in the last bit, and the probe at now + 2000 fell just short of it.
    // Rounded up, not down: now + 1000 must not come before the check the test above scheduled (its last
    // reading + 1000), or that check would land at now + 1500.
    const now = Math.ceil(performance.now());
    wallMsAt(now + 1000); // a check: the offset is right for the real clock, the next check is a second on
    const stepped = () => real() + 60_000;
    vi.spyOn(Date, 'now').mockImplementation(stepped);
    // Before the next check the step is not seen (no Date.now() per call: that is the point).
    expect(Math.abs(wallMsAt(now + 1500) - expected(real, now + 1500))).toBeLessThanOrEqual(3);
    // At it, the minute's step is taken up.
    expect(Math.abs(wallMsAt(now + 2000) - expected(stepped, now + 2000))).toBeLessThanOrEqual(3);
    vi.restoreAllMocks();
    wallMsAt(now + 3000); // and back at the next
    expect(Math.abs(wallMsAt(now + 3000) - expected(real, now + 3000))).toBeLessThanOrEqual(3);
  });
});
