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
 * else null. Not on the per-request path any more (durations and sizes are
 * written as digits, ./line-bytes.ts): statuses and costs, once per line
 * shape, and the rare number line-bytes does not write itself.
 */
export function jsonNumber(n: number | null): string {
  return n === null || !Number.isFinite(n) ? 'null' : `${n}`;
}
