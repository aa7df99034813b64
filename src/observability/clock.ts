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
