/**
 * JSON values for the two lines written per request (the access line and the
 * usage event), built field by field. On Node 20, JSON.stringify of those flat
 * objects spent ~100 ns per string field on escaping checks (~1.2 µs a line,
 * measured here); most of their strings (ids, routes, paths, codes) are
 * printable ASCII without `"` or `\`, which one regex test confirms and which
 * need no escaping. Anything else goes through JSON.stringify, so the output
 * is byte for byte JSON.stringify's (test/unit/json-fields.test.ts).
 */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

export function jsonString(s: string | null): string {
  if (typeof s !== 'string') return 'null'; // null (and, defensively, undefined)
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** As JSON.stringify: finite numbers in JavaScript's shortest form, anything else null. */
export function jsonNumber(n: number | null): string {
  return n !== null && Number.isFinite(n) ? `${n}` : 'null';
}
