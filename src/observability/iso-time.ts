/**
 * The wall-clock time as ISO 8601, formatted at most once per millisecond: a
 * busy proxy's access lines and usage events within one millisecond share it.
 */
let lastMs = -1;
let lastIso = '';

export function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
