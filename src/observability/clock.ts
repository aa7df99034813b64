/**
 * The current time as an ISO 8601 string (log lines' `time`, usage events'
 * `ts`), formatted at most once per millisecond, and then only the
 * milliseconds: `toISOString()` runs once per second for the
 * "YYYY-MM-DDTHH:MM:SS." prefix. Under load many lines share a millisecond;
 * a `toISOString()` per new millisecond was still ~1 % of the proxy's CPU
 * with the full pipeline (measured here).
 */
let lastMs = NaN;
let lastIso = '';
let secondStartMs = NaN;
let secondPrefix = '';

/** `new Date(ms).toISOString()`, from the cached prefix of `ms`'s second. */
export function isoAt(ms: number): string {
  if (ms === lastMs) return lastIso;
  let millis = ms - secondStartMs;
  if (!(millis >= 0 && millis < 1000)) {
    secondStartMs = Math.floor(ms / 1000) * 1000;
    const iso = new Date(secondStartMs).toISOString();
    secondPrefix = iso.slice(0, iso.length - 4); // up to and with the '.' (years past 9999 have a longer prefix)
    millis = ms - secondStartMs;
  }
  lastMs = ms;
  lastIso = `${secondPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
  return lastIso;
}

export function isoNow(): string {
  return isoAt(Date.now());
}

/**
 * The wall clock in ms at a `performance.now()` reading the caller already
 * has (the account stage reads one for the request's duration): Node's
 * `performance.timeOrigin` plus it, checked against `Date.now()` at most
 * once a second. `Date.now()` is a call into V8's runtime (~0.1 µs, ~0.3 %
 * of the full pipeline's CPU, profiled); this is an add. The monotonic clock
 * is slewed with the wall clock by NTP, but not stepped with it: a step, or
 * a drift past MAX_SKEW_MS, moves the offset at the next check. Until then a
 * line's time can be up to a second's drift off, and after a step back two
 * lines' times can go backwards by it, as with Date.now().
 */
let wallOffset = performance.timeOrigin;
let nextCheck = -Infinity;
const CHECK_EVERY_MS = 1000;
const MAX_SKEW_MS = 2;

export function wallMsAt(perfMs: number): number {
  if (!(perfMs < nextCheck)) {
    nextCheck = perfMs + CHECK_EVERY_MS;
    const now = performance.now();
    // Date.now() truncates to the ms: the true wall time is in [wall, wall + 1).
    const skew = Date.now() + 0.5 - (now + wallOffset);
    if (skew > MAX_SKEW_MS || skew < -MAX_SKEW_MS) wallOffset += skew;
  }
  return Math.floor(perfMs + wallOffset);
}
