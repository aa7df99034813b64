/**
 * UTC calendar periods for quotas: the day and month a timestamp falls in,
 * as key suffixes, with the instant each ends. Recomputed only when a period
 * rolls over, so the hot path compares one number.
 */

export interface Period {
  readonly id: string;
  readonly endsAtMs: number;
}

const pad = (n: number) => String(n).padStart(2, '0');

export function dayOf(nowMs: number): Period {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  return { id: `${y}${pad(m + 1)}${pad(day)}`, endsAtMs: Date.UTC(y, m, day + 1) };
}

export function monthOf(nowMs: number): Period {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { id: `${y}${pad(m + 1)}`, endsAtMs: Date.UTC(y, m + 1, 1) };
}

/** Caches the current day and month; `at(now)` is a comparison unless a period ended. */
export class PeriodClock {
  private day: Period = { id: '', endsAtMs: 0 };
  private month: Period = { id: '', endsAtMs: 0 };
  private dayStartMs = Infinity;

  at(nowMs: number): { day: Period; month: Period } {
    if (nowMs >= this.day.endsAtMs || nowMs < this.dayStartMs) {
      this.day = dayOf(nowMs);
      this.month = monthOf(nowMs);
      this.dayStartMs = this.day.endsAtMs - 86_400_000;
    }
    return { day: this.day, month: this.month };
  }
}

/** A named quota's fixed window: its start (the key names it) and end. */
export interface Window {
  readonly startMs: number;
  readonly endsAtMs: number;
}

const daysIn = (y: number, m: number): number => new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
/** Month `m` of year `y`'s billing day at 00:00 UTC: `day`, or the month's last day if it is shorter. */
const billingStart = (y: number, m: number, day: number): number => {
  const d = new Date(Date.UTC(y, m, 1));
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), Math.min(day, daysIn(d.getUTCFullYear(), d.getUTCMonth())));
};

/**
 * The UTC-aligned window `nowMs` falls in: `1m`, `1h`, `1d` as their names
 * say; `1mo` from the billing day (1-31; in a shorter month its last day)
 * to the next month's.
 */
export function windowOf(window: '1m' | '1h' | '1d' | '1mo', nowMs: number, billingDay = 1): Window {
  if (window !== '1mo') {
    const size = window === '1m' ? 60_000 : window === '1h' ? 3_600_000 : 86_400_000;
    const startMs = Math.floor(nowMs / size) * size;
    return { startMs, endsAtMs: startMs + size };
  }
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const thisMonth = billingStart(y, m, billingDay);
  return thisMonth <= nowMs ? { startMs: thisMonth, endsAtMs: billingStart(y, m + 1, billingDay) } : { startMs: billingStart(y, m - 1, billingDay), endsAtMs: thisMonth };
}
