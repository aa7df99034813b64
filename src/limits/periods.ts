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
