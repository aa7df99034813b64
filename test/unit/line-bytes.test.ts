/**
 * The byte writers the two per-request lines are built with
 * (src/observability/line-bytes.ts) must write exactly the bytes of the
 * string forms they replace: JSON.stringify for strings and numbers,
 * durations rounded to the µs, whatever the value.
 */
import { describe, expect, it } from 'vitest';
import { jsonStringBound, MAX_NUMBER_BYTES, putJsonString, putMillis, putMillisOrNull, putNumber, Scratch } from '../../src/observability/line-bytes.js';

let seed = 5;
const random = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;

/** What `write` puts at a random offset of a dirty buffer, as text; checks it stayed within `room` bytes. */
function written(room: number, write: (out: Buffer, at: number) => number): string {
  const out = Buffer.alloc(room + 64, 0xaa);
  const at = Math.floor(random() * 32);
  const end = write(out, at);
  expect(end - at).toBeLessThanOrEqual(room);
  expect(out[at - 1] ?? 0xaa).toBe(0xaa);
  expect(out.subarray(end).every((b) => b === 0xaa)).toBe(true);
  return out.toString('utf8', at, end);
}

describe('line bytes', () => {
  it('putMillis writes JSON.stringify of ms rounded to the µs: trailing zeros dropped, non-finite as null', () => {
    const values = [0, -0, 0.0004, 0.0005, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 1.05, 1.1, 9.9994, 9.9995, 10, 10.0001, 123.4567, 999_999_999.999, 1e9, 1e12, 1e21, -1.5, NaN, Infinity, -Infinity];
    for (let i = 0; i < 30_000; i++) values.push(random() * 10 ** Math.floor(random() * 10));
    for (let k = 0; k <= 3000; k++) values.push(k / 1000);
    for (const ms of values) expect(written(MAX_NUMBER_BYTES, (out, at) => putMillis(out, at, ms))).toBe(JSON.stringify(Math.round(ms * 1000) / 1000));
    expect(written(MAX_NUMBER_BYTES, (out, at) => putMillisOrNull(out, at, null))).toBe('null');
  });

  it('putNumber writes JSON.stringify(n): integers from their digits, anything else as JSON.stringify', () => {
    const values = [0, -0, 1, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 1e21, -1, -(2 ** 31), 2.5, NaN, Infinity, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, -2.2250738585072014e-308, -0.0000012345678901234567];
    for (let i = 0; i < 10_000; i++) values.push(Math.floor(random() * 10 ** Math.floor(random() * 12)));
    // The longest JSON numbers: negative, 17 significant digits, in decimal form (25 characters).
    for (let i = 0; i < 10_000; i++) values.push(-random() * 10 ** (Math.floor(random() * 50) - 25));
    for (const n of values) expect(written(MAX_NUMBER_BYTES, (out, at) => putNumber(out, at, n))).toBe(JSON.stringify(n) ?? 'null');
  });

  it('putJsonString writes JSON.stringify(s) in UTF-8, within jsonStringBound(s): escapes, control characters, non-ASCII, lone surrogates', () => {
    const strings = ['', 'plain', 'a"b', 'back\\slash', '\n\r\t\b\f', '\u0000\u001f\u007f', 'café', '中文', '💡', '\ud800', 'x\udc00y', '\u2028\u2029', '~ !#$%&', '0f8fad5b-d9cb-469f-a165-70867728950e'];
    for (let i = 0; i < 3000; i++) {
      strings.push(Array.from({ length: Math.floor(random() * 30) }, () => String.fromCharCode(Math.floor(random() * (random() < 0.8 ? 0x80 : 0x10000)))).join(''));
    }
    for (const s of strings) expect(written(jsonStringBound(s), (out, at) => putJsonString(out, at, s))).toBe(JSON.stringify(s));
  });

  it('Scratch grows to the room asked for and gives back what was written as a string', () => {
    const scratch = new Scratch();
    const big = 'é'.repeat(5000);
    const out = scratch.room(jsonStringBound(big));
    expect(out.length).toBeGreaterThanOrEqual(jsonStringBound(big));
    expect(scratch.text(putJsonString(out, 0, big))).toBe(JSON.stringify(big));
    expect(scratch.room(10)).toBe(out);
  });
});
