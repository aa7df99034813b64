/**
 * Named quotas' fixed windows (src/limits/periods.ts windowOf): UTC-aligned
 * minute, hour and day; a month from the tenant's billing day, which in a
 * shorter month is its last day. Instants are given, not read from a clock.
 */
import { describe, expect, it } from 'vitest';
import { windowOf } from '../../../src/limits/periods.js';

const at = (iso: string) => Date.parse(iso);
const iso = (w: { startMs: number; endsAtMs: number }) => [new Date(w.startMs).toISOString(), new Date(w.endsAtMs).toISOString()];

describe('windowOf', () => {
  it('1m, 1h, 1d: the UTC minute, hour, day; the last millisecond belongs to the window, the next one starts the next', () => {
    expect(iso(windowOf('1m', at('2026-03-10T12:34:59.999Z')))).toEqual(['2026-03-10T12:34:00.000Z', '2026-03-10T12:35:00.000Z']);
    expect(iso(windowOf('1m', at('2026-03-10T12:35:00.000Z')))).toEqual(['2026-03-10T12:35:00.000Z', '2026-03-10T12:36:00.000Z']);
    expect(iso(windowOf('1h', at('2026-03-10T12:59:59.999Z')))).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-10T13:00:00.000Z']);
    expect(iso(windowOf('1h', at('2026-03-10T13:00:00.000Z')))).toEqual(['2026-03-10T13:00:00.000Z', '2026-03-10T14:00:00.000Z']);
    expect(iso(windowOf('1d', at('2026-12-31T23:59:59.999Z')))).toEqual(['2026-12-31T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    expect(iso(windowOf('1d', at('2027-01-01T00:00:00.000Z')))).toEqual(['2027-01-01T00:00:00.000Z', '2027-01-02T00:00:00.000Z']);
  });

  it('1mo with billing day 1 (the default) is the calendar month', () => {
    expect(iso(windowOf('1mo', at('2026-02-28T23:59:59.999Z')))).toEqual(['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2026-03-01T00:00:00.000Z')))).toEqual(['2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z']);
  });

  it('1mo with billing day 15: from the 15th to the next 15th, across a year end', () => {
    expect(iso(windowOf('1mo', at('2026-12-14T23:59:59.999Z'), 15))).toEqual(['2026-11-15T00:00:00.000Z', '2026-12-15T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2026-12-15T00:00:00.000Z'), 15))).toEqual(['2026-12-15T00:00:00.000Z', '2027-01-15T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2027-01-03T08:00:00.000Z'), 15))).toEqual(['2026-12-15T00:00:00.000Z', '2027-01-15T00:00:00.000Z']);
  });

  it('1mo with billing day 31: in February the window turns on its last day (28th, or 29th in a leap year), then the 31st again', () => {
    expect(iso(windowOf('1mo', at('2027-02-27T23:59:59.999Z'), 31))).toEqual(['2027-01-31T00:00:00.000Z', '2027-02-28T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2027-02-28T00:00:00.000Z'), 31))).toEqual(['2027-02-28T00:00:00.000Z', '2027-03-31T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2028-02-28T12:00:00.000Z'), 31))).toEqual(['2028-01-31T00:00:00.000Z', '2028-02-29T00:00:00.000Z']);
    expect(iso(windowOf('1mo', at('2028-02-29T00:00:00.000Z'), 31))).toEqual(['2028-02-29T00:00:00.000Z', '2028-03-31T00:00:00.000Z']);
    // April has 30 days: its window starts on the 30th and ends on May 31st.
    expect(iso(windowOf('1mo', at('2027-04-30T00:00:00.000Z'), 31))).toEqual(['2027-04-30T00:00:00.000Z', '2027-05-31T00:00:00.000Z']);
  });
});
