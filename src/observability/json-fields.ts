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

/**
 * jsonString for the values a line repeats from request to request — route,
 * tenant, key and project ids, plan, method, outcome, reason, subject: each
 * distinct value is escaped once and its JSON form kept, so the next line
 * takes it from a Map (V8 keeps a string's hash in the string, and these are
 * the same string objects request after request) with no test and no new
 * string. Per line, the access line and the usage event together held ~15
 * escape checks, ~12 % of the account stage's CPU (profiled). Bounded: past
 * MAX_KEPT distinct values (a flood of JWT subjects, say) the rest are
 * escaped each time, as before. Not for values unique per request.
 */
const kept = new Map<string, string>();
const MAX_KEPT = 10_000;

/**
 * `s`, flattened: a template literal or `+` makes a rope (a tree of its
 * pieces), and a kept segment that is a rope is walked piece by piece again
 * in every line that contains it, when the line is written (~50
 * instructions a piece, counted under valgrind; a usage line held ~60
 * pieces, most of them inside kept segments). Reading a character makes V8
 * flatten the rope once, in place. For strings kept and reused, or held a
 * while (a queued usage line, ../usage/queue.ts), not for one-off ones
 * (that is a copy for nothing: writing flattens them anyway).
 */
let flattened = 0;
export function flat(s: string): string {
  flattened ^= s.length === 0 ? 0 : s.charCodeAt(0); // kept in a field so the read is not optimised away
  return s;
}

export function jsonToken(s: string | null): string {
  if (typeof s !== 'string') return 'null';
  let json = kept.get(s);
  if (json === undefined) {
    json = jsonString(s);
    if (kept.size < MAX_KEPT) kept.set(s, flat(json));
  }
  return json;
}

/**
 * As JSON.stringify: finite numbers in JavaScript's shortest form, anything
 * else null. Durations are rounded to three decimals (ms to the µs); those
 * are written from integers, without the shortest-form search a float takes
 * (~0.1–0.2 µs each, two or three per line). Exact below 1e9: there two
 * doubles are far closer together than 0.001, so the 3-decimal value is the
 * shortest string that reads back as `n` (test/unit/json-fields.test.ts
 * checks every value up to 2,000 with JSON.stringify).
 */
export function jsonNumber(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return 'null';
  if (n > 0 && n < 1e9 && !Number.isInteger(n)) {
    const thousandths = Math.round(n * 1000);
    if (thousandths / 1000 === n) return threeDecimals(thousandths);
  }
  return `${n}`;
}

/** `.001` … `.999` by thousandths, trailing zeros dropped (`.5`, `.25`); '' for 0. */
const FRACTIONS: readonly string[] = Array.from({ length: 1000 }, (_, k) => (k === 0 ? '' : `.${String(k).padStart(3, '0')}`.replace(/0+$/, '')));

/** `k / 1000` written from the integer k (0 < k < 1e12): its whole part, then the fraction from the table. */
function threeDecimals(k: number): string {
  const whole = Math.floor(k / 1000);
  return `${whole}${FRACTIONS[k - whole * 1000]!}`;
}
