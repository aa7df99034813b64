/**
 * The two lines written per request (the access line, the usage event) are
 * encoded straight into the bytes they are written from — the stdout chunk,
 * the redis-stream sink's command — with no JavaScript string per line.
 *
 * Why: built as strings, each line was a rope of ~10 pieces that V8 then
 * flattened (a walk of the pieces and a copy) and Node encoded into the
 * Buffer (a second copy, behind a C++ binding call), and each rope and flat
 * copy was garbage: ~1.5 KB per request for the two lines. Here the parts
 * that repeat (a line shape's segments, ./line-shape.ts) are UTF-8 Buffers
 * made once, copied in with TypedArray#set (a memmove), and the parts unique
 * to a request (ids, numbers) are written a byte at a time: no allocation
 * per line. Measured (bench/README.md, thirteenth round): the full
 * pipeline's extra garbage per request halved, its CPU about 1 % less.
 *
 * Every writer takes the target and a position and returns the position
 * after what it wrote; the caller has made room (an upper bound: see
 * MAX_NUMBER_BYTES and jsonStringBound). The bytes are exactly those of the
 * JSON.stringify form of the same value (test/unit/line-bytes.test.ts).
 */
import { jsonNumber } from './json-fields.js';
import { writeUtf8 } from './utf8.js';

/** The most bytes putMillis or putNumber writes: JSON.stringify of a number is at most 25 characters (`-0.0000012345678901234567`). */
export const MAX_NUMBER_BYTES = 25;

/** The most bytes putJsonString writes for `s`: a UTF-16 unit is at most 6 bytes escaped (`\u001f`) or 3 in UTF-8, plus the quotes. */
export function jsonStringBound(s: string): number {
  return s.length * 6 + 2;
}

/** Copies `bytes` to `at`. */
export function putBytes(out: Buffer, at: number, bytes: Buffer): number {
  out.set(bytes, at);
  return at + bytes.length;
}

/**
 * `s`'s characters without the quotes, when none of them needs escaping in
 * JSON and all are printable ASCII (request ids, UUIDs, most paths); else -1,
 * and what was written is to be overwritten (putJsonString does).
 */
function putPlainAscii(out: Buffer, at: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
    out[at + i] = c;
  }
  return at + n;
}

/** `s` as a JSON string with its quotes (JSON.stringify's bytes, UTF-8). Room: jsonStringBound(s). */
export function putJsonString(out: Buffer, at: number, s: string): number {
  out[at] = 0x22;
  const end = putPlainAscii(out, at + 1, s);
  if (end >= 0) {
    out[end] = 0x22;
    return end + 1;
  }
  return at + writeUtf8(out, JSON.stringify(s), at);
}

/** How many digits a non-negative integer has in decimal. */
export function decimalDigits(n: number): number {
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits++;
  return digits;
}

/** A non-negative integer below 2^31, in decimal. */
function putSmallUint(out: Buffer, at: number, n: number): number {
  const end = at + decimalDigits(n);
  let i = end;
  do {
    out[--i] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  } while (n > 0);
  return end;
}

/** Text known to be ASCII (a number's JSON form, a RESP length). */
export function putAscii(out: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  return at + s.length;
}

/** A number as JSON.stringify writes it (non-finite: null); non-negative integers below 2^31 from their digits. Room: MAX_NUMBER_BYTES. */
export function putNumber(out: Buffer, at: number, n: number): number {
  if ((n | 0) === n && n >= 0) return putSmallUint(out, at, n);
  return putAscii(out, at, jsonNumber(n));
}

/**
 * A duration in ms, rounded to three decimals (to the µs), as
 * JSON.stringify writes that number. Below 1e9 ms, from the digits of the
 * whole number of µs: two doubles that large are still far less than 0.001
 * apart, so the 3-decimal form is the shortest that reads back as the
 * rounded value, and no shortest-form search is needed. Room:
 * MAX_NUMBER_BYTES.
 */
export function putMillis(out: Buffer, at: number, ms: number): number {
  const k = Math.round(ms * 1000);
  if (!(k > 0 && k < 1e12)) return putAscii(out, at, jsonNumber(k / 1000));
  const whole = Math.floor(k / 1000);
  const frac = k - whole * 1000;
  at = putSmallUint(out, at, whole); // below 1e9
  if (frac === 0) return at;
  // Three decimals, trailing zeros dropped (.5, .25, .125, .05).
  out[at++] = 0x2e;
  const d1 = (frac / 100) | 0;
  const d2 = ((frac / 10) | 0) % 10;
  const d3 = frac % 10;
  out[at++] = 0x30 + d1;
  if (d2 !== 0 || d3 !== 0) out[at++] = 0x30 + d2;
  if (d3 !== 0) out[at++] = 0x30 + d3;
  return at;
}

/** putMillis, or `null`. Room: MAX_NUMBER_BYTES. */
export function putMillisOrNull(out: Buffer, at: number, ms: number | null): number {
  return ms === null ? putAscii(out, at, 'null') : putMillis(out, at, ms);
}

/** UTF-8 bytes of a segment made once (a line shape's, a time's). */
export function segment(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/**
 * A Buffer reused to build a line that must end up as a string (a
 * destination that takes strings, a sink that queues strings), grown when
 * a line needs more room than it has.
 */
export class Scratch {
  private buffer = Buffer.allocUnsafeSlow(4096);

  /** A buffer of at least `bytes` bytes (its contents are not kept when it grows). */
  room(bytes: number): Buffer {
    if (bytes > this.buffer.length) this.buffer = Buffer.allocUnsafeSlow(Math.max(bytes, this.buffer.length * 2));
    return this.buffer;
  }

  /** The first `end` bytes of the last room() as a string. */
  text(end: number): string {
    return this.buffer.toString('utf8', 0, end);
  }
}
